"""Outbound HTTP: the only package that imports the HTTP client, plus stream framing."""

from aperture.upstream.client import (
    Timeouts,
    UpstreamClient,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamStream,
)
from aperture.upstream.framing import FrameDecoder, Framing, frame_decoder
from aperture.upstream.sse import SseDecoder, SseEvent

__all__ = [
    "FrameDecoder",
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
