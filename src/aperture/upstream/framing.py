"""How a streamed body is cut into frames: SSE events, NDJSON lines or AWS event-stream
messages. Sans-IO: bytes in, frames out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from aperture.upstream.eventstream import EventStreamDecoder
from aperture.upstream.ndjson import NdjsonDecoder
from aperture.upstream.sse import SseDecoder

__all__ = ["FrameDecoder", "Framing", "frame_decoder"]

Framing = Literal["sse", "ndjson", "aws-eventstream"]


class FrameDecoder(Protocol):
    def feed(self, chunk: bytes) -> Sequence[object]:
        """The frames ``chunk`` completed.

        Raises:
            ValueError: the bytes break the framing (a bad CRC, an oversized frame).
        """
        ...


def frame_decoder(framing: Framing) -> FrameDecoder:
    match framing:
        case "sse":
            return SseDecoder()
        case "ndjson":
            return NdjsonDecoder()
        case "aws-eventstream":
            return EventStreamDecoder()
