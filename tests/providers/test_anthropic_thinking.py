"""Canonical reasoning -> Anthropic's ``thinking``, and signed thoughts there and back."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from anthropic.types.message_count_tokens_params import MessageCountTokensParams
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

from aperture.errors import InvalidRequestError
from aperture.model import ChatRequest, Message, Reasoning, Target, Thought, ToolCall
from aperture.providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicProvider
from aperture.settings import ProviderSettings

PROVIDER = AnthropicProvider()
TARGET = Target(ProviderSettings(name="claude", kind="anthropic", api_key="k"), "claude-sonnet-4-5")
NON_STREAMING = pydantic.TypeAdapter(MessageCreateParamsNonStreaming)
COUNTING = pydantic.TypeAdapter(MessageCountTokensParams)
ASK = Message("user", "Why is the sky blue?")


def build(**fields: Any) -> dict[str, Any]:
    messages = fields.pop("messages", (ASK,))
    chat = ChatRequest(model="claude", messages=messages, **fields)
    body: dict[str, Any] = json.loads(PROVIDER.build_request(chat, TARGET).body)
    NON_STREAMING.validate_python(body)
    return body


def test_a_budget_goes_as_sent() -> None:
    body = build(max_tokens=5000, reasoning=Reasoning(budget_tokens=2000))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert body["max_tokens"] == 5000


@pytest.mark.parametrize(
    ("effort", "budget"), [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 16384)]
)
def test_an_effort_becomes_its_documented_budget(effort: Any, budget: int) -> None:
    body = build(reasoning=Reasoning(effort=effort))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    # With no max_tokens, the answer keeps the usual room on top of the budget.
    assert body["max_tokens"] == budget + DEFAULT_MAX_TOKENS


def test_an_effort_budget_stays_below_max_tokens() -> None:
    body = build(max_tokens=3000, reasoning=Reasoning(effort="high"))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2999}


def test_too_few_max_tokens_to_reason_is_refused_at_max_tokens() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        build(max_tokens=500, reasoning=Reasoning(effort="low"))
    assert refused.value.param == "max_tokens"


def test_disabled_and_adaptive() -> None:
    assert build(reasoning=Reasoning(enabled=False))["thinking"] == {"type": "disabled"}
    assert build(reasoning=Reasoning())["thinking"] == {"type": "adaptive"}
    assert "thinking" not in build()


def test_signed_thoughts_open_the_assistant_turn_and_unsigned_ones_are_left_out() -> None:
    call = ToolCall("toolu_1", "lookup", '{"q": "sky"}')
    thoughts = (
        Thought("Summarised elsewhere."),
        Thought("Rayleigh scattering.", "c2ln"),
        Thought(redacted="b3BhcXVl"),
    )
    body = build(
        max_tokens=4000,
        reasoning=Reasoning(budget_tokens=2000),
        messages=(
            ASK,
            Message("assistant", "Let me look.", tool_calls=(call,), reasoning=thoughts),
            Message("tool", "blue light scatters", tool_call_id="toolu_1"),
        ),
    )
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Rayleigh scattering.", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "b3BhcXVl"},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "sky"}},
    ]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}


def test_a_tool_turn_without_its_signed_thinking_is_sent_without_thinking() -> None:
    # A Chat Completions client cannot carry signatures; Anthropic would refuse the turn.
    call = ToolCall("toolu_1", "lookup", "{}")
    body = build(
        reasoning=Reasoning(effort="low"),
        messages=(
            ASK,
            Message("assistant", None, tool_calls=(call,), reasoning=(Thought("unsigned"),)),
            Message("tool", "ok", tool_call_id="toolu_1"),
        ),
    )
    assert "thinking" not in body


def test_the_answer_keeps_thinking_blocks_and_signatures() -> None:
    answer = {
        "id": "msg_1",
        "type": "message",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Light scatters.", "signature": "c2ln"},
            {"type": "redacted_thinking", "data": "b3BhcXVl"},
            {"type": "text", "text": "Scattering."},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 20},
    }
    choice = PROVIDER.parse_response(json.dumps(answer).encode(), TARGET).choices[0]
    assert choice.content == "Scattering."
    assert choice.reasoning == (Thought("Light scatters.", "c2ln"), Thought(redacted="b3BhcXVl"))


def test_the_count_request_holds_only_what_count_tokens_takes() -> None:
    chat = ChatRequest(
        model="claude",
        messages=(Message("system", "Be brief."), ASK),
        max_tokens=100,
        temperature=0.5,
        stream=True,
        reasoning=Reasoning(budget_tokens=2000),
    )
    upstream = PROVIDER.count_request(chat, TARGET)
    assert upstream.url.endswith("/v1/messages/count_tokens")
    body = json.loads(upstream.body)
    COUNTING.validate_python(body)
    assert set(body) == {"model", "system", "messages", "thinking"}
