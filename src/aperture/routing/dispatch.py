"""Send a canonical request to a target: the one place adapters (pure) meet upstream (I/O)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aperture.errors import UpstreamUnavailableError
from aperture.model import ChatRequest, ChatResponse, StreamEvent, Target
from aperture.providers import StreamParser, provider_for
from aperture.upstream import SseDecoder, Timeouts, UpstreamClient, UpstreamStream

__all__ = ["Dispatcher", "EventStream"]


class EventStream:
    """A provider stream whose status was a success, as canonical events; ``aclose()`` it."""

    def __init__(self, stream: UpstreamStream, parser: StreamParser, provider: str) -> None:
        self._stream = stream
        self._parser = parser
        self._provider = provider

    async def events(self) -> AsyncIterator[StreamEvent]:
        decoder = SseDecoder()
        async for chunk in self._stream.chunks():
            for sse in decoder.feed(chunk):
                for event in self._parser.feed(sse):
                    yield event
            if self._parser.done:
                return
        if not self._parser.done:
            raise UpstreamUnavailableError(
                f"{self._provider} ended the stream before it was complete.",
                provider=self._provider,
            )

    async def aclose(self) -> None:
        await self._stream.aclose()


class Dispatcher:
    """Builds, sends and parses; raises ``UpstreamError`` subclasses for every failure."""

    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    async def complete(self, request: ChatRequest, target: Target) -> ChatResponse:
        provider = provider_for(target.provider.kind)
        upstream = provider.build_request(request, target)
        name = target.provider.name
        response = await self._client.send(upstream, _timeouts(target), provider=name)
        if response.status >= 300:
            raise provider.parse_error(response.status, response.body, response.headers, target)
        return provider.parse_response(response.body, target)

    async def open_stream(self, request: ChatRequest, target: Target) -> EventStream:
        provider = provider_for(target.provider.kind)
        upstream = provider.build_request(request, target)
        name = target.provider.name
        stream = await self._client.open_stream(upstream, _timeouts(target), provider=name)
        if stream.status >= 300:
            try:
                body = await stream.read()
            finally:
                await stream.aclose()
            raise provider.parse_error(stream.status, body, stream.headers, target)
        return EventStream(stream, provider.stream_parser(target), name)


def _timeouts(target: Target) -> Timeouts:
    settings = target.provider
    return Timeouts(connect_s=settings.connect_timeout_s, total_s=settings.timeout_s)
