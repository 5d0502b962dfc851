"""How a streamed body is cut into frames: SSE events, NDJSON lines or AWS event-stream
messages. Sans-IO: bytes in, frames out, in time linear in the bytes, with one frame capped
at ``max_event_bytes`` (``providers[].max_event_bytes``, 16 MiB by default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from aperture.upstream.eventstream import EventStreamDecoder
from aperture.upstream.lines import DEFAULT_MAX_EVENT_BYTES, FrameTooLargeError
from aperture.upstream.ndjson import NdjsonDecoder
from aperture.upstream.sse import SseDecoder

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "FrameDecoder",
    "FrameTooLargeError",
    "Framing",
    "frame_decoder",
]

Framing = Literal["sse", "ndjson", "aws-eventstream"]


class FrameDecoder(Protocol):
    def feed(self, chunk: bytes) -> Sequence[object]:
        """The frames ``chunk`` completed.

        Raises:
            FrameTooLargeError: one frame is over ``max_event_bytes``.
            ValueError: the bytes break the framing (a bad CRC, bad UTF-8).
        """
        ...

    def flush(self) -> Sequence[object]:
        """The frames a body that has ended completes (an NDJSON line without its LF)."""
        ...


def frame_decoder(framing: Framing, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> FrameDecoder:
    match framing:
        case "sse":
            return SseDecoder(max_event_bytes)
        case "ndjson":
            return NdjsonDecoder(max_event_bytes)
        case "aws-eventstream":
            return EventStreamDecoder(max_event_bytes)
