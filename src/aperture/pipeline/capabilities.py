"""Stage: never send a model input it cannot take; reject before any upstream call.

A request needing vision, audio, video, tools, reasoning or image output (``modalities`` with
``image``) keeps only the targets whose model has the
capability; when none is left, the client gets ``unsupported_capability`` naming the models
that have it. Likewise for what the answer must carry: ``logprobs`` (within the kind's
``top_logprobs`` bound) and ``n`` > 1 (``choices``, within its ``max_choices``), refused as
``unsupported_parameter``. Audio and video parts are then held to the limits of the kinds
left (``pipeline.media``).
A document whose bytes are inline also goes to a vision model (as pages the
gateway renders) and, with ``documents.text_only: extract``, to a text-only one (as text).
"""

from __future__ import annotations

from aperture.documents.forms import form_for
from aperture.errors import (
    MaxTokensBelowMinimumError,
    TooManyImagesError,
    UnsupportedCapabilityError,
    UnsupportedParameterError,
    quote,
)
from aperture.model import Audio, ChatRequest, File, Image, Video
from aperture.pipeline.context import RequestContext
from aperture.pipeline.media import within_media_limits
from aperture.providers.registry import spec_for
from aperture.routing.catalog import TargetOption
from aperture.routing.live import LiveCatalog
from aperture.settings import DocumentSettings, ImageSettings

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
        needed["image_output"] = ("requests for image output", "@image_output")
    if request.tools and request.tool_choice != "none":
        needed["tools"] = ("tools", "tools")
    if request.logprobs:
        needed["logprobs"] = ("logprobs", "@logprobs")
    if request.n is not None and request.n > 1:
        needed["choices"] = ("n > 1", "n")
    if request.wants_reasoning:
        # Refused like tools: a model that cannot think would silently answer without it.
        needed["reasoning"] = ("reasoning (thinking)", "reasoning")
    return needed


# What the answer must carry: a missing one is a parameter no target honours.
_PARAMETERS = frozenset({"logprobs", "choices"})


class CheckCapabilities:
    def __init__(
        self,
        catalog: LiveCatalog,
        images: ImageSettings,
        documents: DocumentSettings | None = None,
    ) -> None:
        self._catalog = catalog
        self._max_images = images.max_images_per_request
        self._extract = documents is not None and documents.text_only == "extract"

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        resolution = ctx.resolution
        assert resolution is not None, "ResolveModel runs first"
        options = ctx.options
        for capability, (noun, where) in needed_capabilities(request).items():
            if capability == "documents":
                able = self._take_documents(options, request)
            else:
                able = tuple(o for o in options if o.can(capability))
            if not able:
                raise self._unsupported(ctx, capability, noun, where, request)
            options = able
        options = self._within_bounds(ctx, request, options)
        ctx.options = within_media_limits(ctx, request, options)
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

    def _within_bounds(
        self, ctx: RequestContext, request: ChatRequest, options: tuple[TargetOption, ...]
    ) -> tuple[TargetOption, ...]:
        """The targets whose kind returns as many alternatives and choices as asked."""
        top, n = request.top_logprobs or 0, request.n or 1
        if request.logprobs and top:
            able = tuple(o for o in options if _max_top(o) >= top)
            if not able:
                best = max(_max_top(o) for o in options)
                raise self._unsupported(
                    ctx,
                    "logprobs",
                    f"top_logprobs={top} (its provider returns at most {best})",
                    "top_logprobs",
                    request,
                )
            options = able
        if n > 1:
            able = tuple(o for o in options if spec_for(o.target.provider.kind).max_choices >= n)
            if not able:
                best = max(spec_for(o.target.provider.kind).max_choices for o in options)
                raise self._unsupported(
                    ctx, "choices", f"n={n} (its provider answers at most {best})", "n", request
                )
            options = able
        return options

    def _take_documents(
        self, options: tuple[TargetOption, ...], request: ChatRequest
    ) -> tuple[TargetOption, ...]:
        """The targets that can take every document in some form (see ``documents.forms``)."""
        inline = all(file.file_data is not None for _, _, file in request.files())
        return tuple(
            o
            for o in options
            if form_for(o.capabilities, inline=inline, extract=self._extract) is not None
        )

    def _unsupported(
        self, ctx: RequestContext, capability: str, noun: str, where: str, request: ChatRequest
    ) -> UnsupportedCapabilityError | UnsupportedParameterError:
        assert ctx.resolution is not None
        catalog = self._catalog.current
        able = catalog.names_with(capability)
        if capability == "documents" and all(f.file_data for _, _, f in request.files()):
            # A PDF's pages go to every vision model.
            able += [name for name in catalog.names_with("vision") if name not in able]
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
        elif where == "@logprobs":
            param = ctx.locator.logprobs
        elif where == "@image_output":
            param = ctx.locator.image_output
        else:
            param = where
        if capability == "documents" and not self._extract:
            others += " (documents.text_only: extract sends text-only models the text layer.)"
        message = f"{subject} (it lacks the {capability!r} capability). {others}"
        if capability in _PARAMETERS:
            return UnsupportedParameterError(message, param=param)
        return UnsupportedCapabilityError(message, param=param)


def _max_top(option: TargetOption) -> int:
    support = spec_for(option.target.provider.kind).logprobs
    return support.max_top if support is not None else 0
