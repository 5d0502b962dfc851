"""Outbound HTTP: the only package that imports the HTTP client, plus stream framing."""

from aperture.upstream.client import (
    Timeouts,
    UpstreamClient,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamStream,
)
from aperture.upstream.framing import (
    DEFAULT_MAX_EVENT_BYTES,
    FrameDecoder,
    FrameTooLargeError,
    Framing,
    frame_decoder,
)
from aperture.upstream.sse import SseDecoder, SseEvent

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "FrameDecoder",
    "FrameTooLargeError",
    "Framing",
    "SseDecoder",
    "SseEvent",
    "Timeouts",
    "UpstreamClient",
    "UpstreamRequest",
    "UpstreamResponse",
    "UpstreamStream",
    "frame_decoder",
]
