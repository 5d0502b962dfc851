"""The guard model of a ``model`` guardrail, asked through this gateway's own router.

The question goes to the guard model's targets with the gateway's retries, failover and
breakers, but not through the pipeline: a guardrail that itself ran guardrails would ask
forever, and the guard call is the operator's, not the client's, so no client budget or
rate limit is charged for it.
"""

from __future__ import annotations

import secrets

from aperture.model import ChatRequest, Message
from aperture.pipeline.attempts import RequestAttempts
from aperture.pipeline.context import RequestContext
from aperture.pipeline.normalize import ImagePreparer
from aperture.routing.live import LiveCatalog
from aperture.routing.router import Router

__all__ = ["GuardModel"]

# A verdict and a short reason: a guard that rambles is cut off, not paid for.
_MAX_TOKENS = 64


class GuardModel:
    """An ``Ask`` for ``ModelGuardrail``: ``await ask(model, prompt)`` is the answer text."""

    def __init__(self, catalog: LiveCatalog, router: Router, images: ImagePreparer) -> None:
        self._catalog = catalog
        self._router = router
        self._images = images

    async def __call__(self, model: str, prompt: str) -> str:
        resolution = self._catalog.current.resolve(model)
        request = ChatRequest(
            model=model,
            messages=(Message(role="user", content=prompt),),
            max_tokens=_MAX_TOKENS,
            temperature=0.0,
        )
        ctx = RequestContext(f"guard_{secrets.token_hex(8)}", "guardrail")
        hooks = RequestAttempts(ctx, self._images)
        attempts = self._router.attempts(request, resolution, resolution.options, hooks)
        response = await attempts.complete()
        return next((c.content for c in response.choices if c.content), "")
