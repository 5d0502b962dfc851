"""The ordered stages every request passes before it is dispatched.

A stage is ``async (ctx, request) -> request``: it returns the (possibly rebuilt) request
or raises a ``GatewayError`` to reject it. The order in ``build_pipeline`` is the spec.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import anyio

from aperture.images.limits import TargetImageLimits, limits_for_provider
from aperture.model import ChatRequest, Target
from aperture.pipeline.attempts import RequestAttempts
from aperture.pipeline.capabilities import CheckCapabilities
from aperture.pipeline.context import RequestContext
from aperture.pipeline.images import IntakeImages
from aperture.pipeline.normalize import ImagePreparer
from aperture.pipeline.resolve import ResolveModel
from aperture.routing.live import LiveCatalog
from aperture.settings import ImageSettings, ProviderSettings
from aperture.upstream.fetch import ImageFetcher

__all__ = [
    "ImagePreparer",
    "Pipeline",
    "RequestAttempts",
    "RequestContext",
    "Stage",
    "TargetLimits",
    "build_pipeline",
]

Stage = Callable[[RequestContext, ChatRequest], Awaitable[ChatRequest]]


class Pipeline:
    def __init__(self, stages: tuple[Stage, ...]) -> None:
        self.stages = stages

    async def run(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        for stage in self.stages:
            request = await stage(ctx, request)
        return request


class TargetLimits:
    """Image limits of a target's provider, computed once per provider."""

    def __init__(self, providers: Iterable[ProviderSettings]) -> None:
        self._by_provider = {p.name: limits_for_provider(p) for p in providers}

    def __call__(self, target: Target) -> TargetImageLimits:
        return self._by_provider[target.provider.name]


def build_pipeline(
    catalog: LiveCatalog,
    images: ImageSettings,
    fetcher: ImageFetcher,
    limiter: anyio.CapacityLimiter,
    target_limits: TargetLimits,
) -> Pipeline:
    """The stages before dispatch; per-target image preparation runs at each attempt."""
    return Pipeline(
        (
            ResolveModel(catalog),  # unknown or forbidden models fail before any work
            CheckCapabilities(catalog, images),  # keep targets that can take the inputs
            IntakeImages(images, fetcher, limiter, target_limits),  # decode, sniff, fetch
        )
    )
