"""The shared, pooled HTTP client for provider calls, with errors mapped at the boundary.

aiohttp errors never leave this module: connection failures become
``UpstreamUnavailableError`` and timeouts ``UpstreamTimeoutError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import aiohttp
import msgspec

from aperture.errors import UpstreamTimeoutError, UpstreamUnavailableError

__all__ = ["Timeouts", "UpstreamClient", "UpstreamRequest", "UpstreamResponse", "UpstreamStream"]


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
        """The whole body (used for error statuses, whose bodies are small)."""
        with _mapped(self._provider):
            return await self._response.read()

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
        self, request: UpstreamRequest, timeouts: Timeouts, *, provider: str
    ) -> UpstreamResponse:
        """Send ``request`` and read the whole answer."""
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
                body = await response.read()
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
