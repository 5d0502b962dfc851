"""The narrow contract every provider adapter fulfils."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from aperture.errors import UpstreamError
from aperture.model import ChatRequest, ChatResponse, StreamEvent
from aperture.model.target import Target
from aperture.upstream import SseEvent, UpstreamRequest

__all__ = ["Provider", "StreamParser"]


class StreamParser(Protocol):
    """Turns one provider's stream, event by event, into canonical stream events."""

    done: bool
    """True once the provider has said the stream is complete."""

    def feed(self, event: SseEvent) -> list[StreamEvent]:
        """Canonical events for one provider event.

        Raises:
            UpstreamError: the provider reported an error in-band, after its 200.
        """
        ...


class Provider(Protocol):
    """Builds requests for one provider kind and parses what comes back. Never does I/O."""

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
