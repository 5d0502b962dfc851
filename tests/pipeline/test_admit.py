"""The admit stage and its settle step over real limits, ledger and catalog: what is held
(image tokens included, at the dearest target), what a budget refusal gives back, and what
a request is charged however it ends: provider usage, a stream cut short, or nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aperture.dialects.openai.inbound import parse_chat_request
from aperture.errors import BudgetExceededError, RateLimitExceededError
from aperture.governance.budgets import BudgetBook
from aperture.governance.estimate import text_tokens
from aperture.governance.keys import Principal
from aperture.governance.prices import BUILTIN_PRICES, PriceTable
from aperture.governance.ratelimit import RateLimiter
from aperture.images.tokens import estimate_image_tokens
from aperture.model import ChatRequest, InlineImage, Usage
from aperture.pipeline.admit import Admission
from aperture.pipeline.context import Attempt, Outcome, RequestContext
from aperture.routing.catalog import Catalog
from aperture.settings import parse_settings
from aperture.settings.governance import PriceSettings
from aperture.storage import UsageRow
from aperture.storage.memory import MemoryUsageLedger
from aperture.storage.memory_limits import MemoryLimits
from aperture.storage.records import BudgetCharge, BudgetState
from tests.governance.fakes import principal

pytestmark = pytest.mark.anyio

CONFIG = """
providers:
  - {name: oa, kind: openai, api_key: k}
  - {name: an, kind: anthropic, api_key: k}
models:
  - {name: vision, provider: oa, upstream_model: gpt-4o, capabilities: [vision]}
routes:
  - id: mixed-route
    model_pattern: mixed
    providers: [{provider: oa, model: gpt-4o}, {provider: an, model: claude-sonnet-4-5}]
"""
CATALOG = Catalog.from_settings(parse_settings(CONFIG, {}))
URL = "https://images.example.com/cat.png"
# An image the gateway never saw counts as 1024 x 1024; Claude counts it dearer than gpt-4o.
UNSEEN_ON_CLAUDE = estimate_image_tokens("anthropic", 1024, 1024, None, model="claude-sonnet-4-5")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def chat(*content: Any, model: str = "mixed", **fields: Any) -> ChatRequest:
    body = {"model": model, "messages": [{"role": "user", "content": list(content)}], **fields}
    request, _ = parse_chat_request(json.dumps(body).encode())
    return request


def ended(*, cut: bool = False, **attempt: Any) -> Outcome:
    """How a request ended: an answer, or a cut (the client left), after ``attempt``."""
    return Outcome(499 if cut else 200, "client_disconnected" if cut else None, Attempt(**attempt))


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image() -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": URL}}


class Gate:
    """An ``Admission`` over memory stores, and contexts for its requests."""

    def __init__(self, prices: PriceTable | None = None) -> None:
        self.limits = MemoryLimits()
        self.ledger = MemoryUsageLedger()
        self.budgets = BudgetBook(self.limits, self.ledger, {})
        self.admission = Admission(
            RateLimiter(self.limits, ()), self.budgets, prices or PriceTable()
        )

    def context(self, request_id: str, who: Principal, model: str = "mixed") -> RequestContext:
        resolution = CATALOG.resolve(model)
        return RequestContext(
            request_id=request_id,
            endpoint="/v1/chat/completions",
            principal=who,
            resolution=resolution,
            options=resolution.options,
        )

    async def admit(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        return await self.admission(ctx, request)

    async def state(self, who: Principal) -> BudgetState | None:
        (line,) = self.budgets.lines(who)
        return await self.limits.state(line.key.key)

    async def rows(self, request_id: str) -> list[UsageRow]:
        return await self.ledger.for_request(request_id)


async def test_the_master_key_is_neither_counted_nor_held() -> None:
    gate = Gate()
    ctx = gate.context("r1", Principal())
    request = chat(text("hi"), image())
    assert await gate.admit(ctx, request) is request
    assert (ctx.ticket, ctx.hold, ctx.prompt_estimate) == (None, None, 0)


async def test_a_key_without_limits_or_budgets_is_neither_counted_nor_held() -> None:
    gate = Gate()
    ctx = gate.context("r1", principal())
    await gate.admit(ctx, chat(text("hi")))
    assert (ctx.ticket, ctx.hold) == (None, None)


async def test_the_estimate_held_includes_the_image_tokens_at_the_dearest_target() -> None:
    gate = Gate()
    who = principal(tpm=100_000, budget_usd=10.0)
    ctx = gate.context("r1", who)
    request = chat(text("what is in this picture?"), image(), max_tokens=100)
    assert await gate.admit(ctx, request) is request
    prompt = text_tokens(request) + UNSEEN_ON_CLAUDE
    assert ctx.prompt_estimate == prompt
    assert ctx.ticket is not None
    assert ctx.ticket.estimate == prompt + 100
    # The money held is at the dearer of the route's two targets (Claude Sonnet).
    micros = BUILTIN_PRICES["claude-sonnet-4"].cost_micros(prompt, 100, 0)
    assert ctx.hold is not None
    assert ctx.hold.estimate == BudgetCharge(micros, prompt + 100)
    assert await gate.state(who) == BudgetState(BudgetCharge(), BudgetCharge(micros, prompt + 100))


async def test_an_image_intake_measured_is_estimated_at_its_size() -> None:
    gate = Gate()
    ctx = gate.context("r1", principal(tpm=100_000), model="vision")
    ctx.images[0, 1] = InlineImage("image/png", 200, 100, 5000, 1, 22)
    request = chat(text("what is in this picture?"), image(), model="vision")
    await gate.admit(ctx, request)
    on_gpt4o = estimate_image_tokens("openai-tile", 200, 100, None, model="gpt-4o")
    assert ctx.prompt_estimate == text_tokens(request) + on_gpt4o


async def test_a_request_refused_by_its_budget_gives_back_its_rate_limit_counts() -> None:
    gate = Gate()
    who = principal(rpm=1, tpm=1010, budget_tokens=50)
    first = gate.context("r1", who, model="vision")
    with pytest.raises(BudgetExceededError):
        await gate.admit(first, chat(text("hi"), model="vision", max_tokens=1000))
    assert first.ticket is None
    assert first.hold is None
    # Had r1 kept its request or its ~1005 tokens, r2 would be over the rpm or the tpm.
    second = gate.context("r2", who, model="vision")
    await gate.admit(second, chat(text("hi"), model="vision", max_tokens=40))
    assert second.ticket is not None
    assert second.hold is not None
    third = gate.context("r3", who, model="vision")
    with pytest.raises(RateLimitExceededError):
        await gate.admit(third, chat(text("hi"), model="vision", max_tokens=1))


async def test_settle_charges_the_provider_usage_at_the_target_price() -> None:
    prices = PriceTable([PriceSettings(model="claude-*", input=1.0, output=2.0, image=10.0)])
    gate = Gate(prices)
    who = principal(tenant="acme", tpm=10_000, budget_usd=10.0)
    ctx = gate.context("r1", who)
    await gate.admit(ctx, chat(text("what is this?"), image(), max_tokens=100))
    target = ctx.options[1].target
    usage = Usage(prompt_tokens=1500, completion_tokens=50)
    await gate.admission.settle(ctx, ended(target=target, usage=usage, reported_image_tokens=400))
    (row,) = await gate.rows("r1")
    # 1100 text tokens at 1, 400 image tokens at 10, 50 output tokens at 2.
    assert (row.amount_micros, row.prompt_tokens, row.completion_tokens) == (5200, 1500, 50)
    assert (row.kind, row.source) == ("settle", "provider")
    assert (row.key_id, row.tenant, row.model, row.provider) == ("k1", "acme", "mixed", "an")
    assert await gate.state(who) == BudgetState(BudgetCharge(5200, 1550), BudgetCharge())
    assert (ctx.hold, ctx.ticket) == (None, None)


async def test_settle_corrects_the_token_count_to_the_usage() -> None:
    gate = Gate()
    who = principal(tpm=3000)
    ctx = gate.context("r1", who, model="vision")
    await gate.admit(ctx, chat(text("hi"), model="vision", max_tokens=2000))
    usage = Usage(prompt_tokens=5, completion_tokens=5)
    await gate.admission.settle(ctx, ended(target=ctx.options[0].target, usage=usage))
    # 10 tokens used, not the ~2005 estimated: another request of the same size fits.
    again = gate.context("r2", who, model="vision")
    await gate.admit(again, chat(text("hi"), model="vision", max_tokens=2000))
    assert again.ticket is not None


async def test_a_stream_cut_short_is_charged_its_prompt_and_what_was_relayed() -> None:
    gate = Gate()
    who = principal(budget_tokens=100_000)
    ctx = gate.context("r1", who, model="vision")
    await gate.admit(ctx, chat(text("tell me a story"), model="vision", max_tokens=500))
    # Ten characters relayed: three tokens' worth of answer.
    await gate.admission.settle(ctx, ended(target=ctx.options[0].target, streamed_chars=10))
    (row,) = await gate.rows("r1")
    prompt = ctx.prompt_estimate
    assert (row.prompt_tokens, row.completion_tokens, row.source) == (prompt, 3, "estimated")
    assert row.amount_micros == BUILTIN_PRICES["gpt-4o"].cost_micros(prompt, 3, 0)
    assert row.amount_micros > 0
    assert await gate.state(who) == BudgetState(
        BudgetCharge(row.amount_micros, prompt + 3), BudgetCharge()
    )


async def test_a_call_the_client_left_before_its_answer_is_charged_its_prompt() -> None:
    # The prompt reached the provider, which charges for it whether or not anyone waits.
    gate = Gate()
    who = principal(budget_tokens=100_000)
    ctx = gate.context("r1", who, model="vision")
    await gate.admit(ctx, chat(text("tell me a story"), model="vision", max_tokens=500))
    await gate.admission.settle(ctx, ended(cut=True, target=ctx.options[0].target))
    (row,) = await gate.rows("r1")
    prompt = ctx.prompt_estimate
    assert (row.prompt_tokens, row.completion_tokens, row.source) == (prompt, 0, "estimated")
    assert await gate.state(who) == BudgetState(
        BudgetCharge(row.amount_micros, prompt), BudgetCharge()
    )


async def test_a_request_cut_before_any_attempt_is_charged_nothing() -> None:
    gate = Gate()
    who = principal(budget_tokens=100_000)
    ctx = gate.context("r1", who, model="vision")
    await gate.admit(ctx, chat(text("tell me a story"), model="vision", max_tokens=500))
    await gate.admission.settle(ctx, ended(cut=True))
    (row,) = await gate.rows("r1")
    assert (row.prompt_tokens, row.completion_tokens) == (0, 0)


async def test_a_request_that_produced_nothing_is_charged_nothing() -> None:
    gate = Gate()
    who = principal(tpm=1000, budget_usd=1.0)
    ctx = gate.context("r1", who, model="vision")
    await gate.admit(ctx, chat(text("hi"), model="vision", max_tokens=900))
    await gate.admission.settle(ctx, ended(target=ctx.options[0].target))
    (row,) = await gate.rows("r1")
    assert (row.amount_micros, row.prompt_tokens, row.completion_tokens) == (0, 0, 0)
    assert await gate.state(who) == BudgetState(BudgetCharge(), BudgetCharge())
    # Its tokens are given back to the minute too.
    again = gate.context("r2", who, model="vision")
    await gate.admit(again, chat(text("hi"), model="vision", max_tokens=900))
    assert again.ticket is not None


async def test_settle_runs_once() -> None:
    gate = Gate()
    who = principal(budget_tokens=100_000)
    ctx = gate.context("r1", who, model="vision")
    await gate.admit(ctx, chat(text("hi"), model="vision", max_tokens=10))
    outcome = ended(usage=Usage(prompt_tokens=5, completion_tokens=5))
    await gate.admission.settle(ctx, outcome)
    await gate.admission.settle(ctx, outcome)
    assert len(await gate.rows("r1")) == 1
    assert await gate.state(who) == BudgetState(BudgetCharge(0, 10), BudgetCharge())


async def test_documents_are_held_at_the_dearest_target_in_the_form_it_takes_them() -> None:
    import base64

    from aperture.governance.estimate import document_tokens
    from aperture.pipeline import IntakeDocuments, PdfWork, TargetLimits
    from aperture.settings import DocumentSettings
    from tests.documents.pdfs import text_pdf

    settings = parse_settings(CONFIG, {})
    limits = TargetLimits(settings.providers)
    intake = IntakeDocuments(DocumentSettings(), PdfWork(None), target_limits=limits)
    gate = Gate()
    ctx = gate.context("r1", principal(tpm=100_000))
    uri = "data:application/pdf;base64," + base64.b64encode(text_pdf("One", "Two")).decode()
    request = chat(text("Summarise."), {"type": "file", "file": {"file_data": uri}})
    request = await intake(ctx, request)
    await gate.admit(ctx, request)
    letter = ((612.0, 792.0),) * 2
    each = [
        document_tokens(
            "native", o.target, letter, limits(o.target), image_count=0, max_pixels=4_200_000
        )
        for o in ctx.options
    ]
    assert ctx.document_estimate == max(each) > 2 * 1500
    assert ctx.prompt_estimate == text_tokens(request) + max(each)


async def test_cache_reads_and_writes_are_charged_at_the_providers_cache_rates() -> None:
    gate = Gate()
    who = principal(budget_usd=10.0)
    ctx = gate.context("r1", who, model="mixed")
    await gate.admit(ctx, chat(text("hi"), max_tokens=100))
    claude = ctx.options[1].target
    # Anthropic's shape: of 5000 prompt tokens, 3000 read from the cache and 1000 written.
    usage = Usage(
        prompt_tokens=5000, completion_tokens=100, cached_tokens=3000, cache_creation_tokens=1000
    )
    await gate.admission.settle(ctx, ended(target=claude, usage=usage))
    (row,) = await gate.rows("r1")
    # Sonnet: $3/M input, reads at 0.1x ($0.30/M), writes at 1.25x ($3.75/M), $15/M output.
    assert row.amount_micros == 1000 * 3 + 3000 * 0.3 + 1000 * 3.75 + 100 * 15


async def test_a_token_count_is_neither_counted_nor_held() -> None:
    gate = Gate()
    ctx = gate.context("r1", principal(tpm=10, budget_tokens=10))
    ctx.counting = True
    await gate.admit(ctx, chat(text("a long prompt " * 100)))
    assert (ctx.ticket, ctx.hold) == (None, None)
