"""Audio and video parts held to the limits of the providers that would receive them.

Which kinds carry audio or video at all is already in the targets' capabilities (a kind
without ``ProviderSpec.audio`` gives none of its models ``audio``); this keeps, of those, the
targets whose kind takes each part's format, size and length (``MediaLimits``). Sizes come
from the base64 length, lengths from the WAV header (``media.duration``); nothing is decoded
beyond that header. When no target is left, the refusal names the part.
"""

from __future__ import annotations

from aperture.errors import GatewayError, MediaTooLargeError, UnsupportedCapabilityError
from aperture.media.duration import wav_seconds_b64
from aperture.model import Audio, ChatRequest, Video
from aperture.pipeline.context import RequestContext
from aperture.providers.registry import spec_for
from aperture.providers.spec import MediaLimits
from aperture.routing.catalog import TargetOption

__all__ = ["within_media_limits"]


def within_media_limits(
    ctx: RequestContext, request: ChatRequest, options: tuple[TargetOption, ...]
) -> tuple[TargetOption, ...]:
    """The targets whose kind takes every audio and video part of ``request``.

    Raises:
        UnsupportedCapabilityError: a part's format no target's provider takes.
        MediaTooLargeError: a part over every target's byte or length limit.
    """
    for m, message in enumerate(request.messages):
        if message.content is None or isinstance(message.content, str):
            continue
        for p, part in enumerate(message.content):
            if isinstance(part, Audio | Video):
                options = _keep(options, part, ctx.locator.part(m, p))
    return options


def _keep(
    options: tuple[TargetOption, ...], part: Audio | Video, param: str
) -> tuple[TargetOption, ...]:
    kept: list[TargetOption] = []
    refusal: GatewayError | None = None
    seconds = _seconds(part)
    for option in options:
        kind = option.target.provider.kind
        spec = spec_for(kind)
        limits = spec.audio if isinstance(part, Audio) else spec.video
        problem = _problem(part, limits, kind, seconds, param) if limits is not None else None
        if problem is None:
            kept.append(option)
        else:
            refusal = problem
    if not kept and refusal is not None:
        raise refusal
    return tuple(kept)


def _problem(
    part: Audio | Video, limits: MediaLimits, kind: str, seconds: float | None, param: str
) -> GatewayError | None:
    noun = "audio" if isinstance(part, Audio) else "video"
    fmt = _format(part)
    if limits.formats is not None and fmt is not None and fmt not in limits.formats:
        accepted = ", ".join(sorted(limits.formats))
        return UnsupportedCapabilityError(
            f"The {noun} is {fmt}; the {kind} provider takes {noun} in {accepted}.", param=param
        )
    size = _size(part)
    if limits.max_bytes is not None and size is not None and size > limits.max_bytes:
        return MediaTooLargeError(
            f"The {noun} is {size} bytes; the {kind} provider takes at most {limits.max_bytes}.",
            param=param,
        )
    if limits.max_seconds is not None and seconds is not None and seconds > limits.max_seconds:
        return MediaTooLargeError(
            f"The {noun} plays {seconds:.0f} s; the {kind} provider takes at most "
            f"{limits.max_seconds:.0f} s.",
            param=param,
        )
    return None


def _format(part: Audio | Video) -> str | None:
    if isinstance(part, Audio):
        return part.format.lower()
    if part.url[:5].lower() == "data:":
        return part.url[5 : part.url.find(";", 5, 5 + 128)].lower() or None
    return None


def _size(part: Audio | Video) -> int | None:
    """The decoded size of inline data, from its base64 length; None for a URL."""
    if isinstance(part, Audio):
        payload_chars, tail = len(part.data), part.data[-2:]
    else:
        comma = part.url.find(",", 5, 5 + 512) if part.url[:5].lower() == "data:" else -1
        if comma < 0:
            return None
        payload_chars, tail = len(part.url) - comma - 1, part.url[-2:]
    return payload_chars * 3 // 4 - tail.count("=")


def _seconds(part: Audio | Video) -> float | None:
    if isinstance(part, Audio) and part.format.lower() == "wav":
        return wav_seconds_b64(part.data)
    return None
