"""Stage: find the model the client named, check the key may use it, pick its target."""

from __future__ import annotations

from aperture.model import ChatRequest
from aperture.pipeline.context import RequestContext
from aperture.routing.catalog import Catalog

__all__ = ["ResolveModel"]


class ResolveModel:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        entry = self._catalog.resolve(request.model)
        ctx.principal.check_model(entry.name, request.model)
        ctx.entry = entry
        ctx.target = entry.target
        return request
