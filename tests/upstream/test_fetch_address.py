"""The address judgement behind the image fetcher: literal spellings, embedded IPv4, allowances."""

import socket
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from aperture.upstream._fetch_address import (
    PrivateAllowance,
    embedded_ipv4,
    is_public,
    is_valid_hostname,
    parse_ip_literal,
)

# (URL, the address it spells, whether that address is public). The host goes through yarl
# exactly as the fetcher sees it.
SPELLINGS = [
    ("http://127.0.0.1/", "127.0.0.1", False),
    ("http://2130706433/", "127.0.0.1", False),
    ("http://017700000001/", "127.0.0.1", False),
    ("http://0x7f000001/", "127.0.0.1", False),
    ("http://0X7F000001/", "127.0.0.1", False),
    ("http://0177.0.0.1/", "127.0.0.1", False),
    ("http://0x7f.0.0.1/", "127.0.0.1", False),
    ("http://0x7f.1/", "127.0.0.1", False),
    ("http://127.1/", "127.0.0.1", False),
    ("http://127.0.1/", "127.0.0.1", False),
    ("http://0177.1/", "127.0.0.1", False),
    ("http://127.000.000.001/", "127.0.0.1", False),
    ("http://127.0.0.1./", "127.0.0.1", False),
    ("http://0x7f.0x0.0x0.0x1/", "127.0.0.1", False),
    ("http://00000177.0.0.1/", "127.0.0.1", False),
    ("http://127.255.255.254:8080/", "127.255.255.254", False),
    ("http://0/", "0.0.0.0", False),
    ("http://0.0.0.0/", "0.0.0.0", False),
    ("http://0x0/", "0.0.0.0", False),
    ("http://10.1/", "10.0.0.1", False),
    ("http://167772161/", "10.0.0.1", False),
    ("http://172.16.0.1/", "172.16.0.1", False),
    ("http://192.168.1/", "192.168.0.1", False),
    ("http://3232235777/", "192.168.1.1", False),
    ("http://169.254.169.254/", "169.254.169.254", False),
    ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254", False),
    ("http://2852039166/", "169.254.169.254", False),
    ("http://0251.0376.0251.0376/", "169.254.169.254", False),
    ("http://169.254.43518/", "169.254.169.254", False),
    ("http://0xa9fea9fe/", "169.254.169.254", False),
    ("http://100.64.0.1/", "100.64.0.1", False),
    ("http://100.100.100.200/", "100.100.100.200", False),
    ("http://224.0.0.1/", "224.0.0.1", False),
    ("http://255.255.255.255/", "255.255.255.255", False),
    ("http://4294967295/", "255.255.255.255", False),
    ("http://240.0.0.1/", "240.0.0.1", False),
    ("http://198.18.0.1/", "198.18.0.1", False),
    ("http://192.0.0.8/", "192.0.0.8", False),
    ("http://192.0.2.1/", "192.0.2.1", False),
    ("http://192.88.99.1/", "192.88.99.1", False),
    ("http://[::1]/", "::1", False),
    ("http://[0000:0000:0000:0000:0000:0000:0000:0001]/", "::1", False),
    ("http://[::]/", "::", False),
    ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", False),
    ("http://[::FFFF:7f00:1]/", "::ffff:127.0.0.1", False),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "::ffff:127.0.0.1", False),
    ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254", False),
    ("http://[::ffff:a00:1]/", "::ffff:10.0.0.1", False),
    ("http://[::ffff:0:7f00:1]/", "::ffff:0:7f00:1", False),
    ("http://[::127.0.0.1]/", "::7f00:1", False),
    ("http://[64:ff9b::127.0.0.1]/", "64:ff9b::7f00:1", False),
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe", False),
    ("http://[64:ff9b:1::7f00:1]/", "64:ff9b:1::7f00:1", False),
    ("http://[2002:7f00:1::]/", "2002:7f00:1::", False),
    ("http://[2002:a9fe:a9fe::1]/", "2002:a9fe:a9fe::1", False),
    # Teredo: server 65.54.227.120, client (obfuscated) 127.0.0.1.
    (
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        False,
    ),
    ("http://[fe80::1]/", "fe80::1", False),
    ("http://[fe80::1%25eth0]/", "fe80::1%eth0", False),
    ("http://[fc00::1]/", "fc00::1", False),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254", False),
    ("http://[fec0::1]/", "fec0::1", False),
    ("http://[ff02::1]/", "ff02::1", False),
    ("http://[2001:db8::1]/", "2001:db8::1", False),
    ("http://[100::1]/", "100::1", False),
    ("http://8.8.8.8/", "8.8.8.8", True),
    ("http://134744072/", "8.8.8.8", True),
    ("http://0x8.0x8.0x8.0x8/", "8.8.8.8", True),
    ("http://010.010.010.010/", "8.8.8.8", True),
    ("http://[2606:4700:4700::1111]/", "2606:4700:4700::1111", True),
    ("http://[::ffff:8.8.8.8]/", "::ffff:8.8.8.8", True),
    ("http://[64:ff9b::8.8.8.8]/", "64:ff9b::808:808", True),
    ("http://[2002:808:808::1]/", "2002:808:808::1", True),
]


@pytest.mark.parametrize(("url", "address", "public"), SPELLINGS)
def test_every_spelling_of_an_address_is_read_and_judged(
    url: str, address: str, public: bool
) -> None:
    host = URL(url).raw_host
    assert host is not None
    parsed = parse_ip_literal(host)
    assert parsed == ip_address(address)
    assert is_public(parsed) is public


def test_the_table_is_big_enough() -> None:
    assert len(SPELLINGS) >= 30


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f.0x0.0x0.0x1", "0251.0376.0251.0376"],
)
def test_legacy_forms_agree_with_the_c_library(host: str) -> None:
    parsed = parse_ip_literal(host)
    assert isinstance(parsed, IPv4Address)
    assert parsed.packed == socket.inet_aton(host)


@pytest.mark.parametrize(
    "host", ["localhost", "images.test", "0x7g.1", "08.1", "256.1", "1.2.3.4.5", "0x", "a::b::c"]
)
def test_names_and_invalid_numbers_are_not_literals(host: str) -> None:
    assert parse_ip_literal(host) is None


_PART_BASES = st.sampled_from(["dec", "oct", "hex"])


def _spell(value: int, base: str) -> str:
    return {"dec": str(value), "oct": f"0{value:o}", "hex": f"0x{value:x}"}[base]


@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=1, max_value=4),
    st.lists(_PART_BASES, min_size=4, max_size=4),
)
def test_any_legacy_spelling_reads_like_inet_aton(
    number: int, parts: int, bases: list[str]
) -> None:
    packed = number.to_bytes(4, "big")
    values = [*packed[: parts - 1], int.from_bytes(packed[parts - 1 :], "big")]
    spelling = ".".join(_spell(v, b) for v, b in zip(values, bases, strict=False))
    assert parse_ip_literal(spelling) == IPv4Address(number)
    assert socket.inet_aton(spelling) == packed


@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=20))
def test_never_disagrees_with_inet_aton(text: str) -> None:
    try:
        expected: IPv4Address | None = IPv4Address(socket.inet_aton(text))
    except OSError:
        expected = None
    if text.endswith(".") and not text.endswith(".."):
        return  # a trailing dot is read as an address on purpose; glibc would ask DNS
    assert parse_ip_literal(text) == expected


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:10.0.0.1", ["10.0.0.1"]),
        ("::10.0.0.1", ["10.0.0.1"]),
        ("64:ff9b::10.0.0.1", ["10.0.0.1"]),
        ("2002:0a00:0001::", ["10.0.0.1"]),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", ["65.54.227.120", "127.0.0.1"]),
        ("2606:4700:4700::1111", None),
    ],
)
def test_embedded_ipv4_is_unwrapped(address: str, embedded: list[str] | None) -> None:
    found = embedded_ipv4(IPv6Address(address))
    assert (None if found is None else [str(ip) for ip in found]) == embedded


def test_local_use_nat64_is_judged_under_every_prefix_layout() -> None:
    # 8.8.8.8 in the /96 layout, but read under /64 it is 0.0.0.8: not all layouts are public.
    assert not is_public(IPv6Address("64:ff9b:1::808:808"))
    # The same public address in every layout at once is public.
    assert is_public(IPv6Address("64:ff9b:1:808:8:808:808:808"))


def test_allowance_matches_names_and_networks_on_their_ports() -> None:
    allowance = PrivateAllowance(
        ["Images.Internal.", "10.1.0.0/16", "fd00::/8", "192.168.1.5:8443", "cdn.internal:81"]
    )
    assert allowance.allows_name("images.internal", 443, "https")
    assert allowance.allows_name("images.internal.", 80, "http")
    assert not allowance.allows_name("images.internal", 8080, "http")
    assert not allowance.allows_name("images.internal", 443, "http")
    assert not allowance.allows_name("other.internal", 443, "https")
    assert allowance.allows_name("cdn.internal", 81, "http")
    assert not allowance.allows_name("cdn.internal", 80, "http")
    assert allowance.lists_name("cdn.internal") and not allowance.lists_name("other.internal")
    assert allowance.allows_address(ip_address("10.1.2.3"), 443, "https")
    assert allowance.allows_address(ip_address("::ffff:10.1.2.3"), 80, "http")  # unwrapped too
    assert not allowance.allows_address(ip_address("10.1.2.3"), 8080, "http")
    assert allowance.covers_address(ip_address("10.1.2.3"))
    assert allowance.allows_address(ip_address("192.168.1.5"), 8443, "https")
    assert not allowance.allows_address(ip_address("192.168.1.5"), 443, "https")
    assert allowance.allows_address(ip_address("fd00::1"), 443, "https")
    assert not allowance.allows_address(ip_address("10.2.0.1"), 443, "https")
    assert not allowance.covers_address(ip_address("127.0.0.1"))
    assert allowance.networks_allow_port(8443, "https")
    assert not allowance.networks_allow_port(81, "http")  # only a name is open on 81
    assert not PrivateAllowance(["images.internal:8443"]).networks_allow_port(8443, "https")


@pytest.mark.parametrize("entry", ["", "not a host", "bücher.example", "10.0.0.0/33"])
def test_allowance_refuses_entries_it_cannot_read(entry: str) -> None:
    with pytest.raises(ValueError, match="allow_private_hosts"):
        PrivateAllowance([entry])


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("images.test", True),
        ("images.test.", True),
        ("a_b.example", True),
        ("xn--bcher-kva.example", True),
        ("-bad.example", False),
        ("bad..example", False),
        ("127.0.0.1%2f", False),
        ("a" * 64 + ".example", False),
        ("", False),
    ],
)
def test_host_names_are_plain_dns_names(host: str, valid: bool) -> None:
    assert is_valid_hostname(host) is valid
