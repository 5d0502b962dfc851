"""What an image URL, or a redirect's Location, may look like before anything is resolved.

Owns the first steps of security.md §1.3: parse once with yarl (the parser aiohttp itself
uses, so the URL checked is the URL fetched), then refuse anything but http(s), userinfo,
hosts that are neither a DNS name nor an IP literal, and downgrades from https. Also owns
``Refusal``, the fetcher's internal failure, which becomes a public error once per caller.
"""

from __future__ import annotations

import msgspec
from yarl import URL

from aperture.errors import (
    GatewayError,
    ImageFetchFailedError,
    ImageTooLargeError,
    ImageUrlNotAllowedError,
)
from aperture.upstream._fetch_address import IPAddress, is_valid_hostname, parse_ip_literal

__all__ = ["Refusal", "Target", "failed", "first_target", "next_target", "not_allowed"]

_MAX_URL_CHARS = 8192  # long enough for presigned URLs with session tokens


class Refusal(Exception):
    """A failure decided inside a fetch; each caller gets it as a public error with its param.

    It carries a reason and never the URL: the public message names the host alone.
    """

    def __init__(self, kind: type[GatewayError], reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason

    def public(self, host: str | None, param: str | None) -> GatewayError:
        where = f" for host '{host}'" if host else ""
        if self.kind is ImageUrlNotAllowedError:
            message = f"The image URL{where} is not allowed: {self.reason}."
        elif self.kind is ImageTooLargeError:
            message = f"The image{where} is too large: {self.reason}."
        else:
            message = f"The image{where} could not be fetched: {self.reason}."
        return self.kind(message, param=param)


def not_allowed(reason: str) -> Refusal:
    return Refusal(ImageUrlNotAllowedError, reason)


def failed(reason: str) -> Refusal:
    return Refusal(ImageFetchFailedError, reason)


class Target(msgspec.Struct, frozen=True):
    """One hop: the URL to request, the host and port it names, and the host's IP if literal."""

    url: URL
    host: str
    port: int
    literal: IPAddress | None


def first_target(raw: str, *, allow_http: bool) -> Target:
    """The URL a client sent, checked as a string first and then as yarl parses it."""
    if len(raw) > _MAX_URL_CHARS:
        raise not_allowed("the URL is too long")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in raw):
        raise not_allowed("the URL contains whitespace or control characters")
    # yarl drops an empty userinfo ("http://@host/"); refuse any "@" in the authority.
    authority = raw.partition("://")[2]
    for stop in "/?#":
        authority = authority.partition(stop)[0]
    if "@" in authority:
        raise not_allowed("credentials in the URL are not accepted")
    try:
        url = URL(raw)
    except (ValueError, TypeError):
        # Not chained: yarl's message may quote the URL, query string and all.
        raise not_allowed("the URL is not valid") from None
    return _target(url, allow_http=allow_http)


def next_target(current: Target, location: str | None, *, allow_http: bool) -> Target:
    """Where a redirect from ``current`` leads, checked like the first URL."""
    if not location:
        raise failed("a redirect without a location")
    try:
        url = current.url.join(URL(location, encoded=False))
    except (ValueError, TypeError):
        raise failed("a redirect to an invalid URL") from None  # may quote the URL
    following = _target(url, allow_http=allow_http)
    if current.url.scheme == "https" and following.url.scheme != "https":
        raise not_allowed("a redirect from https to http")
    return following


def _target(url: URL, *, allow_http: bool) -> Target:
    schemes = ("https", "http") if allow_http else ("https",)
    if url.scheme not in schemes:
        raise not_allowed(f"only {' and '.join(schemes)} URLs can be fetched")
    if url.raw_user is not None or url.raw_password is not None:
        raise not_allowed("credentials in the URL are not accepted")
    host = (url.raw_host or "").lower()
    if not host:
        raise not_allowed("the URL has no host")
    literal = parse_ip_literal(host)
    if literal is None and not is_valid_hostname(host):
        raise not_allowed("the host is not a valid name or address")
    if literal is not None:
        # Canonical spelling, so aiohttp dials exactly the address judged (it refuses the
        # legacy forms itself) and the audit log shows what was reached.
        host = str(literal)
        url = url.with_host(host)
    if not url.port:
        raise not_allowed("port 0 is not allowed")
    return Target(url, host.removesuffix("."), url.port, literal)
