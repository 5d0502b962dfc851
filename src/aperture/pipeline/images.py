"""Stage: check every image before anything leaves, and apply the URL policy."""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec

from aperture.errors import ImageDecodeError, ImageUrlNotAllowedError, ImageUrlNotSupportedError
from aperture.images import ImageLimits, inspect_data_uri
from aperture.model import ChatRequest, Image, Message, Part
from aperture.pipeline.context import RequestContext
from aperture.settings import ImageSettings, UrlPolicy

__all__ = ["ACCEPTED_MIME_TYPES", "IntakeImages"]

# What every OpenAI-compatible vision API takes; conversion of the rest comes with the
# image pipeline's per-target normalisation.
ACCEPTED_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

# The seed gateway's wording, which its users already know.
_URL_NOT_SUPPORTED = (
    "Cloud providers don't fetch URLs server-side. Encode the image as a base64 data URI "
    "(data:image/jpeg;base64,...) and send it inline."
)


class IntakeImages:
    def __init__(self, settings: ImageSettings) -> None:
        self._limits = ImageLimits(
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            accepted=ACCEPTED_MIME_TYPES,
        )

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        images = request.images()
        if not images:
            return request
        assert ctx.entry is not None, "ResolveModel runs first"
        policy = ctx.entry.url_policy
        replaced: dict[tuple[int, int], Image] = {}
        for m, p, image in images:
            checked = self._check(image, policy, ctx.locator.image(m, p))
            if checked is not image:
                replaced[m, p] = checked
        if not replaced:
            return request
        messages = tuple(
            _replace_parts(message, m, replaced) for m, message in enumerate(request.messages)
        )
        return msgspec.structs.replace(request, messages=messages)

    def _check(self, image: Image, policy: UrlPolicy, param: str) -> Image:
        if image.is_data_uri:
            url, inline = inspect_data_uri(image.url, self._limits, param=param)
            return Image(url, image.detail, inline)
        scheme = urlsplit(image.url).scheme.lower() if ":" in image.url[:16] else ""
        if scheme in ("http", "https"):
            if policy == "reject":
                raise ImageUrlNotSupportedError(_URL_NOT_SUPPORTED, param=param)
            return image
        if scheme:
            raise ImageUrlNotAllowedError(
                f"Image URLs with the {scheme!r} scheme are not allowed; use https or a "
                "base64 data URI.",
                param=param,
            )
        raise ImageDecodeError(
            "The image has no data URI prefix: send data:image/jpeg;base64,<data> "
            "(or data:image/png;base64,...), not bare base64.",
            param=param,
        )


def _replace_parts(message: Message, m: int, replaced: dict[tuple[int, int], Image]) -> Message:
    content = message.content
    if content is None or isinstance(content, str):
        return message
    if not any((m, p) in replaced for p in range(len(content))):
        return message
    parts: tuple[Part, ...] = tuple(replaced.get((m, p), part) for p, part in enumerate(content))
    return msgspec.structs.replace(message, content=parts)
