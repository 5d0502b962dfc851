"""Stage: check every image before anything leaves, and apply the URL policy.

Data URIs are decoded strictly, sniffed and measured; image URLs are refused, passed on or
fetched by the gateway according to the model's ``url_policy``. Large images are handled
in a worker thread so the event loop keeps serving other requests.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar
from urllib.parse import urlsplit

import anyio
import msgspec

from aperture.errors import ImageDecodeError, ImageUrlNotAllowedError, ImageUrlNotSupportedError
from aperture.images import ImageLimits, Inspected, data_uri_for, inspect_bytes, inspect_data_uri
from aperture.images.limits import CONVERTIBLE_MIME_TYPES, TargetImageLimits
from aperture.media.dimensions import jpeg_size
from aperture.media.payloads import Payload
from aperture.model import ChatRequest, Image, InlineImage, Message, Part, Target
from aperture.pipeline.context import RequestContext
from aperture.settings import ImageSettings, UrlPolicy
from aperture.tracing import NO_TRACER, Attributes, Span, Tracer
from aperture.upstream.fetch import ImageFetcher

__all__ = ["IntakeImages", "replace_images"]

T = TypeVar("T")

# The seed gateway's wording, which its users already know.
_URL_NOT_SUPPORTED = (
    "Cloud providers don't fetch URLs server-side. Encode the image as a base64 data URI "
    "(data:image/jpeg;base64,...) and send it inline."
)
# Below this many base64 characters the thread hop costs more than the work.
_OFFLOAD_CHARS = 256 * 1024


class IntakeImages:
    def __init__(
        self,
        settings: ImageSettings,
        fetcher: ImageFetcher,
        limiter: anyio.CapacityLimiter,
        target_limits: Callable[[Target], TargetImageLimits],
        tracer: Tracer = NO_TRACER,
    ) -> None:
        self._limits = ImageLimits(
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            accepted=CONVERTIBLE_MIME_TYPES,
            max_frames=settings.max_frames,
        )
        self._fetcher = fetcher
        self._limiter = limiter
        self._target_limits = target_limits
        self._tracer = tracer

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        images = request.images()
        if not images:
            return request
        assert ctx.resolution is not None, "ResolveModel runs first"
        policy = ctx.resolution.url_policy
        if policy == "auto":
            # One fetch serves every target; it is needed as soon as one of them wants bytes.
            fetches = all(self._target_limits(o.target).fetches_urls for o in ctx.options)
            policy = "passthrough" if fetches else "fetch"
        attributes: Attributes = {
            "aperture.images.count": len(images),
            "aperture.url_policy": policy,
        }
        with self._tracer.span("aperture.intake", attributes) as span:
            replaced: dict[tuple[int, int], Image] = {}
            for m, p, image in images:
                param = ctx.locator.image(m, p)
                checked = await self._check(image, policy, param, ctx.payloads.take(image.url))
                if checked is None:
                    continue
                replaced[m, p] = Image(checked.url, image.detail, checked.info, image.cache)
                ctx.decoded[m, p] = checked.data
                ctx.images[m, p] = checked.info
            if self._tracer.enabled:
                _describe(span, len(images), ctx.images.values())
            return replace_images(request, replaced)

    async def _check(
        self, image: Image, policy: UrlPolicy, param: str, decoded: Payload | None
    ) -> Inspected | None:
        if image.is_data_uri:
            return await self._offload(
                # Decoded already, an image leaves only its headers to read.
                0 if decoded is not None and _short_header(decoded.data) else len(image.url),
                inspect_data_uri,
                image.url,
                self._limits,
                param=param,
                decoded=decoded,
            )
        scheme = urlsplit(image.url).scheme.lower() if ":" in image.url[:16] else ""
        if scheme in ("http", "https"):
            if policy == "reject":
                raise ImageUrlNotSupportedError(_URL_NOT_SUPPORTED, param=param)
            if policy == "passthrough":
                return None
            return await self._fetch(image.url, param)
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

    async def _fetch(self, url: str, param: str) -> Inspected:
        # The provider never sees the user's URL: only the bytes the gateway checked.
        fetched = await self._fetcher.fetch(url, param=param)
        info = await self._offload(
            len(fetched.data),
            inspect_bytes,
            fetched.data,
            self._limits,
            param=param,
            source=fetched.url_host,
        )
        uri, info = data_uri_for(fetched.data, info)
        return Inspected(uri, info, fetched.data)

    async def _offload(self, size: int, work: Callable[..., T], *args: object, **kw: object) -> T:
        if size < _OFFLOAD_CHARS:
            return work(*args, **kw)
        return await anyio.to_thread.run_sync(
            lambda: work(*args, **kw), limiter=self._limiter, abandon_on_cancel=True
        )


def _short_header(data: bytes) -> bool:
    """Whether intake reads these bytes' header quickly enough for the event loop.

    Only a plain JPEG's: ``jpeg_size`` reads its few segments in microseconds and gives up
    early on any other. Every other format's check walks the whole file (PNG's and WebP's
    chunks, a GIF's 255-byte sub-blocks), and a file of a million tiny chunks takes seconds:
    a worker thread's, never the loop's.
    """
    return data[:2] == b"\xff\xd8" and jpeg_size(data) is not None


def _describe(span: Span, sent: int, found: Collection[InlineImage]) -> None:
    # What the images are, never what they show or where they came from.
    span.set("aperture.images.mime", sorted({image.mime for image in found}))
    span.set("aperture.images.bytes", sum(image.size_bytes for image in found))
    span.set("aperture.images.fetched", sum(image.source != "inline" for image in found))
    span.set("aperture.images.passed_through", sent - len(found))


def replace_images(request: ChatRequest, replaced: dict[tuple[int, int], Image]) -> ChatRequest:
    """``request`` with the images at (message, part) swapped for new ones."""
    if not replaced:
        return request
    messages = tuple(
        _replace_parts(message, m, replaced) for m, message in enumerate(request.messages)
    )
    return msgspec.structs.replace(request, messages=messages)


def _replace_parts(message: Message, m: int, replaced: dict[tuple[int, int], Image]) -> Message:
    content = message.content
    if content is None or isinstance(content, str):
        return message
    if not any((m, p) in replaced for p in range(len(content))):
        return message
    parts: tuple[Part, ...] = tuple(replaced.get((m, p), part) for p, part in enumerate(content))
    return msgspec.structs.replace(message, content=parts)
