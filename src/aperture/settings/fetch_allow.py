"""The syntax of ``images.fetch.allow_private_hosts`` entries, read once for settings and fetcher.

An entry names what the image fetcher may reach although it is private, and nothing more::

    images.internal            the name, on the scheme's standard port (http 80, https 443)
    images.internal:8443       the name, on port 8443 only
    10.0.0.0/8                 addresses in the network, on the standard ports
    10.0.0.0/8:8443            addresses in the network, on port 8443 only
    192.168.1.5[:8443]         one IPv4 address (a /32)
    fd00::/8  or  [fd00::/8]   an IPv6 network on the standard ports (brackets optional)
    [fd00::/8]:8443            an IPv6 network on port 8443 (brackets needed with a port)

A name allows whatever addresses it resolves to, only when the URL names it; it never opens
those addresses to other names or ports. Addresses are written in dotted-quad or standard
IPv6 form: a legacy spelling such as ``127.1`` is refused rather than read as a host name.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network, ip_network

import msgspec

__all__ = ["STANDARD_PORTS", "AllowEntry", "is_valid_hostname", "parse_allow_entry"]

STANDARD_PORTS = {"http": 80, "https": 443}

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)


class AllowEntry(msgspec.Struct, frozen=True):
    """One entry: a host name or a network (exactly one), and its port (None: standard)."""

    name: str | None = None
    network: IPv4Network | IPv6Network | None = None
    port: int | None = None

    def allows_port(self, port: int, scheme: str) -> bool:
        wanted = self.port if self.port is not None else STANDARD_PORTS.get(scheme)
        return port == wanted


def is_valid_hostname(host: str) -> bool:
    """Whether ``host`` (lower-case ASCII) is a plain DNS name; a trailing dot is allowed."""
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def parse_allow_entry(text: str) -> AllowEntry:
    """The entry ``text`` spells.

    Raises:
        ValueError: with a message saying what is wrong and what is accepted.
    """
    entry = text.strip().lower()
    if entry.startswith("["):
        inside, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: write an IPv6 entry as [address] or [network]:port")
        return AllowEntry(network=_network(inside, text, version=6), port=_port(rest[1:], text))
    if entry.count(":") >= 2:
        return AllowEntry(network=_network(entry, text, version=6))  # bare IPv6, no port
    head, colon, port_text = entry.partition(":")
    port = _port(port_text, text) if colon else None
    last_label = head.removesuffix(".").rpartition(".")[2]
    if "/" in head or last_label.isdigit():
        # No top-level domain is numeric: this is meant as an address, so read it as one.
        return AllowEntry(network=_network(head, text, version=4), port=port)
    if not is_valid_hostname(head):
        raise ValueError(
            f"{text!r} is neither an ASCII host name nor an IP address or CIDR "
            "(optionally followed by :port)"
        )
    return AllowEntry(name=head.removesuffix("."), port=port)


def _network(spelled: str, text: str, *, version: int) -> IPv4Network | IPv6Network:
    try:
        network = ip_network(spelled, strict=False)
    except ValueError:
        network = None
    if network is None or network.version != version or "%" in spelled:
        kind = (
            "an IPv4 address or CIDR (dotted quad)" if version == 4 else "an IPv6 address or CIDR"
        )
        raise ValueError(f"{text!r}: {spelled!r} is not {kind}")
    return network


def _port(spelled: str, text: str) -> int | None:
    if not spelled:
        if text.strip().endswith(":"):
            raise ValueError(f"{text!r}: the port after ':' is missing")
        return None
    if not _PORT.fullmatch(spelled) or not 1 <= int(spelled) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return int(spelled)
