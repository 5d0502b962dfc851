"""The ordered stages every request passes before it is dispatched.

A stage is ``async (ctx, request) -> request``: it returns the (possibly rebuilt) request
or raises a ``GatewayError`` to reject it. The order in ``build_pipeline`` is the spec.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from aperture.images.limits import TargetImageLimits, limits_for_provider
from aperture.model import ChatRequest
from aperture.pipeline.capabilities import CheckCapabilities
from aperture.pipeline.context import RequestContext
from aperture.pipeline.images import IntakeImages
from aperture.pipeline.normalize import NormalizeImages
from aperture.pipeline.resolve import ResolveModel
from aperture.routing.catalog import Catalog
from aperture.settings import ImageSettings
from aperture.upstream.fetch import ImageFetcher

__all__ = ["Pipeline", "RequestContext", "Stage", "build_pipeline"]

Stage = Callable[[RequestContext, ChatRequest], Awaitable[ChatRequest]]


class Pipeline:
    def __init__(self, stages: tuple[Stage, ...]) -> None:
        self.stages = stages

    async def run(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        for stage in self.stages:
            request = await stage(ctx, request)
        return request


class _TargetLimits:
    """Image limits of the request's target, computed once per provider."""

    def __init__(self, catalog: Catalog) -> None:
        self._by_provider = {
            e.target.provider.name: limits_for_provider(e.target.provider) for e in catalog.entries
        }

    def __call__(self, ctx: RequestContext) -> TargetImageLimits:
        assert ctx.target is not None, "ResolveModel runs first"
        return self._by_provider[ctx.target.provider.name]


def build_pipeline(
    catalog: Catalog, images: ImageSettings, fetcher: ImageFetcher, cpu_workers: int
) -> Pipeline:
    limiter = anyio.CapacityLimiter(cpu_workers)
    target_limits = _TargetLimits(catalog)
    return Pipeline(
        (
            ResolveModel(catalog),  # unknown models fail before any work is done
            CheckCapabilities(catalog, images),  # cheap checks before images are decoded
            IntakeImages(images, fetcher, limiter, target_limits),  # decode, sniff, measure, fetch
            NormalizeImages(images, limiter, target_limits),  # what the target accepts; tokens
        )
    )
