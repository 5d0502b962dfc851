"""The narrow contract every provider adapter fulfils."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from aperture.errors import UpstreamError
from aperture.model import ChatRequest, ChatResponse, StreamEvent
from aperture.model.target import Target
from aperture.upstream import Framing, UpstreamRequest

__all__ = ["Authorizes", "CountsTokens", "Provider", "StreamParser"]


class StreamParser(Protocol):
    """Turns one provider's stream, event by event, into canonical stream events."""

    done: bool
    """True once the provider has said the stream is complete."""

    def feed(self, event: Any) -> list[StreamEvent]:
        """Canonical events for one frame of the provider's ``stream_framing``.

        An ``SseEvent`` for SSE, a ``str`` line for NDJSON, an event-stream ``Frame`` for AWS.

        Raises:
            UpstreamError: the provider reported an error in-band, after its 200.
        """
        ...


class Provider(Protocol):
    """Builds requests for one provider kind and parses what comes back. Never does I/O."""

    stream_framing: ClassVar[Framing]
    """How the provider frames a streamed body."""
    stream_ends_with_body: ClassVar[bool]
    """True when a clean end of the body completes a stream (no terminator event)."""

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        """The complete HTTP request for ``target``, credentials included."""
        ...

    def parse_response(self, body: bytes, target: Target) -> ChatResponse:
        """The canonical response from a successful body.

        Raises:
            UpstreamError: the body is not what the provider documents.
        """
        ...

    def stream_parser(self, target: Target) -> StreamParser:
        """A fresh parser for one streaming response."""
        ...

    def parse_error(
        self, status: int, body: bytes, headers: Mapping[str, str], target: Target
    ) -> UpstreamError:
        """The gateway error for a non-2xx answer, classified for retries and clients."""
        ...


@runtime_checkable
class Authorizes(Protocol):
    """A provider whose requests are signed at send time (credentials need I/O, and a
    signature expires): dispatch calls ``authorize`` on every attempt."""

    async def authorize(self, request: UpstreamRequest, target: Target) -> UpstreamRequest:
        """``request`` with its credentials added.

        Raises:
            UpstreamError: no credentials could be found.
        """
        ...


@runtime_checkable
class CountsTokens(Protocol):
    """A provider with its own token-counting endpoint (Anthropic's ``count_tokens``)."""

    def count_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        """The HTTP request asking ``target`` to count ``request``'s input tokens."""
        ...

    def parse_count(self, body: bytes, target: Target) -> int:
        """The input tokens a successful count answer says.

        Raises:
            UpstreamError: the body is not what the provider documents.
        """
        ...
