"""Per attempt: turn every image into what the attempt's target accepts, and estimate what
it costs there.

The work (first frame, conversion, orientation, downscale, recompression) runs once per
image and target family in a bounded worker pool, and is cached by content hash so retries
and failover to a target of the same family reuse it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

import anyio

from aperture.errors import GatewayError, ImageDecodeError, ImageTooLargeError
from aperture.images import data_uri_for
from aperture.images.limits import TargetImageLimits
from aperture.images.normalize import (
    Normalized,
    NormalizeOptions,
    PixelJob,
    needs_normalizing,
    plan,
    run_pixel_job,
)
from aperture.images.tokens import estimate_image_tokens, token_family
from aperture.images.workers import DecodeFailed, DecodePool
from aperture.model import ChatRequest, Image, InlineImage, Target
from aperture.pipeline.context import RequestContext
from aperture.pipeline.images import replace_images
from aperture.settings import ImageSettings
from aperture.tracing import NO_TRACER, Attributes, Tracer

__all__ = ["ImagePreparer", "Prepared"]

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


class Prepared(NamedTuple):
    """A request made ready for one target, and what that did to its images."""

    request: ChatRequest
    changes: tuple[str, ...] = ()
    """What normalisation did (``resized``, ``transcoded``...), each named once."""
    image_tokens: int = 0
    """The images' estimated input tokens at the target."""
    bytes_saved: int = 0
    """Bytes normalisation took off the images as the client sent them."""


class ImagePreparer:
    def __init__(
        self,
        settings: ImageSettings,
        limiter: anyio.CapacityLimiter,
        target_limits: Callable[[Target], TargetImageLimits],
        cache_bytes: int = 128_000_000,
        tracer: Tracer = NO_TRACER,
        decoder: DecodePool | None = None,
    ) -> None:
        self._decoder = decoder
        self._optimize = settings.optimize
        self._strip = settings.strip_metadata
        self._limiter = limiter
        self._target_limits = target_limits
        self._cache = _ResultCache(cache_bytes)
        self._tracer = tracer

    async def __call__(self, ctx: RequestContext, request: ChatRequest, target: Target) -> Prepared:
        images = request.images()
        if not images:
            return Prepared(request)
        attributes: Attributes = {
            "aperture.provider": target.provider.name,
            "aperture.model": target.upstream_model,
            "aperture.images.count": len(images),
        }
        with self._tracer.span("aperture.image.prepare", attributes) as span:
            prepared, normalized = await self._prepare(ctx, request, target)
            span.set("aperture.images.normalized", normalized)
            span.set("aperture.images.changes", list(prepared.changes))
            span.set("aperture.image_tokens", prepared.image_tokens)
            return prepared

    async def _prepare(
        self, ctx: RequestContext, request: ChatRequest, target: Target
    ) -> tuple[Prepared, int]:
        """The request for ``target``, and how many of its images had to be changed."""
        images = request.images()
        limits = self._target_limits(target)
        family = token_family(target.provider.kind, target.upstream_model)
        tokens = saved = 0
        changed: list[str] = []
        replaced: dict[tuple[int, int], Image] = {}
        for m, p, image in images:
            if image.inline is not None:
                options = NormalizeOptions(image.detail, self._optimize, self._strip, len(images))
                param = ctx.locator.image(m, p)
                result = await self._normalized(ctx, (m, p), image.inline, limits, options, param)
                if result is not None:
                    url, info, changes = result
                    saved += image.inline.size_bytes - info.size_bytes
                    image = Image(url, image.detail, info, image.cache)
                    replaced[m, p] = image
                    changed.extend(c for c in changes if c not in changed)
                inline = image.inline
                assert inline is not None
                tokens += estimate_image_tokens(
                    family,
                    inline.width,
                    inline.height,
                    image.detail,
                    model=target.upstream_model,
                )
        prepared = Prepared(replace_images(request, replaced), tuple(changed), tokens, saved)
        return prepared, len(replaced)

    async def _normalized(
        self,
        ctx: RequestContext,
        at: tuple[int, int],
        info: InlineImage,
        limits: TargetImageLimits,
        options: NormalizeOptions,
        param: str,
    ) -> _Result | None:
        data = ctx.decoded[at]
        if not needs_normalizing(
            data, info.mime, (info.width, info.height), info.frames, limits, options
        ):
            return None
        # A cryptographic key: one tenant must not be able to plant an image in another's
        # cache with a crafted collision. Hashing runs only when there is work to cache.
        key = (await ctx.image_digest(at, self._limiter), limits, options)
        cached = self._cache.get(key)
        if cached is not False:
            return cached  # type: ignore[return-value]  # False means "not cached"
        planned = await anyio.to_thread.run_sync(
            plan,
            data,
            info.mime,
            (info.width, info.height),
            info.frames,
            limits,
            options,
            limiter=self._limiter,
        )
        result = await self._decode(planned, param) if isinstance(planned, PixelJob) else planned
        value = None if result is None else _as_inline(result, info)
        self._cache.put(key, value)
        return value

    async def _decode(self, job: PixelJob, param: str) -> Normalized:
        """The pixel work, in a memory-limited worker when there is a pool."""
        try:
            if self._decoder is not None:
                return await self._decoder.run(run_pixel_job, job)
            return await anyio.to_thread.run_sync(run_pixel_job, job, limiter=self._limiter)
        except DecodeFailed as exc:
            raise _decode_error(exc, job.mime, param) from exc
        except MemoryError as exc:
            raise ImageTooLargeError(
                "Decoding the image needs more memory than the gateway has.", param=param
            ) from exc
        # Pillow reports bad data with many exception types; intake's checks let past only
        # damage inside the compressed data, which the client must hear about, not a 500.
        except Exception as exc:
            raise ImageDecodeError(
                f"The {job.mime} image is corrupt and cannot be decoded.", param=param
            ) from exc


def _decode_error(failure: DecodeFailed, mime: str, param: str) -> GatewayError:
    if failure.kind == "memory":
        return ImageTooLargeError(
            f"Decoding this image needs {failure.detail} of memory, over the gateway's limit; "
            "send fewer pixels.",
            param=param,
        )
    if failure.kind == "cpu":
        return ImageTooLargeError(
            f"Decoding this image took {failure.detail}, over the gateway's limit; "
            "send fewer pixels.",
            param=param,
        )
    if failure.kind == "crashed":
        return ImageDecodeError(
            f"The {mime} image could not be decoded: {failure.detail}.", param=param
        )
    return ImageDecodeError(f"The {mime} image is corrupt and cannot be decoded.", param=param)


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
