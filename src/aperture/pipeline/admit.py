"""Stage: count the request against rate limits and hold its estimated cost in its budgets.

Last before dispatch, so a request refused by anything earlier costs no quota; the image
tokens in the estimate come from what intake found. What is taken here is given back or
corrected by its after-step when the request ends (``Admission.end``), whatever the outcome.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

from aperture.governance.budgets import BudgetBook
from aperture.governance.estimate import image_tokens, output_tokens, text_tokens
from aperture.governance.prices import Price, PriceTable
from aperture.governance.ratelimit import RateLimiter
from aperture.model import ChatRequest, Usage
from aperture.pipeline.context import Outcome, RequestContext
from aperture.pipeline.step import After
from aperture.storage import UsageRow
from aperture.storage.records import BudgetCharge

__all__ = ["Admission"]

log = logging.getLogger(__name__)

_CHARS_PER_TOKEN = 4


class Admission(After):
    """The admit stage, and the after-step that settles what it opened."""

    def __init__(self, limiter: RateLimiter, budgets: BudgetBook, prices: PriceTable) -> None:
        self._limiter = limiter
        self._budgets = budgets
        self._prices = prices

    @property
    def budgets(self) -> BudgetBook:
        return self._budgets

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        assert ctx.resolution is not None, "ResolveModel runs first"
        principal = ctx.principal
        if principal.key is None or ctx.counting:
            # The master key (or an open gateway), or a token count: nothing to limit.
            return request
        has_limits = bool(self._limiter.windows(principal, ctx.resolution.name))
        lines = self._budgets.lines(principal)
        if not has_limits and not lines:
            return request
        prompt = text_tokens(request) + image_tokens(request, ctx.images, ctx.options)
        prompt += ctx.document_estimate
        output = output_tokens(request)
        ctx.prompt_estimate = prompt
        ctx.ticket = await self._limiter.admit(
            ctx.request_id, principal, ctx.resolution.name, prompt + output
        )
        if lines:
            price = self._dearest(ctx)
            micros = price.cost_micros(prompt, output, 0) if price else 0
            try:
                ctx.hold = await self._budgets.reserve(
                    ctx.request_id,
                    principal,
                    BudgetCharge(micros, prompt + output),
                    prompt_tokens=prompt,
                    model=ctx.resolution.name,
                    endpoint=ctx.endpoint,
                )
            except BaseException:
                if ctx.ticket is not None:  # refused by the budget: the request never ran
                    await self._limiter.release(ctx.ticket)
                    ctx.ticket = None
                raise
        return request

    def _dearest(self, ctx: RequestContext) -> Price | None:
        assert ctx.resolution is not None
        prices = [
            p
            for option in ctx.options
            if (p := self._prices.price(ctx.resolution.name, option.target.upstream_model))
        ]
        return max(prices, key=lambda p: p.input + p.output) if prices else None

    async def end(self, ctx: RequestContext, outcome: Outcome) -> None:
        if ctx.hold is not None or ctx.ticket is not None:
            await self.settle(ctx, outcome)

    async def settle(self, ctx: RequestContext, outcome: Outcome) -> None:
        """Charge what the request used; called once when it ends, however it ends."""
        attempt = outcome.attempt
        usage, source = self._usage(ctx, outcome)
        if ctx.ticket is not None:
            await self._limiter.correct(ctx.ticket, usage.total_tokens)
            ctx.ticket = None
        hold, ctx.hold = ctx.hold, None
        if hold is None:
            return
        model = ctx.resolution.name if ctx.resolution else None
        target = attempt.target
        upstream = target.upstream_model if target else None
        price = self._prices.price(model, upstream) if model else None
        image = attempt.reported_image_tokens or (attempt.image_tokens if ctx.images else 0)
        made = usage.output_image_tokens or 0
        amount = (
            price.cost_micros(
                usage.prompt_tokens,
                usage.completion_tokens,
                image,
                made,
                cache_read_tokens=usage.cached_tokens or 0,
                cache_write_tokens=usage.cache_creation_tokens or 0,
            )
            if price
            else 0
        )
        row = UsageRow(
            request_id=ctx.request_id,
            kind="settle",
            created_at=datetime.now(UTC),
            key_id=ctx.principal.key_id,
            tenant=ctx.principal.tenant,
            model=model,
            provider=target.provider.name if target else None,
            amount_micros=amount,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            source=source,
        )
        await self._budgets.settle(hold, row)

    def _usage(
        self, ctx: RequestContext, outcome: Outcome
    ) -> tuple[Usage, Literal["provider", "estimated"]]:
        attempt = outcome.attempt
        if attempt.usage is not None:
            return attempt.usage, "provider"
        if attempt.streamed_chars or (outcome.cut and attempt.target is not None):
            # Cut short before the provider reported usage: the prompt was sent and paid for,
            # and so was what was relayed (nothing, for a call cut before its answer).
            completion = -(-attempt.streamed_chars // _CHARS_PER_TOKEN)
            return Usage(ctx.prompt_estimate, completion), "estimated"
        return Usage(), "provider"  # nothing reached a provider, or it failed: free
