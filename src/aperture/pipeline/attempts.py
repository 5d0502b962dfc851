"""The router's hooks for one request: record each attempt, prepare images per target."""

from __future__ import annotations

from collections.abc import Callable

from aperture.model import ChatRequest, Target
from aperture.pipeline.context import RequestContext
from aperture.pipeline.normalize import ImagePreparer

__all__ = ["RequestAttempts"]


class RequestAttempts:
    """Implements ``routing.router.AttemptHooks`` for one request's context."""

    def __init__(
        self,
        ctx: RequestContext,
        images: ImagePreparer,
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self._ctx = ctx
        self._images = images
        self._observe = observe

    def started(self, target: Target) -> None:
        self._ctx.target = target
        self._ctx.attempts += 1

    async def prepare(self, request: ChatRequest, target: Target) -> ChatRequest:
        return await self._images(self._ctx, request, target)

    def finished(self, key: str, outcome: str, seconds: float) -> None:
        self._ctx.upstream_s += seconds
        if self._observe is not None:
            self._observe(key, outcome, seconds)
