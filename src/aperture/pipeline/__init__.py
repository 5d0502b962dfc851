"""The ordered stages every request passes before it is dispatched.

A stage is ``async (ctx, request) -> request``: it returns the (possibly rebuilt) request
or raises a ``GatewayError`` to reject it. The order in ``build_pipeline`` is the spec.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aperture.model import ChatRequest
from aperture.pipeline.capabilities import CheckCapabilities
from aperture.pipeline.context import RequestContext
from aperture.pipeline.images import IntakeImages
from aperture.pipeline.resolve import ResolveModel
from aperture.routing.catalog import Catalog
from aperture.settings import ImageSettings

__all__ = ["Pipeline", "RequestContext", "Stage", "build_pipeline"]

Stage = Callable[[RequestContext, ChatRequest], Awaitable[ChatRequest]]


class Pipeline:
    def __init__(self, stages: tuple[Stage, ...]) -> None:
        self.stages = stages

    async def run(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        for stage in self.stages:
            request = await stage(ctx, request)
        return request


def build_pipeline(catalog: Catalog, images: ImageSettings) -> Pipeline:
    return Pipeline(
        (
            ResolveModel(catalog),  # unknown models fail before any work is done
            CheckCapabilities(catalog, images),  # cheap checks before images are decoded
            IntakeImages(images),  # decode, sniff and measure every image; apply URL policy
        )
    )
