"""Which hosts and addresses the image fetcher may connect to (security.md §1.2–1.3).

Owns three judgements, all pure: whether a URL host is an IP literal in any spelling the C
library would accept, whether an address is public (after unwrapping every IPv6 form that
embeds an IPv4 address), and whether the operator's ``allow_private_hosts`` admits a host
or an address on a port.
The blocked ranges are spelled out here rather than taken from ``ipaddress.is_global`` alone,
because CPython before 3.12.4 judged several of them with stale IANA data (CVE-2024-4032).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aperture.settings.fetch_allow import AllowEntry, is_valid_hostname, parse_allow_entry

__all__ = [
    "IPAddress",
    "PrivateAllowance",
    "embedded_ipv4",
    "is_public",
    "is_valid_hostname",
    "parse_ip_literal",
]

IPAddress = IPv4Address | IPv6Address

_BLOCKED_V4 = tuple(
    IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", and 0.0.0.0 which Linux routes to the local host
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT; also holds Alibaba's metadata service 100.100.100.200
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, and the cloud metadata services on it
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # the retired 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
        "168.63.129.16/32",  # Azure WireServer: public space, host-local service
    )
)
# Everything public in IPv6 today is inside 2000::/3; the rest of it is carved out below.
_GLOBAL_UNICAST = IPv6Network("2000::/3")
_BLOCKED_V6 = tuple(
    IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments (Teredo, inside it, is unwrapped first)
        "2001:db8::/32",
        "2002::/16",  # 6to4 (unwrapped first; listed so it never passes as plain IPv6)
        "3fff::/20",
    )
)

_V4_MAPPED = IPv6Network("::ffff:0:0/96")
_V4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
_V4_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = IPv6Network("2002::/16")
_TEREDO = IPv6Network("2001::/32")
# Where RFC 6052 puts the IPv4 address under the /48, /56, /64 and /96 prefixes a local-use
# NAT64 may use (byte 8, the "u" octet, is always skipped).
_NAT64_LOCAL_LAYOUTS = ((6, 7, 9, 10), (7, 9, 10, 11), (9, 10, 11, 12), (12, 13, 14, 15))

# One part of a legacy inet_aton address: hex, octal (leading zero) or decimal.
_INET_ATON_PART = re.compile(r"0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*", re.ASCII | re.IGNORECASE)


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form ``inet_aton`` or ``inet_pton`` accepts.

    Covers decimal (``2130706433``), octal (``0177.0.0.1``), hex (``0x7f.1``), short forms
    (``127.1``), brackets and IPv6 zone ids, exactly as glibc reads them, plus a trailing dot
    (which browsers accept and glibc would send to DNS). None means "a name, not an IP".
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in text:
        # yarl keeps a zone id percent-encoded in raw_host (``fe80::1%25eth0``).
        try:
            return ip_address(text.replace("%25", "%", 1))
        except ValueError:
            return None
    return _inet_aton(text.removesuffix("."))


def _inet_aton(text: str) -> IPv4Address | None:
    # The C library's rules: up to four parts, the last one filling every remaining byte.
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART.fullmatch(p) for p in parts):
        return None
    values = [_inet_aton_value(part) for part in parts]
    *head, last = values
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (5 - len(values))):
        return None
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return IPv4Address(number)


def _inet_aton_value(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:], 16)
    if part.startswith("0"):
        return int(part, 8)
    return int(part)


def embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, ...] | None:
    """The IPv4 address(es) an IPv6 address carries, or None if it is plain IPv6.

    Teredo carries two (server and client); a local-use NAT64 address is read under every
    prefix length it could use, so whatever layout the network chose, all must be public.
    """
    packed = ip.packed
    if ip in _V4_MAPPED or ip in _V4_TRANSLATED or ip in _V4_COMPATIBLE or ip in _NAT64:
        return (IPv4Address(packed[12:]),)
    if ip in _NAT64_LOCAL:
        return tuple(IPv4Address(bytes(packed[i] for i in at)) for at in _NAT64_LOCAL_LAYOUTS)
    if ip in _SIX_TO_FOUR:
        return (IPv4Address(packed[2:6]),)
    if ip in _TEREDO and ip.teredo is not None:
        return ip.teredo
    return None


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address the fetcher may connect to."""
    if isinstance(ip, IPv4Address):
        return _public_v4(ip)
    if ip.scope_id:
        return False  # a zone id only means something on a local link
    embedded = embedded_ipv4(ip)
    if embedded is not None:
        return all(_public_v4(v4) for v4 in embedded)
    return (
        ip in _GLOBAL_UNICAST
        and not any(ip in net for net in _BLOCKED_V6)
        and ip.is_global
        and not ip.is_multicast
    )


def _public_v4(ip: IPv4Address) -> bool:
    if any(ip in net for net in _BLOCKED_V4):
        return False
    # Belt and braces: whatever the running CPython also knows to be special.
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class PrivateAllowance:
    """The operator's ``allow_private_hosts`` (syntax in ``settings.fetch_allow``).

    Every judgement takes the port and scheme too: an entry without a port opens only the
    scheme's standard port, so listing a host never opens its other services.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        parsed: list[AllowEntry] = []
        for entry in entries:
            try:
                parsed.append(parse_allow_entry(entry))
            except ValueError as exc:
                raise ValueError(f"allow_private_hosts entry {exc}") from None
        self._names = tuple(e for e in parsed if e.name is not None)
        self._networks = tuple(e for e in parsed if e.network is not None)

    def lists_name(self, host: str) -> bool:
        """Whether ``host`` is listed by name, on any port."""
        name = host.lower().removesuffix(".")
        return any(entry.name == name for entry in self._names)

    def allows_name(self, host: str, port: int, scheme: str) -> bool:
        """Whether ``host`` is listed by name for this port: its addresses are then allowed."""
        name = host.lower().removesuffix(".")
        return any(e.name == name and e.allows_port(port, scheme) for e in self._names)

    def networks_allow_port(self, port: int, scheme: str) -> bool:
        """Whether any listed network is open on this port (worth resolving the name)."""
        return any(entry.allows_port(port, scheme) for entry in self._networks)

    def covers_address(self, ip: IPAddress) -> bool:
        """Whether ``ip`` is inside a listed network, on whatever port."""
        return any(_inside(ip, entry) for entry in self._networks)

    def allows_address(self, ip: IPAddress, port: int, scheme: str) -> bool:
        """Whether ``ip`` (or the IPv4 address it embeds) is inside a network open on ``port``."""
        return any(_inside(ip, e) and e.allows_port(port, scheme) for e in self._networks)


def _inside(ip: IPAddress, entry: AllowEntry) -> bool:
    candidates: tuple[IPAddress, ...] = (ip,)
    if isinstance(ip, IPv6Address):
        candidates += embedded_ipv4(IPv6Address(int(ip))) or ()
    return any(candidate in entry.network for candidate in candidates if entry.network)
