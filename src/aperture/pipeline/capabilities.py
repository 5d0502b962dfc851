"""Stage: never send a model input it cannot take; reject before any upstream call."""

from __future__ import annotations

from aperture.errors import (
    MaxTokensBelowMinimumError,
    TooManyImagesError,
    UnsupportedCapabilityError,
)
from aperture.model import Audio, ChatRequest, Image, Video
from aperture.pipeline.context import RequestContext
from aperture.routing.catalog import Catalog
from aperture.settings import ImageSettings

__all__ = ["CheckCapabilities"]

_NEEDS = ((Image, "vision", "images"), (Audio, "audio", "audio"), (Video, "video", "video"))


class CheckCapabilities:
    def __init__(self, catalog: Catalog, images: ImageSettings) -> None:
        self._catalog = catalog
        self._max_images = images.max_images_per_request

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        entry = ctx.entry
        assert entry is not None, "ResolveModel runs first"
        seen: set[type] = set()
        for m, message in enumerate(request.messages):
            if message.content is None or isinstance(message.content, str):
                continue
            for p, part in enumerate(message.content):
                kind = type(part)
                if kind in seen:
                    continue
                seen.add(kind)
                for part_type, capability, noun in _NEEDS:
                    if kind is part_type and not entry.can(capability):
                        raise self._unsupported(request.model, capability, noun, ctx, m, p)
        if Image in seen:
            count = len(request.images())
            limit = min(self._max_images, entry.constraints.max_images or self._max_images)
            if count > limit:
                raise TooManyImagesError(
                    f"The request has {count} images; {request.model!r} takes at most {limit}.",
                    param="messages",
                )
        minimum = entry.constraints.min_max_tokens
        if minimum is not None and request.max_tokens is not None and request.max_tokens < minimum:
            field = ctx.locator.max_tokens
            raise MaxTokensBelowMinimumError(
                f"{request.model!r} needs {field} >= {minimum}; the request asked for "
                f"{request.max_tokens}.",
                param=field,
            )
        return request

    def _unsupported(
        self, model: str, capability: str, noun: str, ctx: RequestContext, m: int, p: int
    ) -> UnsupportedCapabilityError:
        able = self._catalog.names_with(capability)
        others = (
            f"Models that accept {noun}: {', '.join(able)}."
            if able
            else (f"No configured model accepts {noun}.")
        )
        return UnsupportedCapabilityError(
            f"The model {model!r} does not accept {noun} (it lacks the {capability!r} "
            f"capability). {others}",
            param=ctx.locator.part(m, p),
        )
