"""Stage: never send a model input it cannot take; reject before any upstream call.

A request needing vision, audio, video, tools, reasoning or image output (``modalities`` with
``image``) keeps only the targets whose model has the
capability; when none is left, the client gets ``unsupported_capability`` naming the models
that have it.
"""

from __future__ import annotations

from aperture.errors import (
    MaxTokensBelowMinimumError,
    TooManyImagesError,
    UnsupportedCapabilityError,
    quote,
)
from aperture.model import Audio, ChatRequest, File, Image, Video
from aperture.pipeline.context import RequestContext
from aperture.routing.live import LiveCatalog
from aperture.settings import ImageSettings

__all__ = ["CheckCapabilities", "needed_capabilities"]

_NEEDS = {
    Image: ("vision", "images"),
    Audio: ("audio", "audio"),
    Video: ("video", "video"),
    File: ("documents", "documents"),
}


def needed_capabilities(request: ChatRequest) -> dict[str, tuple[str, str]]:
    """Capability -> (what it is called for people, the param path hint of its first use)."""
    needed: dict[str, tuple[str, str]] = {}
    for m, message in enumerate(request.messages):
        if message.content is None or isinstance(message.content, str):
            continue
        for p, part in enumerate(message.content):
            need = _NEEDS.get(type(part))
            if need is not None and need[0] not in needed:
                needed[need[0]] = (need[1], f"{m}:{p}")
    if request.wants_images:
        needed["image_output"] = ("requests for image output", "modalities")
    if request.tools and request.tool_choice != "none":
        needed["tools"] = ("tools", "tools")
    if request.wants_reasoning:
        # Refused like tools: a model that cannot think would silently answer without it.
        needed["reasoning"] = ("reasoning (thinking)", "reasoning")
    return needed


class CheckCapabilities:
    def __init__(self, catalog: LiveCatalog, images: ImageSettings) -> None:
        self._catalog = catalog
        self._max_images = images.max_images_per_request

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        resolution = ctx.resolution
        assert resolution is not None, "ResolveModel runs first"
        options = ctx.options
        for capability, (noun, where) in needed_capabilities(request).items():
            able = tuple(o for o in options if o.can(capability))
            if not able:
                raise self._unsupported(ctx, capability, noun, where)
            options = able
        ctx.options = options
        images = len(request.images())
        if images:
            limit = min(self._max_images, resolution.constraints.max_images or self._max_images)
            if images > limit:
                raise TooManyImagesError(
                    f"The request has {images} images; {quote(request.model)} takes at most "
                    f"{limit}.",
                    param="messages",
                )
        minimum = resolution.constraints.min_max_tokens
        if minimum is not None and request.max_tokens is not None and request.max_tokens < minimum:
            field = ctx.locator.max_tokens
            raise MaxTokensBelowMinimumError(
                f"{quote(request.model)} needs {field} >= {minimum}; the request asked for "
                f"{request.max_tokens}.",
                param=field,
            )
        return request

    def _unsupported(
        self, ctx: RequestContext, capability: str, noun: str, where: str
    ) -> UnsupportedCapabilityError:
        assert ctx.resolution is not None
        able = self._catalog.current.names_with(capability)
        others = (
            f"Models that accept {noun}: {', '.join(able)}."
            if able
            else f"No configured model accepts {noun}."
        )
        route = ctx.resolution.route_id
        subject = (
            f"No target of the route {route!r} for {ctx.resolution.name!r} accepts {noun}"
            if route
            else f"The model {ctx.resolution.name!r} does not accept {noun}"
        )
        if ":" in where:
            m, p = (int(x) for x in where.split(":"))
            param = ctx.locator.part(m, p)
        elif where == "reasoning":
            param = ctx.locator.reasoning
        else:
            param = where
        return UnsupportedCapabilityError(
            f"{subject} (it lacks the {capability!r} capability). {others}", param=param
        )
