"""Guardrails: the built-in checks, scoping by route and model, concurrency, timeouts and
failures under ``on_error``, log versus block, and messages that never repeat the text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import anyio
import msgspec
import pytest

from aperture.errors import PolicyViolationError
from aperture.governance.guardrails import (
    DEFAULT_GUARD_PROMPT,
    Guardrail,
    Guardrails,
    GuardrailSelection,
    KeywordGuardrail,
    ModelGuardrail,
    Outcome,
    RegexGuardrail,
    Verdict,
    parse_guard_answer,
    raise_if_blocked,
)
from aperture.settings.governance import GuardrailSettings

pytestmark = pytest.mark.anyio

SECRET = "the launch codes are 0000"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def settings(**fields: Any) -> GuardrailSettings:
    return msgspec.convert(fields, GuardrailSettings)


async def never_ask(model: str, prompt: str) -> str:
    raise AssertionError("no guard model should be asked")


async def hanging_ask(model: str, prompt: str) -> str:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


class FakeGuardModel:
    """An ``Ask`` that answers a fixed text and records what it was asked."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, model: str, prompt: str) -> str:
        self.asked.append((model, prompt))
        return self.answer


class Hook:
    """A hand-written guardrail: the protocol is all the set needs."""

    def __init__(
        self,
        name: str,
        behaviour: Any,
        *,
        on_error: Literal["open", "closed"] = "closed",
        action: Literal["block", "log"] = "block",
        stage: Literal["pre", "post"] = "pre",
        timeout_s: float = 5.0,
    ) -> None:
        self.name = name
        self.stage: Literal["pre", "post"] = stage
        self.on_error: Literal["open", "closed"] = on_error
        self.action: Literal["block", "log"] = action
        self.timeout_s = timeout_s
        self._behaviour = behaviour

    async def check(self, texts: Sequence[str]) -> Verdict:
        result: Verdict = await self._behaviour(texts)
        return result


async def allow(texts: Sequence[str]) -> Verdict:
    return Verdict(True)


async def hang(texts: Sequence[str]) -> Verdict:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def crash(texts: Sequence[str]) -> Verdict:
    raise RuntimeError(f"could not judge {texts[0]!r}")


async def run(*hooks: Guardrail, stage: Literal["pre", "post"] = "pre") -> list[Outcome]:
    return await GuardrailSelection(hooks).run(stage, [SECRET])


async def test_keywords_match_whole_words_and_phrases_in_any_case() -> None:
    guard = KeywordGuardrail(
        settings(name="kw", kind="keywords", words=["bomb", "credit card", "", "c++"])
    )
    assert await guard.check(["Build a BOMB!"]) == Verdict(False, "matched words[0]")
    assert await guard.check(["my Credit\n  Card number"]) == Verdict(False, "matched words[1]")
    assert await guard.check(["I write C++ daily"]) == Verdict(False, "matched words[3]")
    assert await guard.check(["a bombastic speech", "creditcard", "abc++"]) == Verdict(True)
    assert await guard.check(["fine", "then a bomb"]) == Verdict(False, "matched words[0]")


async def test_regex_guardrail_keeps_each_pattern_flags() -> None:
    guard = RegexGuardrail(
        settings(name="rx", kind="regex", patterns=[r"\b\d{4}-\d{4}\b", "(?i)launch codes"])
    )
    assert await guard.check(["call 1234-5678"]) == Verdict(False, "matched patterns[0]")
    assert await guard.check([SECRET.upper()]) == Verdict(False, "matched patterns[1]")
    assert await guard.check(["12345678", "lunch codes"]) == Verdict(True)


async def test_model_guardrail_asks_the_guard_model_with_the_texts() -> None:
    ask = FakeGuardModel("SAFE")
    guard = ModelGuardrail(settings(name="guard", kind="model", model="llama-guard"), ask)
    assert await guard.check(["first text", "second text"]) == Verdict(True)
    ((model, prompt),) = ask.asked
    assert model == "llama-guard"
    assert prompt.startswith(DEFAULT_GUARD_PROMPT)
    assert "first text\n\nsecond text" in prompt
    custom = ModelGuardrail(
        settings(name="g", kind="model", model="m", prompt="Is this about cooking?"), ask
    )
    await custom.check(["soup"])
    assert ask.asked[-1][1].startswith("Is this about cooking?\n\n")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("SAFE", Verdict(True)),
        ("safe.", Verdict(True)),
        ("  The text is SAFE: a recipe", Verdict(True, "a recipe")),
        ("UNSAFE", Verdict(False, "the guard model: UNSAFE")),
        ("unsafe: weapons", Verdict(False, "weapons")),
        ("Verdict: UNSAFE - self-harm", Verdict(False, "self-harm")),
        ("Not safe, actually UNSAFE", Verdict(False)),
    ],
)
def test_guard_answers_are_parsed_tolerantly(answer: str, expected: Verdict) -> None:
    verdict = parse_guard_answer(answer)
    assert verdict.allowed == expected.allowed
    if expected.reason:
        assert verdict.reason == expected.reason


@pytest.mark.parametrize("answer", ["", "I cannot help with that.", "SAFETY FIRST", "ok"])
def test_an_answer_with_no_verdict_is_a_failure(answer: str) -> None:
    with pytest.raises(ValueError, match="neither SAFE nor UNSAFE"):
        parse_guard_answer(answer)


@pytest.mark.parametrize(
    ("on_error", "allowed"),
    [("open", True), ("closed", False)],
)
async def test_a_garbage_guard_answer_follows_on_error(
    on_error: Literal["open", "closed"], allowed: bool
) -> None:
    guardrails = Guardrails(
        (settings(name="guard", kind="model", model="m", on_error=on_error),),
        FakeGuardModel("As an AI language model..."),
    )
    (outcome,) = await guardrails.for_request(None, "gpt-4o").run("pre", ["hello"])
    assert (outcome.allowed, outcome.error) == (allowed, "failed (ValueError)")


async def test_model_guardrail_outcomes_block_or_allow() -> None:
    unsafe = Guardrails(
        (settings(name="guard", kind="model", model="m"),), FakeGuardModel("UNSAFE: weapons")
    )
    outcomes = await unsafe.for_request(None, "gpt-4o").run("pre", [SECRET])
    assert outcomes == [
        Outcome(guardrail="guard", stage="pre", action="block", allowed=False, reason="weapons")
    ]
    with pytest.raises(PolicyViolationError) as caught:
        raise_if_blocked(outcomes)
    assert caught.value.code == "policy_violation"
    assert caught.value.message == "The request was blocked by the guardrail 'guard'."
    safe = Guardrails((settings(name="guard", kind="model", model="m"),), FakeGuardModel("SAFE"))
    (outcome,) = await safe.for_request(None, "gpt-4o").run("pre", [SECRET])
    assert outcome.allowed and not outcome.blocks
    raise_if_blocked([outcome])


async def test_for_request_selects_by_route_and_model_glob() -> None:
    guardrails = Guardrails(
        (
            settings(name="everywhere", kind="keywords", words=["x"]),
            settings(name="support-route", kind="keywords", words=["x"], routes=["support"]),
            settings(name="vision", kind="keywords", words=["x"], models=["*-vision", "gpt-4o"]),
            settings(name="either", kind="regex", patterns=["x"], routes=["r"], models=["m"]),
        ),
        never_ask,
    )

    def names(route: str | None, model: str) -> list[str]:
        return [g.name for g in guardrails.for_request(route, model).guardrails]

    assert names(None, "llama") == ["everywhere"]
    assert names("support", "llama") == ["everywhere", "support-route"]
    assert names(None, "qwen-vision") == ["everywhere", "vision"]
    assert names("r", "gpt-4o") == ["everywhere", "vision", "either"]
    assert names(None, "m") == ["everywhere", "either"]
    assert not Guardrails((), never_ask).for_request("r", "m")


async def test_run_takes_only_the_stage_asked_for() -> None:
    pre = Hook("pre-hook", allow, stage="pre")
    post = Hook("post-hook", crash, stage="post")
    assert [o.guardrail for o in await run(pre, post, stage="pre")] == ["pre-hook"]
    assert [o.guardrail for o in await run(pre, post, stage="post")] == ["post-hook"]
    assert await GuardrailSelection([pre]).run("pre", ["", ""]) == []  # no text to judge


@pytest.mark.parametrize(
    ("on_error", "allowed", "blocks"),
    [("open", True, False), ("closed", False, True)],
)
async def test_a_timeout_follows_on_error(
    on_error: Literal["open", "closed"], allowed: bool, blocks: bool
) -> None:
    (outcome,) = await run(Hook("slow", hang, on_error=on_error, timeout_s=0.01))
    assert (outcome.allowed, outcome.blocks, outcome.error) == (
        allowed,
        blocks,
        "timed out after 0.01s",
    )
    assert outcome.reason.startswith("guardrail 'slow' timed out")
    if blocks:
        with pytest.raises(PolicyViolationError) as caught:
            raise_if_blocked([outcome])
        assert caught.value.message == (
            "The request was blocked by the guardrail 'slow' (the guardrail timed out after 0.01s)."
        )
    else:
        raise_if_blocked([outcome])


@pytest.mark.parametrize(
    ("on_error", "allowed"),
    [("open", True), ("closed", False)],
)
async def test_an_exception_follows_on_error_without_quoting_its_message(
    on_error: Literal["open", "closed"], allowed: bool
) -> None:
    (outcome,) = await run(Hook("broken", crash, on_error=on_error))
    assert (outcome.allowed, outcome.error) == (allowed, "failed (RuntimeError)")
    assert SECRET not in outcome.reason
    if not allowed:
        with pytest.raises(PolicyViolationError) as caught:
            raise_if_blocked([outcome])
        assert "'broken'" in caught.value.message and SECRET not in caught.value.message


async def test_a_log_action_records_without_blocking() -> None:
    guardrails = Guardrails(
        (
            settings(name="watch", kind="regex", patterns=["launch"], action="log"),
            settings(name="slow-watch", kind="model", model="m", action="log", timeout_s=0.01),
        ),
        hanging_ask,
    )
    outcomes = await guardrails.for_request(None, "m").run("pre", [SECRET])
    assert [(o.guardrail, o.allowed, o.blocks) for o in outcomes] == [
        ("watch", False, False),
        ("slow-watch", False, False),
    ]
    raise_if_blocked(outcomes)


async def test_block_messages_name_the_guardrail_never_the_text() -> None:
    guardrails = Guardrails(
        (
            settings(name="ok", kind="keywords", words=["recipe"]),
            settings(name="codes", kind="keywords", words=["launch codes"], stage="post"),
        ),
        never_ask,
    )
    selection = guardrails.for_request(None, "m")
    outcomes = await selection.run("post", [SECRET])
    assert outcomes[0].reason == "matched words[0]"
    with pytest.raises(PolicyViolationError) as caught:
        raise_if_blocked(outcomes)
    assert caught.value.message == "The response was blocked by the guardrail 'codes'."
    assert "launch" not in caught.value.message


async def test_guardrails_run_concurrently_and_report_in_configured_order() -> None:
    # Each waits for the other to have started, and "a" also waits for "b" to finish: run
    # one after the other, "a" would wait until its timeout and fail closed.
    started = {"a": anyio.Event(), "b": anyio.Event()}
    b_done = anyio.Event()
    finished: list[str] = []

    def waits_for(me: str, other: str) -> Any:
        async def behaviour(texts: Sequence[str]) -> Verdict:
            started[me].set()
            await started[other].wait()
            if me == "a":
                await b_done.wait()
            finished.append(me)
            if me == "b":
                b_done.set()
            return Verdict(True)

        return behaviour

    outcomes = await run(Hook("a", waits_for("a", "b")), Hook("b", waits_for("b", "a")))
    assert finished == ["b", "a"]
    assert [(o.guardrail, o.allowed, o.error) for o in outcomes] == [
        ("a", True, None),
        ("b", True, None),
    ]


async def test_a_slow_guardrail_does_not_hold_up_the_others_verdicts() -> None:
    outcomes = await run(
        Hook("hangs", hang, on_error="open", timeout_s=0.05),
        Hook("quick", allow),
    )
    assert [(o.guardrail, o.allowed, o.error) for o in outcomes] == [
        ("hangs", True, "timed out after 0.05s"),
        ("quick", True, None),
    ]


def test_built_ins_refuse_settings_they_cannot_use() -> None:
    with pytest.raises(ValueError, match="no words"):
        KeywordGuardrail(settings(name="k", kind="keywords", words=[" "]))
    with pytest.raises(ValueError, match="no patterns"):
        RegexGuardrail(settings(name="r", kind="regex"))
    with pytest.raises(ValueError, match="names no model"):
        ModelGuardrail(settings(name="m", kind="model"), never_ask)
