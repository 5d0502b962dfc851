"""The router's hooks for one request: prepare its images and documents per target, count
each attempt."""

from __future__ import annotations

from collections.abc import Callable

from aperture.model import ChatRequest, Target
from aperture.pipeline.context import RequestContext, Try
from aperture.pipeline.document_prepare import DocumentPreparer, RenderCache
from aperture.pipeline.normalize import ImagePreparer

__all__ = ["RequestAttempts"]


class RequestAttempts:
    """Implements ``routing.router.AttemptHooks`` for one request, and keeps what preparing
    its images and documents did, for the request's ``Attempt``."""

    def __init__(
        self,
        ctx: RequestContext,
        images: ImagePreparer,
        observe: Callable[[str, str, float], None] | None = None,
        documents: DocumentPreparer | None = None,
    ) -> None:
        self._ctx = ctx
        self._images = images
        self._documents = documents
        self._observe = observe
        self._rendered: RenderCache = {}
        self.image_tokens = 0
        """The images' estimated tokens at the last attempt's target."""
        self.image_changes: tuple[str, ...] = ()
        """What normalisation did to the images, over every attempt."""
        self.bytes_saved = 0
        """What normalisation took off the images' bytes, at the last attempt's target."""
        self.tried: list[Try] = []
        """Every attempt that has ended, in order."""
        self.document_tokens = 0
        """The documents' estimated tokens at the last attempt's target."""

    async def prepare(self, request: ChatRequest, target: Target) -> ChatRequest:
        self.image_tokens = 0
        self.document_tokens = 0
        prepared = await self._images(self._ctx, request, target)
        self.image_tokens = prepared.image_tokens
        self.bytes_saved = prepared.bytes_saved
        if self._ctx.upstream_tap is not None:
            self._ctx.upstream_tap(prepared.request, target)
        new = tuple(c for c in prepared.changes if c not in self.image_changes)
        self.image_changes += new
        if self._documents is None or not self._ctx.documents:
            return prepared.request
        # After the images: rendered pages are made for this target already, and turning a
        # document into several parts moves the indexes the image preparation reads by.
        shaped = await self._documents(self._ctx, prepared.request, target, self._rendered)
        self.document_tokens = shaped.tokens
        return shaped.request

    def finished(self, key: str, outcome: str, seconds: float) -> None:
        self.tried.append(Try(key, outcome, seconds))
        if self._observe is not None:
            self._observe(key, outcome, seconds)
