"""The safe image fetcher: the only way a user-supplied image URL becomes bytes.

Owns the SSRF defence of security.md §1.3, in its order: parse once and check the URL's
shape (``_fetch_url``); allow only the configured ports; resolve once; refuse if any address
is not public, unless ``allow_private_hosts`` opens that address or name on that very port
(``_fetch_address``); connect to exactly the addresses checked, on the port checked (an
aiohttp resolver that returns them, so Host and TLS SNI keep the hostname); follow redirects by
hand, re-checking every hop; one deadline over the whole chain; a byte cap counted while
reading; no decompression, cookies or environment proxies; the body sniffed as an image.
Successes are cached (``_fetch_cache``) and concurrent fetches of one URL share a download.
Errors name the host only: presigned URLs carry credentials in their query strings.

aiohttp errors never leave this module; they become ``ImageFetchFailedError``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address
from typing import Protocol

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult

from aperture.errors import ImageTooLargeError
from aperture.media.sniff import sniff, sniff_non_image
from aperture.upstream._fetch_address import IPAddress, PrivateAllowance, is_public
from aperture.upstream._fetch_cache import ExpiringLru, cache_ttl
from aperture.upstream._fetch_url import (
    Refusal,
    Target,
    failed,
    first_target,
    next_target,
    not_allowed,
)

__all__ = ["FetchPolicy", "FetchedImage", "ImageFetcher", "Resolver"]

_USER_AGENT = "Aperture-ImageFetcher/1"
_HEADERS = {
    "User-Agent": _USER_AGENT,
    "Accept": "image/*, */*;q=0.1",
    # Compressed bodies would let a small transfer expand past the byte cap.
    "Accept-Encoding": "identity",
}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK_BYTES = 64 * 1024
_DEFAULT_TTL_S = 300.0
_CONTENT_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$&^_.+-/")


class FetchedImage(msgspec.Struct, frozen=True):
    data: bytes
    content_type: str | None  # as the server said (informational; the caller sniffs)
    host: str  # the host of the FINAL URL, for audit; never the path or query
    url_host: str  # the host of the URL the client sent


class FetchPolicy(msgspec.Struct, frozen=True):
    timeout_s: float = 10.0  # total, whole fetch including redirects
    connect_timeout_s: float = 3.0
    max_redirects: int = 3
    max_bytes: int = 20_000_000
    # Names or CIDRs allowed even if private, each on the scheme's standard port unless one
    # is written ("images.internal", "images.internal:8443", "10.1.0.0/16:8080").
    allow_private_hosts: tuple[str, ...] = ()
    allow_http: bool = True  # https always; http too unless False
    # The ports public addresses may be reached on; allow_private_hosts entries name theirs.
    allowed_ports: tuple[int, ...] = (80, 443)


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, as IP address strings."""
        ...


class _SystemResolver:
    """The default: the event loop's getaddrinfo, every A and AAAA answer."""

    async def resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedResolver(AbstractResolver):
    """Hands aiohttp the addresses already checked, so it can never connect anywhere else.

    aiohttp still sees the hostname, so it sends it as Host and as TLS SNI and verifies the
    certificate against it; only the address it dials comes from here.
    """

    def __init__(self) -> None:
        # By host and port: the addresses were judged for that port alone.
        self.pins: dict[tuple[str, int], list[IPAddress]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        addresses = self.pins.get((host.lower().removesuffix("."), port))
        if not addresses:
            raise OSError(f"no checked address for {host} port {port}")
        results: list[ResolveResult] = []
        for ip in addresses:
            ip_family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            if family in (socket.AF_UNSPEC, ip_family):
                results.append(
                    ResolveResult(
                        hostname=host, host=str(ip), port=port, family=ip_family, proto=0, flags=0
                    )
                )
        return results

    async def close(self) -> None:
        return None


@contextmanager
def _mapped_client_errors() -> Iterator[None]:
    """Translate aiohttp's errors, unchained: their text quotes the URL, query string and all."""
    try:
        yield
    except TimeoutError:  # aiohttp's connect and read timeouts subclass it
        raise failed("timeout") from None
    except aiohttp.ClientSSLError:
        raise failed("the TLS handshake or certificate check failed") from None
    except aiohttp.ClientPayloadError:
        raise failed("the response body was cut short or malformed") from None
    except aiohttp.ClientResponseError:
        raise failed("the response was malformed") from None
    except aiohttp.ClientError as exc:
        raise failed(f"connection failed ({type(exc).__name__})") from None


class ImageFetcher:
    """Fetches image URLs under one policy, with a shared cache; owned by the app lifespan."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver | None = None,
        cache_bytes: int = 64_000_000,
    ) -> None:
        self._policy = policy
        self._resolver: Resolver = resolver or _SystemResolver()
        self._allowance = PrivateAllowance(policy.allow_private_hosts)
        self._cache: ExpiringLru[FetchedImage] = ExpiringLru(cache_bytes)
        # One download per URL at a time; None tells waiters the leader gave up (cancelled).
        self._inflight: dict[str, asyncio.Future[FetchedImage | Refusal | None]] = {}
        self._closed = False

    async def fetch(self, url: str, *, param: str | None = None) -> FetchedImage:
        """The image at ``url``; ``param`` is put on every error raised."""
        if self._closed:
            raise RuntimeError("the image fetcher is closed")
        try:
            first = first_target(url, allow_http=self._policy.allow_http)
        except Refusal as refusal:
            raise refusal.public(None, param) from refusal.__cause__
        while (cached := self._cache.get(url)) is None:
            pending = self._inflight.get(url)
            if pending is None:
                return await self._lead(url, first, param)
            # Shielded: a waiter that is cancelled must not cancel the shared download.
            outcome = await asyncio.shield(pending)
            if outcome is not None:
                return _settle(outcome, first.host, param)
        return cached

    async def _lead(self, url: str, first: Target, param: str | None) -> FetchedImage:
        """Download ``url`` on behalf of every caller that asks for it meanwhile."""
        future: asyncio.Future[FetchedImage | Refusal | None]
        future = asyncio.get_running_loop().create_future()
        self._inflight[url] = future
        outcome: FetchedImage | Refusal | None = None
        try:
            outcome = await self._download(url, first)
            return _settle(outcome, first.host, param)
        finally:
            del self._inflight[url]
            future.set_result(outcome)  # None if we were cancelled: a waiter takes over

    async def close(self) -> None:
        """Forget the cache; each fetch owns and closes its own connections."""
        self._closed = True
        self._cache.clear()

    async def _download(self, url: str, first: Target) -> FetchedImage | Refusal:
        resolver = _PinnedResolver()
        policy = self._policy
        connector = aiohttp.TCPConnector(
            resolver=resolver,
            use_dns_cache=False,
            # A kept-alive connection would let a later hop (or host) on the same address
            # reuse a TLS session whose certificate was checked for another name.
            force_close=True,
        )
        timeout = aiohttp.ClientTimeout(
            total=None, connect=policy.connect_timeout_s, sock_connect=policy.connect_timeout_s
        )
        async with aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=False,
            timeout=timeout,
            headers=_HEADERS,
        ) as session:
            try:
                async with asyncio.timeout(policy.timeout_s):
                    image, ttl_s = await self._follow(session, resolver, first)
            except TimeoutError:
                return failed("timeout")
            except Refusal as refusal:
                return refusal
        if ttl_s is not None:
            self._cache.put(url, image, size=len(image.data) + len(url), ttl_s=ttl_s)
        return image

    async def _follow(
        self, session: aiohttp.ClientSession, resolver: _PinnedResolver, target: Target
    ) -> tuple[FetchedImage, float | None]:
        first_host = target.host
        for hop in range(self._policy.max_redirects + 1):
            resolver.pins[target.host, target.port] = await self._vet(target)
            with _mapped_client_errors():
                async with session.get(target.url, allow_redirects=False) as response:
                    if response.status not in _REDIRECTS:
                        return await self._accept(response, target.host, first_host)
                    if hop == self._policy.max_redirects:
                        break
                    location = response.headers.get("Location")
                    target = next_target(target, location, allow_http=self._policy.allow_http)
        raise failed("too many redirects")

    async def _vet(self, target: Target) -> list[IPAddress]:
        """Resolve once and judge every answer on the target's port; the result is all the
        connection may use, and only on that port."""
        allowance, public_ports = self._allowance, self._policy.allowed_ports
        port, scheme = target.port, target.url.scheme
        named = allowance.allows_name(target.host, port, scheme)
        if (
            not named
            and port not in public_ports
            and not allowance.networks_allow_port(port, scheme)
        ):
            # Refused before resolving: no address could make this port acceptable.
            raise not_allowed(f"port {port} is not allowed")
        if target.literal is not None:
            addresses = [target.literal]
        else:
            addresses = await self._resolve(target)
        if named:
            return addresses
        for ip in addresses:
            if allowance.allows_address(ip, port, scheme):
                continue
            if is_public(ip) and port in public_ports:
                continue
            # Say "port" when the address is open on another one, so the operator sees
            # which entry to write.
            listed = allowance.lists_name(target.host) or allowance.covers_address(ip)
            if is_public(ip) or listed:
                raise not_allowed(f"port {port} is not allowed")
            raise not_allowed("its address is private or reserved")
        return addresses

    async def _resolve(self, target: Target) -> list[IPAddress]:
        try:
            answers = await self._resolver.resolve(target.host, target.port)
            addresses = [ip_address(answer) for answer in answers]
        except (OSError, ValueError) as exc:
            raise failed("the host could not be resolved") from exc
        if not addresses:
            raise failed("the host could not be resolved")
        return addresses

    async def _accept(
        self, response: aiohttp.ClientResponse, host: str, url_host: str
    ) -> tuple[FetchedImage, float | None]:
        if not 200 <= response.status < 300:
            raise failed(f"upstream status {response.status}")
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise failed("compressed responses are not accepted")
        limit = self._policy.max_bytes
        declared = response.content_length
        if declared is not None and declared > limit:
            raise Refusal(ImageTooLargeError, f"more than {limit} bytes")
        data = await _read_capped(response, limit)
        content_type = response.headers.get("Content-Type")
        if sniff(data) is None:
            raise failed(f"not an image ({_describe(data, content_type)})")
        ttl_s = cache_ttl(",".join(response.headers.getall("Cache-Control", ())), _DEFAULT_TTL_S)
        return FetchedImage(data, content_type, host=host, url_host=url_host), ttl_s


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    # Counted as it arrives: Content-Length may be absent, and chunked bodies carry none.
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        total += len(chunk)
        if total > limit:
            raise Refusal(ImageTooLargeError, f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(data: bytes, content_type: str | None) -> str:
    """What the body is instead, for the error: sniffed, else the declared type if sane."""
    if not data:
        return "empty body"
    known = sniff_non_image(data)
    if known is not None:
        return known
    declared = (content_type or "").partition(";")[0].strip().lower()
    if 0 < len(declared) <= 100 and set(declared) <= _CONTENT_TYPE_CHARS:
        return declared
    return "unknown type"


def _settle(outcome: FetchedImage | Refusal, host: str, param: str | None) -> FetchedImage:
    if isinstance(outcome, FetchedImage):
        return outcome
    raise outcome.public(host, param) from outcome.__cause__
