"""The ``images.fetch.allow_private_hosts`` syntax, and its errors through ``check-config``."""

from __future__ import annotations

import re
from ipaddress import ip_network
from pathlib import Path

import pytest

from aperture.cli import main
from aperture.settings import ConfigError, parse_settings
from aperture.settings.fetch_allow import AllowEntry, parse_allow_entry


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("images.internal", AllowEntry(name="images.internal")),
        ("Images.Internal.", AllowEntry(name="images.internal")),
        ("images.internal:8443", AllowEntry(name="images.internal", port=8443)),
        ("localhost:1", AllowEntry(name="localhost", port=1)),
        ("10.0.0.0/8", AllowEntry(network=ip_network("10.0.0.0/8"))),
        ("10.0.0.0/8:8443", AllowEntry(network=ip_network("10.0.0.0/8"), port=8443)),
        ("192.168.1.5", AllowEntry(network=ip_network("192.168.1.5/32"))),
        ("192.168.1.5:65535", AllowEntry(network=ip_network("192.168.1.5/32"), port=65535)),
        ("fd00::/8", AllowEntry(network=ip_network("fd00::/8"))),
        ("::1", AllowEntry(network=ip_network("::1/128"))),
        ("[::1]", AllowEntry(network=ip_network("::1/128"))),
        ("[::1]:8443", AllowEntry(network=ip_network("::1/128"), port=8443)),
        ("[fd00::/8]:8443", AllowEntry(network=ip_network("fd00::/8"), port=8443)),
    ],
)
def test_entries_are_a_name_or_network_with_an_optional_port(text: str, entry: AllowEntry) -> None:
    assert parse_allow_entry(text) == entry


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "neither"),
        ("not a host", "neither"),
        ("bücher.example", "neither"),
        ("images.internal:", "port after ':' is missing"),
        ("images.internal:0", "1 to 65535"),
        ("images.internal:65536", "1 to 65535"),
        ("images.internal:+80", "1 to 65535"),
        ("images.internal:http", "1 to 65535"),
        ("10.0.0.0/33", "IPv4 address or CIDR"),
        ("127.1", "IPv4 address or CIDR"),  # a legacy spelling, not a name
        ("2130706433", "IPv4 address or CIDR"),
        ("10.0.0.0/8:80:81", "IPv6 address or CIDR"),
        ("[10.0.0.1]:80", "IPv6 address or CIDR"),
        ("[::1]8443", "[address] or [network]:port"),
        ("[::1", "[address] or [network]:port"),
        ("fd00::/8:8443", "IPv6 address or CIDR"),  # a port after bare IPv6 is ambiguous
        ("[fe80::1%eth0]", "IPv6 address or CIDR"),
    ],
)
def test_malformed_entries_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(repr(text))) as caught:
        parse_allow_entry(text)
    assert says in str(caught.value)


def test_an_entry_without_a_port_allows_only_the_schemes_standard_port() -> None:
    bare, written = parse_allow_entry("images.internal"), parse_allow_entry("images.internal:8443")
    assert bare.allows_port(80, "http") and bare.allows_port(443, "https")
    assert not bare.allows_port(443, "http") and not bare.allows_port(80, "https")
    assert not bare.allows_port(8443, "https")
    assert written.allows_port(8443, "https") and written.allows_port(8443, "http")
    assert not written.allows_port(443, "https")  # writing a port names that port alone


def _config(*entries: str) -> str:
    listed = ", ".join(f'"{entry}"' for entry in entries)
    return f"images: {{fetch: {{allow_private_hosts: [{listed}]}}}}\n"


def test_settings_report_each_bad_entry_by_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(_config("images.internal:8443", "10.0.0.0/8:99999", "127.1"), {})
    paths = [problem.path for problem in caught.value.problems]
    assert paths == ["images.fetch.allow_private_hosts[1]", "images.fetch.allow_private_hosts[2]"]
    good = parse_settings(_config("images.internal:8443", "[fd00::/8]:8443"), {})
    assert good.images.fetch.allow_private_hosts == ("images.internal:8443", "[fd00::/8]:8443")


def test_check_config_names_the_bad_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "aperture.yaml"
    config.write_text(_config("images.internal", "images.internal:port"))
    assert main(["check-config", str(config)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("config error: images.fetch.allow_private_hosts[1]: ")
    assert "1 to 65535" in line
