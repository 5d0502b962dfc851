"""Per attempt: turn every image into what the attempt's target accepts, and estimate what
it costs there.

The work (first frame, conversion, orientation, downscale, recompression) runs once per
image and target family in a bounded worker pool, and is cached by content hash so retries
and failover to a target of the same family reuse it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import anyio

from aperture.images import data_uri_for
from aperture.images.limits import TargetImageLimits
from aperture.images.normalize import (
    Normalized,
    NormalizeOptions,
    needs_normalizing,
    normalize,
)
from aperture.images.tokens import estimate_image_tokens, token_family
from aperture.model import ChatRequest, Image, InlineImage, Target
from aperture.pipeline.context import RequestContext
from aperture.pipeline.images import replace_images
from aperture.settings import ImageSettings
from aperture.tracing import NO_TRACER, Attributes, Tracer

__all__ = ["ImagePreparer"]

_CacheKey = tuple[str, TargetImageLimits, NormalizeOptions]
_Result = tuple[str, InlineImage, tuple[str, ...]]


class _ResultCache:
    """Least-recently-used normalised images, bounded by the bytes they hold."""

    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[_CacheKey, _Result | None] = OrderedDict()
        self._sizes: dict[_CacheKey, int] = {}
        self._max_bytes = max_bytes
        self._bytes = 0

    def get(self, key: _CacheKey) -> _Result | bool | None:
        if key not in self._items:
            return False
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: _CacheKey, value: _Result | None) -> None:
        size = len(value[0]) if value is not None else 0
        if size > self._max_bytes:
            return
        self._items[key] = value
        self._sizes[key] = size
        self._bytes += size
        while self._bytes > self._max_bytes:
            old, _ = self._items.popitem(last=False)
            self._bytes -= self._sizes.pop(old)


class ImagePreparer:
    def __init__(
        self,
        settings: ImageSettings,
        limiter: anyio.CapacityLimiter,
        target_limits: Callable[[Target], TargetImageLimits],
        cache_bytes: int = 128_000_000,
        tracer: Tracer = NO_TRACER,
    ) -> None:
        self._optimize = settings.optimize
        self._strip = settings.strip_metadata
        self._limiter = limiter
        self._target_limits = target_limits
        self._cache = _ResultCache(cache_bytes)
        self._tracer = tracer

    async def __call__(
        self, ctx: RequestContext, request: ChatRequest, target: Target
    ) -> ChatRequest:
        images = request.images()
        if not images:
            return request
        attributes: Attributes = {
            "aperture.provider": target.provider.name,
            "aperture.model": target.upstream_model,
            "aperture.images.count": len(images),
        }
        with self._tracer.span("aperture.image.prepare", attributes) as span:
            prepared, normalized = await self._prepare(ctx, request, target)
            span.set("aperture.images.normalized", normalized)
            span.set("aperture.images.changes", list(ctx.image_changes))
            span.set("aperture.image_tokens", ctx.image_tokens)
            return prepared

    async def _prepare(
        self, ctx: RequestContext, request: ChatRequest, target: Target
    ) -> tuple[ChatRequest, int]:
        """The request for ``target``, and how many of its images had to be changed."""
        images = request.images()
        limits = self._target_limits(target)
        family = token_family(target.provider.kind, target.upstream_model)
        ctx.image_tokens = 0
        replaced: dict[tuple[int, int], Image] = {}
        for m, p, image in images:
            if image.inline is not None:
                options = NormalizeOptions(image.detail, self._optimize, self._strip, len(images))
                result = await self._normalized(ctx, (m, p), image.inline, limits, options)
                if result is not None:
                    url, info, changes = result
                    image = Image(url, image.detail, info)
                    replaced[m, p] = image
                    ctx.image_changes.extend(c for c in changes if c not in ctx.image_changes)
                inline = image.inline
                assert inline is not None
                ctx.image_tokens += estimate_image_tokens(
                    family,
                    inline.width,
                    inline.height,
                    image.detail,
                    model=target.upstream_model,
                )
        return replace_images(request, replaced), len(replaced)

    async def _normalized(
        self,
        ctx: RequestContext,
        at: tuple[int, int],
        info: InlineImage,
        limits: TargetImageLimits,
        options: NormalizeOptions,
    ) -> _Result | None:
        data = ctx.decoded[at]
        if not needs_normalizing(
            data, info.mime, (info.width, info.height), info.frames, limits, options
        ):
            return None
        # A cryptographic key: one tenant must not be able to plant an image in another's
        # cache with a crafted collision. Hashing runs only when there is work to cache.
        digest = ctx.image_hashes.get(at)
        if digest is None:
            digest = await anyio.to_thread.run_sync(_sha256, data, limiter=self._limiter)
            ctx.image_hashes[at] = digest
        key = (digest, limits, options)
        cached = self._cache.get(key)
        if cached is not False:
            return cached  # type: ignore[return-value]  # False means "not cached"
        result = await anyio.to_thread.run_sync(
            normalize,
            data,
            info.mime,
            (info.width, info.height),
            info.frames,
            limits,
            options,
            limiter=self._limiter,
        )
        value = None if result is None else _as_inline(result, info)
        self._cache.put(key, value)
        return value


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _as_inline(result: Normalized, original: InlineImage) -> _Result:
    info = InlineImage(
        mime=result.mime,
        width=result.width,
        height=result.height,
        size_bytes=len(result.data),
        frames=1,
        payload_offset=0,
        source=original.source,
    )
    url, info = data_uri_for(result.data, info)
    return url, info, result.changes
