"""The pipeline's two ways: stages in order, after-steps in reverse, each after-step only for
the steps a request reached, its end exactly once and shielded from cancellation, for
answers, streams and failures alike. Dispatch is real: the router over the emulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aperture.dialects.openai.inbound import parse_chat_request
from aperture.errors import GatewayError, PolicyViolationError, ShuttingDownError
from aperture.model import ChatRequest, ChatResponse, Delta, StreamEvent
from aperture.pipeline import (
    After,
    Dispatch,
    Outcome,
    Pipeline,
    RequestContext,
    Step,
    TargetLimits,
)
from aperture.pipeline.normalize import ImagePreparer
from aperture.pipeline.resolve import ResolveModel
from aperture.pipeline.step import StreamFilter
from aperture.routing.breaker import SharedBreakers
from aperture.routing.catalog import Catalog
from aperture.routing.dispatch import Dispatcher
from aperture.routing.live import LiveCatalog
from aperture.routing.retry import RetryPolicy
from aperture.routing.router import Router
from aperture.settings import Settings
from aperture.storage.memory import MemoryCounters
from aperture.upstream import UpstreamClient

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Journal(After):
    """An after-step that writes down what it was shown, for the test to read."""

    def __init__(self, name: str, seen: list[str], *, upper: bool = False) -> None:
        self.name, self.seen, self.upper = name, seen, upper
        self.outcomes: list[Outcome] = []

    async def answer(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        self.seen.append(f"{self.name}.answer")
        return response

    def stream(self, ctx: RequestContext) -> StreamFilter | None:
        return _Upper(self) if self.upper else None

    async def end(self, ctx: RequestContext, outcome: Outcome) -> None:
        await anyio.lowlevel.checkpoint()  # a cancelled, unshielded end would stop here
        self.seen.append(f"{self.name}.end")
        self.outcomes.append(outcome)


class _Upper:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def event(self, event: StreamEvent) -> list[StreamEvent]:
        if isinstance(event, Delta) and event.content:
            return [Delta(index=event.index, content=event.content.upper())]
        return [event]

    async def finish(self) -> list[StreamEvent]:
        self._journal.seen.append(f"{self._journal.name}.finish")
        return []


class Refuse:
    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        raise PolicyViolationError("refused", param="messages")


class Broken(After):
    async def end(self, ctx: RequestContext, outcome: Outcome) -> None:
        raise RuntimeError("the store is down")


class Renderer:
    def event(self, event: StreamEvent) -> bytes:
        return f"{getattr(event, 'content', None) or ''}|".encode()

    def done(self) -> bytes:
        return b"[DONE]"

    def error(self, error: GatewayError) -> bytes:
        return f"error:{error.code}".encode()


@pytest.fixture
async def dispatch(gateway_settings: Settings) -> AsyncIterator[tuple[Dispatch, LiveCatalog]]:
    client = UpstreamClient.create()
    limiter = anyio.CapacityLimiter(1)
    images = ImagePreparer(
        gateway_settings.images, limiter, TargetLimits(gateway_settings.providers)
    )
    router = Router(Dispatcher(client), SharedBreakers(MemoryCounters()), RetryPolicy())
    try:
        yield Dispatch(router, images), LiveCatalog(Catalog.from_settings(gateway_settings))
    finally:
        await client.close()


def chat(content: str = "hi", **fields: Any) -> tuple[ChatRequest, Any]:
    body = {"model": "demo-text", "messages": [{"role": "user", "content": content}], **fields}
    return parse_chat_request(json.dumps(body).encode())


def pipeline(dispatch: tuple[Dispatch, LiveCatalog], *steps: Step) -> Pipeline:
    return Pipeline((Step(ResolveModel(dispatch[1])), *steps), dispatch[0])


async def test_after_steps_run_in_reverse_on_an_answer_then_end_once(
    dispatch: tuple[Dispatch, LiveCatalog],
) -> None:
    seen: list[str] = []
    outer, inner = Journal("outer", seen), Journal("inner", seen)
    exchange = pipeline(dispatch, Step(after=outer), Step(after=inner)).exchange("r1", "/t")
    response = await exchange.run(*chat())
    assert isinstance(response, ChatResponse)
    assert seen == ["inner.answer", "outer.answer"]
    await exchange.end(200, None)
    await exchange.end(200, None)
    assert seen == ["inner.answer", "outer.answer", "inner.end", "outer.end"]
    (outcome,) = outer.outcomes
    # What the attempts produced comes back from the router, not from the context.
    assert outcome.attempt.target is not None
    assert outcome.attempt.target.provider.name == "emu"
    assert outcome.attempt.attempts == 1
    assert outcome.attempt.usage == response.usage


async def test_a_refused_request_ends_only_the_steps_it_reached(
    dispatch: tuple[Dispatch, LiveCatalog],
) -> None:
    seen: list[str] = []
    first, refusing, unreached = (
        Journal("first", seen),
        Journal("refusing", seen),
        Journal("x", seen),
    )
    exchange = Pipeline(
        (Step(after=first), Step(Refuse(), after=refusing), Step(after=unreached)), dispatch[0]
    ).exchange("r1", "/t")
    with pytest.raises(PolicyViolationError):
        await exchange.run(*chat())
    await exchange.end(403, "policy_violation")
    assert seen == ["refusing.end", "first.end"]
    assert refusing.outcomes == [Outcome(403, "policy_violation")]


async def test_a_leading_step_ends_even_when_the_pipeline_never_ran(
    dispatch: tuple[Dispatch, LiveCatalog],
) -> None:
    seen: list[str] = []
    attempts, catalog = dispatch
    steps = (
        Step(after=Journal("first", seen)),
        Step(ResolveModel(catalog)),
        Step(after=Journal("later", seen)),
    )
    exchange = Pipeline(steps, attempts).exchange("r1", "/t")
    await exchange.end(401, "invalid_api_key")  # refused at the door: no key
    assert seen == ["first.end"]


async def test_ends_run_shielded_and_past_a_failing_one(
    dispatch: tuple[Dispatch, LiveCatalog],
) -> None:
    seen: list[str] = []
    exchange = pipeline(dispatch, Step(after=Journal("outer", seen)), Step(after=Broken()))
    run = exchange.exchange("r1", "/t")
    await run.run(*chat())
    with anyio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(RuntimeError, match="the store is down"):
            await run.end(499, "cancelled")
    assert seen == ["outer.answer", "outer.end"]


async def test_a_stream_passes_the_filters_and_ends_with_how_it_ended(
    dispatch: tuple[Dispatch, LiveCatalog],
) -> None:
    seen: list[str] = []
    journal = Journal("upper", seen, upper=True)
    exchange = pipeline(dispatch, Step(after=journal)).exchange("r1", "/t")
    stream = await exchange.run(*chat("say something", stream=True))
    assert not isinstance(stream, ChatResponse)
    body = b"".join([chunk async for chunk in stream.relay(Renderer())])
    text = body.decode()
    assert text.endswith("[DONE]")
    assert text.upper() == text  # every delta went through the filter
    assert seen == ["upper.finish"]
    await stream.close()
    (outcome,) = journal.outcomes
    assert (outcome.status, outcome.code) == (200, None)
    assert outcome.attempt.streamed_chars > 0


async def test_a_stream_left_before_its_end_is_a_cut_or_a_shutdown(
    dispatch: tuple[Dispatch, LiveCatalog],
) -> None:
    for shutting_down, expected in [
        (False, (499, "client_disconnected")),
        (True, (ShuttingDownError.status, ShuttingDownError.code)),
    ]:
        journal = Journal("j", [])
        exchange = pipeline(dispatch, Step(after=journal)).exchange("r1", "/t")
        stream = await exchange.run(*chat("say something", stream=True))
        assert not isinstance(stream, ChatResponse)
        await stream.close(shutting_down=shutting_down)
        (outcome,) = journal.outcomes
        assert (outcome.status, outcome.code) == expected
        assert outcome.cut is (expected[0] == 499)
        assert outcome.attempt.target is not None  # cut with the attempt under way
