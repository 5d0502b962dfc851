"""The router's hooks for one request: prepare its images per target, count each attempt."""

from __future__ import annotations

from collections.abc import Callable

from aperture.model import ChatRequest, Target
from aperture.pipeline.context import RequestContext, Try
from aperture.pipeline.normalize import ImagePreparer

__all__ = ["RequestAttempts"]


class RequestAttempts:
    """Implements ``routing.router.AttemptHooks`` for one request, and keeps what preparing
    its images did, for the request's ``Attempt``."""

    def __init__(
        self,
        ctx: RequestContext,
        images: ImagePreparer,
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self._ctx = ctx
        self._images = images
        self._observe = observe
        self.image_tokens = 0
        """The images' estimated tokens at the last attempt's target."""
        self.image_changes: tuple[str, ...] = ()
        """What normalisation did to the images, over every attempt."""
        self.bytes_saved = 0
        """What normalisation took off the images' bytes, at the last attempt's target."""
        self.tried: list[Try] = []
        """Every attempt that has ended, in order."""

    async def prepare(self, request: ChatRequest, target: Target) -> ChatRequest:
        self.image_tokens = 0
        prepared = await self._images(self._ctx, request, target)
        self.image_tokens = prepared.image_tokens
        self.bytes_saved = prepared.bytes_saved
        if self._ctx.upstream_tap is not None:
            self._ctx.upstream_tap(prepared.request, target)
        new = tuple(c for c in prepared.changes if c not in self.image_changes)
        self.image_changes += new
        return prepared.request

    def finished(self, key: str, outcome: str, seconds: float) -> None:
        self.tried.append(Try(key, outcome, seconds))
        if self._observe is not None:
            self._observe(key, outcome, seconds)
