"""Send a canonical request to a target: the one place adapters (pure) meet upstream (I/O)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import cast

from aperture.errors import UpstreamError, UpstreamUnavailableError, clip
from aperture.model import ChatRequest, ChatResponse, StreamEvent, Target
from aperture.providers import Authorizes, CountsTokens, Provider, StreamParser, provider_for
from aperture.upstream import (
    FrameTooLargeError,
    Timeouts,
    UpstreamClient,
    UpstreamRequest,
    UpstreamStream,
    frame_decoder,
)

__all__ = ["Dispatcher", "EventStream"]


class EventStream:
    """A provider stream whose status was a success, as canonical events; ``aclose()`` it.

    Read in batches: the events of one chunk from the provider arrive together, so they
    travel together, and a stream sent at once leaves in one write rather than one per
    event. Nothing waits for more: a batch is what one read brought, never more.
    """

    def __init__(
        self,
        stream: UpstreamStream,
        parser: StreamParser,
        provider: Provider,
        name: str,
        max_event_bytes: int,
    ) -> None:
        self._stream = stream
        self._parser = parser
        self._provider = provider
        self._name = name
        self._max_event_bytes = max_event_bytes
        self._batches = self._read()
        self._first: list[StreamEvent] = []

    @property
    def complete(self) -> bool:
        """The provider has sent the stream's end: no batch follows the one just read."""
        return self._parser.done

    async def prime(self) -> None:
        """Read the first events now, so an early failure raises before anything is relayed."""
        async for batch in self._batches:
            self._first = batch
            return

    async def events(self) -> AsyncIterator[StreamEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def batches(self) -> AsyncIterator[list[StreamEvent]]:
        """The events, a batch (never empty) per chunk the provider sent."""
        if self._first:
            first, self._first = self._first, []
            yield first
        async for batch in self._batches:
            yield batch

    async def _read(self) -> AsyncIterator[list[StreamEvent]]:
        decoder = frame_decoder(self._provider.stream_framing, self._max_event_bytes)
        parser = self._parser
        batch: list[StreamEvent] = []
        try:
            async for chunk in self._stream.chunks():
                with self._framing():
                    frames = decoder.feed(chunk)
                for frame in frames:
                    batch.extend(parser.feed(frame))
                if batch:
                    ready, batch = batch, []
                    yield ready
                if parser.done:
                    return
            with self._framing():
                frames = decoder.flush()  # a last NDJSON line without its newline still counts
            for frame in frames:
                batch.extend(parser.feed(frame))
        except Exception:
            if batch:  # what parsed before the failure still goes first
                yield batch
            raise
        if batch:
            yield batch
        if not parser.done and not self._provider.stream_ends_with_body:
            raise UpstreamUnavailableError(
                f"{self._name} ended the stream before it was complete.", provider=self._name
            )

    @contextmanager
    def _framing(self) -> Iterator[None]:
        """The decoder's errors in the gateway's terms: too large, or malformed."""
        try:
            yield
        except FrameTooLargeError as exc:
            raise UpstreamError(f"{self._name} sent {exc}.", provider=self._name) from exc
        except ValueError as exc:
            raise UpstreamUnavailableError(
                f"{self._name} sent a malformed stream ({clip(str(exc))}).", provider=self._name
            ) from exc

    async def aclose(self) -> None:
        try:
            await self._batches.aclose()  # type: ignore[attr-defined]  # an async generator
        finally:
            await self._stream.aclose()


class Dispatcher:
    """Builds, sends and parses; raises ``UpstreamError`` subclasses for every failure."""

    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    async def complete(self, request: ChatRequest, target: Target) -> ChatResponse:
        provider = provider_for(target.provider.kind, target.wire)
        upstream = await _built(provider, request, target)
        name = target.provider.name
        response = await self._client.send(
            upstream, _timeouts(target), provider=name, max_bytes=target.provider.max_response_bytes
        )
        if response.status >= 300:
            raise provider.parse_error(response.status, response.body, response.headers, target)
        return provider.parse_response(response.body, target)

    async def count_tokens(self, request: ChatRequest, target: Target) -> int | None:
        """The provider's own count of ``request``'s input tokens; None when its kind has no
        counting endpoint."""
        provider = provider_for(target.provider.kind)
        if not hasattr(provider, "count_request"):
            return None
        counter = cast(CountsTokens, provider)
        upstream = counter.count_request(request, target)
        if hasattr(provider, "authorize"):
            upstream = await cast(Authorizes, provider).authorize(upstream, target)
        response = await self._client.send(
            upstream, _timeouts(target), provider=target.provider.name
        )
        if response.status >= 300:
            raise provider.parse_error(response.status, response.body, response.headers, target)
        return counter.parse_count(response.body, target)

    async def open_stream(self, request: ChatRequest, target: Target) -> EventStream:
        provider = provider_for(target.provider.kind, target.wire)
        upstream = await _built(provider, request, target)
        name = target.provider.name
        stream = await self._client.open_stream(upstream, _timeouts(target), provider=name)
        if stream.status >= 300:
            try:
                body = await stream.read()
            finally:
                await stream.aclose()
            raise provider.parse_error(stream.status, body, stream.headers, target)
        return EventStream(
            stream, provider.stream_parser(target), provider, name, target.provider.max_event_bytes
        )


async def _built(provider: Provider, request: ChatRequest, target: Target) -> UpstreamRequest:
    built = provider.build_request(request, target)
    # hasattr, not isinstance() on a runtime Protocol, which walks every member per call.
    if hasattr(provider, "authorize"):
        # Signed per attempt: signatures expire, and credentials may have been refreshed.
        built = await cast(Authorizes, provider).authorize(built, target)
    return built


def _timeouts(target: Target) -> Timeouts:
    settings = target.provider
    return Timeouts(
        connect_s=settings.connect_timeout_s,
        total_s=settings.timeout_s,
        idle_s=settings.idle_timeout_s,
    )
