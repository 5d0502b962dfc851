"""The shared, pooled HTTP client for provider calls, with errors mapped at the boundary.

aiohttp errors never leave this module: connection failures become
``UpstreamUnavailableError`` and timeouts ``UpstreamTimeoutError``.

Nothing a provider sends is held without bound: a whole answer over its ``max_bytes`` is an
``UpstreamError``; an error body is read up to ``ERROR_BODY_BYTES`` and the rest dropped (the
message is at its start); headers are bounded by aiohttp (128 lines of 8 KiB).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import aiohttp
import msgspec

from aperture.errors import UpstreamError, UpstreamTimeoutError, UpstreamUnavailableError

__all__ = [
    "ERROR_BODY_BYTES",
    "Timeouts",
    "UpstreamClient",
    "UpstreamRequest",
    "UpstreamResponse",
    "UpstreamStream",
]

ERROR_BODY_BYTES = 1024 * 1024
"""How much of a provider's error body is read: enough for any message, never gigabytes."""


class UpstreamRequest(msgspec.Struct, frozen=True):
    """A fully built provider request: what a provider adapter returns and this sends."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    method: str = "POST"


class Timeouts(msgspec.Struct, frozen=True):
    connect_s: float
    total_s: float
    # Between two chunks of a stream; None lets a stream run as long as total allows.
    idle_s: float | None = None


class UpstreamResponse(msgspec.Struct, frozen=True):
    status: int
    headers: Mapping[str, str]
    body: bytes


class UpstreamStream:
    """An open streaming response; iterate ``chunks()`` and always ``aclose()`` it."""

    def __init__(self, response: aiohttp.ClientResponse, provider: str) -> None:
        self._response = response
        self._provider = provider
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        """The body of an error status, up to ``ERROR_BODY_BYTES``."""
        with _mapped(self._provider):
            return await _read_error_body(self._response)

    async def chunks(self) -> AsyncIterator[bytes]:
        with _mapped(self._provider):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.close()


class _mapped:
    """Translate aiohttp and timeout errors into the gateway's upstream errors."""

    def __init__(self, provider: str) -> None:
        self._provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            raise UpstreamTimeoutError(
                f"{self._provider} did not answer in time.", provider=self._provider
            ) from exc
        if isinstance(exc, aiohttp.ClientError):
            raise UpstreamUnavailableError(
                f"{self._provider} could not be reached: {type(exc).__name__}.",
                provider=self._provider,
            ) from exc


class UpstreamClient:
    """One pooled client for the whole process; owned and closed by the app lifespan."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    @classmethod
    def create(cls) -> UpstreamClient:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=30)
        # Cookies from one tenant's upstream must never reach another's request.
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )
        return cls(session)

    async def send(
        self,
        request: UpstreamRequest,
        timeouts: Timeouts,
        *,
        provider: str,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> UpstreamResponse:
        """Send ``request`` and read the whole answer.

        Raises:
            UpstreamError: the answer is over ``max_bytes``.
        """
        with _mapped(provider):
            async with self._session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=aiohttp.ClientTimeout(
                    total=timeouts.total_s, sock_connect=timeouts.connect_s
                ),
                allow_redirects=False,
            ) as response:
                if response.status >= 300:
                    body = await _read_error_body(response)
                else:
                    body = await _read_capped(response, max_bytes, provider)
                return UpstreamResponse(response.status, response.headers, body)

    async def open_stream(
        self, request: UpstreamRequest, timeouts: Timeouts, *, provider: str
    ) -> UpstreamStream:
        """Send ``request`` and return once the status and headers have arrived."""
        with _mapped(provider):
            response = await self._session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=aiohttp.ClientTimeout(
                    total=timeouts.total_s,
                    sock_connect=timeouts.connect_s,
                    sock_read=timeouts.idle_s,
                ),
                allow_redirects=False,
            )
        return UpstreamStream(response, provider)

    async def close(self) -> None:
        await self._session.close()
        # aiohttp closes TLS transports one loop turn after close() returns.
        await asyncio.sleep(0)


async def _read_capped(response: aiohttp.ClientResponse, limit: int, provider: str) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise _too_large(provider, declared, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _too_large(provider, size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_error_body(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        chunks.append(chunk[: ERROR_BODY_BYTES - size])
        size += len(chunks[-1])
        if size >= ERROR_BODY_BYTES:
            response.close()  # the rest is never read: the connection cannot be reused
            break
    return b"".join(chunks)


def _too_large(provider: str, size: int, limit: int) -> UpstreamError:
    return UpstreamError(
        f"{provider} answered with {size} bytes or more; the limit is {limit} bytes "
        "(providers[].max_response_bytes).",
        provider=provider,
    )
