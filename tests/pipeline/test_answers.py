"""Answers after the call: PII in whole answers and in streams (redacted across chunk
boundaries, held text released before the choice's end), and the post guardrails."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from aperture.errors import PiiDetectedError, PolicyViolationError
from aperture.governance.guardrails import Guardrails
from aperture.governance.pii import PiiScanner
from aperture.model import (
    ChatResponse,
    Choice,
    Delta,
    Finish,
    StreamEvent,
    Thought,
    TokenLogprob,
    UsageReport,
)
from aperture.model.response import Usage
from aperture.pipeline.answers import AnswerScreen, StreamScreen
from aperture.pipeline.context import RequestContext
from aperture.routing.catalog import Catalog
from aperture.settings import parse_settings
from aperture.settings.governance import GuardrailSettings, PiiAction, PiiSettings
from aperture.storage.records import AuditFinding

pytestmark = pytest.mark.anyio

CATALOG = Catalog.from_settings(
    parse_settings(
        """
providers: [{name: oa, kind: openai, api_key: k}]
models: [{name: chat, provider: oa, upstream_model: gpt-4o}]
""",
        {},
    )
)
SCANNER = PiiScanner(PiiSettings())
EMAIL = "john.smith@example.com"
PHONE = "212-555-0123"
# Long enough that the stream redactor sends text before the end, with the phone number
# arriving in two pieces in the middle.
STORY = (
    "Thanks for waiting. I looked the account up and found the details you asked for. "
    f"The contact on file can be reached on {PHONE} during office hours, and otherwise "
    "by post. Let me know if there is anything else I can help you with today."
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def context() -> RequestContext:
    resolution = CATALOG.resolve("chat")
    return RequestContext(
        request_id="r1",
        endpoint="/v1/chat/completions",
        resolution=resolution,
        options=resolution.options,
    )


def answer(*contents: str | None) -> ChatResponse:
    choices = tuple(Choice(index=i, content=c) for i, c in enumerate(contents))
    return ChatResponse(id="c1", model="chat", created=0, choices=choices)


def post_guard(*words: str) -> Guardrails:
    async def never_ask(model: str, prompt: str) -> str:
        raise AssertionError("no guard model is configured")

    return Guardrails(
        (GuardrailSettings(name="no-secrets", kind="keywords", stage="post", words=words),),
        never_ask,
    )


def screen(action: PiiAction = "redact", guardrails: Guardrails | None = None) -> AnswerScreen:
    return AnswerScreen(SCANNER, action, guardrails)


def chunks(text: str, *, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def run(stream: StreamScreen, events: Iterable[StreamEvent]) -> list[StreamEvent]:
    sent: list[StreamEvent] = []
    for event in events:
        sent += stream.event(event)
    return sent


def contents(events: Iterable[StreamEvent]) -> list[str]:
    return [e.content for e in events if isinstance(e, Delta) and e.content]


# --- whole answers ---------------------------------------------------------------------------


async def test_redact_replaces_pii_in_each_choice() -> None:
    ctx = context()
    result = await screen().complete(ctx, answer(f"Write to {EMAIL}.", "Nothing here.", None))
    assert [c.content for c in result.choices] == ["Write to [EMAIL].", "Nothing here.", None]
    assert ctx.findings == [
        AuditFinding(check="pii", name="email", action="redact", param="choices[0].message.content")
    ]


async def test_findings_count_the_values_of_each_kind() -> None:
    ctx = context()
    text = f"{EMAIL}, jane@example.org or {PHONE}"
    result = await screen().complete(ctx, answer("fine", text))
    assert result.choices[1].content == "[EMAIL], [EMAIL] or [PHONE]"
    assert sorted((f.name, f.count, f.param) for f in ctx.findings) == [
        ("email", 2, "choices[1].message.content"),
        ("phone", 1, "choices[1].message.content"),
    ]


async def test_block_withholds_the_answer_without_quoting_it() -> None:
    ctx = context()
    with pytest.raises(PiiDetectedError) as caught:
        await screen("block").complete(ctx, answer(f"Write to {EMAIL}."))
    assert caught.value.param == "choices[0].message.content"
    assert EMAIL not in caught.value.message
    assert "email" in caught.value.message
    assert [(f.name, f.action) for f in ctx.findings] == [("email", "block")]


async def test_log_keeps_the_answer_and_records_the_finding() -> None:
    ctx = context()
    response = answer(f"Write to {EMAIL}.")
    result = await screen("log").complete(ctx, response)
    assert result.choices == response.choices
    assert [(f.name, f.action, f.param) for f in ctx.findings] == [
        ("email", "log", "choices[0].message.content")
    ]


async def test_an_answer_is_judged_by_the_post_guardrails() -> None:
    ctx = context()
    guarded = AnswerScreen(None, "redact", post_guard("launch codes"))
    assert guarded.needed(ctx)
    fine = answer("All good.")
    assert (await guarded.complete(ctx, fine)).choices == fine.choices
    with pytest.raises(PolicyViolationError) as caught:
        await guarded.complete(ctx, answer("The launch codes are 0000."))
    assert "no-secrets" in caught.value.message
    assert "0000" not in caught.value.message
    assert ctx.findings == [AuditFinding(check="guardrail", name="no-secrets", action="block")]


async def test_post_guardrails_read_the_redacted_answer() -> None:
    ctx = context()
    guarded = screen("redact", post_guard(EMAIL))
    result = await guarded.complete(ctx, answer(f"Write to {EMAIL}."))
    assert result.choices[0].content == "Write to [EMAIL]."
    # Logged, not redacted: the guardrail then sees the address.
    with pytest.raises(PolicyViolationError):
        await screen("log", post_guard(EMAIL)).complete(ctx, answer(f"Write to {EMAIL}."))


async def test_pre_guardrails_do_not_judge_answers() -> None:
    async def never_ask(model: str, prompt: str) -> str:
        raise AssertionError("not asked")

    pre_only = Guardrails(
        (GuardrailSettings(name="pre", kind="keywords", words=("launch codes",)),), never_ask
    )
    ctx = context()
    await AnswerScreen(None, "redact", pre_only).complete(ctx, answer("The launch codes."))
    assert ctx.findings == []


async def test_nothing_to_check_means_no_stream_screen() -> None:
    ctx = context()
    nothing = AnswerScreen(None, "redact", None)
    assert not nothing.needed(ctx)
    assert nothing.stream(ctx) is None
    assert screen().stream(ctx) is not None


# --- streams ---------------------------------------------------------------------------------


async def test_a_value_split_across_deltas_is_never_sent() -> None:
    ctx = context()
    stream = screen().stream(ctx)
    assert stream is not None
    cut = STORY.index(PHONE) + 6
    pieces = [*chunks(STORY[:cut]), *chunks(STORY[cut:])]
    assert any(p.endswith("212-55") for p in pieces)
    events: list[StreamEvent] = [
        Delta(role="assistant", content=""),
        *(Delta(content=p) for p in pieces),
        Finish(index=0, reason="stop"),
    ]
    sent = run(stream, events)
    sent += await stream.finish()
    text = "".join(contents(sent))
    assert text == STORY.replace(PHONE, "[PHONE]")
    for piece in contents(sent):
        assert "212" not in piece
        assert "555" not in piece
        assert "0123" not in piece
    assert ctx.findings == [
        AuditFinding(check="pii", name="phone", action="redact", param="choices[0].delta.content")
    ]


async def test_some_text_is_sent_before_the_stream_ends() -> None:
    stream = screen().stream(context())
    assert stream is not None
    early = run(stream, [Delta(content=p) for p in chunks(STORY)])
    assert contents(early)
    assert STORY.replace(PHONE, "[PHONE]").startswith("".join(contents(early)))


async def test_held_text_is_released_before_the_choice_finishes() -> None:
    stream = screen().stream(context())
    assert stream is not None
    assert stream.event(Delta(content="Short answer, mail ")) == []
    assert stream.event(Delta(content=EMAIL)) == []
    finish = Finish(index=0, reason="stop")
    assert stream.event(finish) == [Delta(index=0, content="Short answer, mail [EMAIL]"), finish]
    assert await stream.finish() == []


async def test_the_first_delta_keeps_its_role_while_its_text_is_held() -> None:
    stream = screen().stream(context())
    assert stream is not None
    assert stream.event(Delta(role="assistant", content="Hi")) == [
        Delta(role="assistant", content=None)
    ]


async def test_choices_are_held_and_released_separately() -> None:
    stream = screen().stream(context())
    assert stream is not None
    sent = run(
        stream,
        [
            Delta(index=0, content="zero: "),
            Delta(index=1, content=f"one: {EMAIL}"),
            Finish(index=1, reason="stop"),
        ],
    )
    assert sent == [Delta(index=1, content="one: [EMAIL]"), Finish(index=1, reason="stop")]
    assert await stream.finish() == [Delta(index=0, content="zero: ")]


async def test_finish_releases_what_a_stream_without_a_finish_still_held() -> None:
    stream = screen().stream(context())
    assert stream is not None
    assert stream.event(Delta(content=f"call {PHONE}")) == []
    assert await stream.finish() == [Delta(index=0, content="call [PHONE]")]


async def test_other_events_pass_through() -> None:
    stream = screen().stream(context())
    assert stream is not None
    report = UsageReport(Usage(prompt_tokens=1, completion_tokens=2))
    assert stream.event(report) == [report]
    assert stream.event(Delta(content="")) == [Delta(content="")]


async def test_block_refuses_a_stream_as_soon_as_pii_is_seen() -> None:
    ctx = context()
    stream = screen("block").stream(ctx)
    assert stream is not None
    stream.event(Delta(content=f"Sure: {EMAIL}"))
    with pytest.raises(PiiDetectedError) as caught:
        stream.event(Finish(index=0, reason="stop"))
    assert caught.value.param == "choices[0].delta.content"
    assert EMAIL not in caught.value.message


async def test_log_sends_the_stream_as_is_and_records_at_the_end() -> None:
    ctx = context()
    stream = screen("log").stream(ctx)
    assert stream is not None
    events: list[StreamEvent] = [Delta(content="mail "), Delta(content=EMAIL)]
    assert run(stream, events) == events
    assert ctx.findings == []
    assert await stream.finish() == []
    assert ctx.findings == [
        AuditFinding(check="pii", name="email", action="log", param="choices[0].delta.content")
    ]


async def test_post_guardrails_judge_the_whole_stream_at_the_end() -> None:
    ctx = context()
    stream = AnswerScreen(None, "redact", post_guard("launch codes")).stream(ctx)
    assert stream is not None
    events: list[StreamEvent] = [Delta(content="The launch "), Delta(content="codes are 0000.")]
    # Nothing is held back without a PII scanner: the text went out as it came.
    assert run(stream, events) == events
    with pytest.raises(PolicyViolationError):
        await stream.finish()
    assert ctx.findings == [AuditFinding(check="guardrail", name="no-secrets", action="block")]


async def test_post_guardrails_allow_a_clean_stream() -> None:
    ctx = context()
    stream = AnswerScreen(SCANNER, "redact", post_guard("launch codes")).stream(ctx)
    assert stream is not None
    sent = run(stream, [Delta(content="All good.")])
    assert sent + await stream.finish() == [Delta(content="All good.")]
    assert ctx.findings == []


async def test_redacted_answers_lose_their_logprobs() -> None:
    tokens = tuple(TokenLogprob(w, -0.5) for w in f"Write to {EMAIL}.".split(" "))
    plain = (TokenLogprob("Fine", -0.1),)
    response = ChatResponse(
        id="c1",
        model="chat",
        created=0,
        choices=(
            Choice(index=0, content=f"Write to {EMAIL}.", logprobs=tokens),
            Choice(index=1, content="Fine", logprobs=plain),
        ),
    )
    result = await screen().complete(context(), response)
    assert result.choices[0].logprobs is None  # they would spell the address out
    assert result.choices[1].logprobs == plain

    stream = screen().stream(context())
    assert stream is not None
    sent = stream.event(Delta(index=0, content=f"Write to {EMAIL}.", logprobs=tokens))
    assert all(isinstance(e, Delta) and e.logprobs is None for e in sent)


# --- thoughts --------------------------------------------------------------------------------


async def test_thoughts_are_screened_and_a_redacted_one_loses_its_signature() -> None:
    ctx = context()
    thoughts = (Thought(f"Mail {EMAIL} later.", "c2ln"), Thought("Nothing here.", "b3Ro"))
    choice = Choice(index=0, content="Done.", reasoning=thoughts)
    result = await screen().complete(ctx, ChatResponse("c1", "chat", 0, (choice,)))
    # The provider would refuse an altered thought back: unsigned, it is not sent back.
    assert result.choices[0].reasoning == (
        Thought("Mail [EMAIL] later."),
        Thought("Nothing here.", "b3Ro"),
    )
    with pytest.raises(PiiDetectedError) as blocked:
        await screen("block").complete(context(), ChatResponse("c1", "chat", 0, (choice,)))
    assert blocked.value.param == "choices[0].message.reasoning[0]"


async def test_streamed_thoughts_are_redacted_across_chunks_before_the_answer() -> None:
    stream = screen().stream(context())
    assert stream is not None
    events: list[StreamEvent] = [Delta(index=0, role="assistant", content="")]
    events += [Delta(index=0, thought=Thought(piece)) for piece in chunks(STORY)]
    events += [Delta(index=0, thought=Thought(signature="c2ln")), Delta(index=0, content="Ok.")]
    sent = run(stream, [*events, Finish(0, "stop")])
    thought = "".join(e.thought.text for e in sent if isinstance(e, Delta) and e.thought)
    assert thought == STORY.replace(PHONE, "[PHONE]")
    # Altered, the thought goes without its signature; the answer follows it.
    assert not any(isinstance(e, Delta) and e.thought and e.thought.signature for e in sent)
    assert contents(sent) == ["Ok."]


async def test_a_clean_streamed_thought_keeps_its_signature() -> None:
    stream = screen().stream(context())
    assert stream is not None
    events = [
        Delta(index=0, thought=Thought("Light scatters.")),
        Delta(index=0, thought=Thought(signature="c2ln")),
    ]
    sent = run(stream, events)
    assert sent[-1] == Delta(index=0, thought=Thought(signature="c2ln"))
    assert "".join(e.thought.text for e in sent if isinstance(e, Delta) and e.thought) == (
        "Light scatters."
    )
