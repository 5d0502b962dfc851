"""Stage: find the model the client named, check the key may use it, pick its target."""

from __future__ import annotations

from aperture.model import ChatRequest
from aperture.pipeline.context import RequestContext
from aperture.routing.live import LiveCatalog

__all__ = ["ResolveModel"]


class ResolveModel:
    def __init__(self, catalog: LiveCatalog) -> None:
        self._catalog = catalog

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        resolution = self._catalog.current.resolve(request.model)
        ctx.resolution = resolution  # first, so that a refusal's audit names the model
        ctx.principal.check_model(resolution.name, request.model)
        ctx.options = resolution.options
        return request
