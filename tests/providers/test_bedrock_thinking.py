"""Canonical reasoning on Bedrock Converse: Claude's ``thinking`` in
``additionalModelRequestFields``, signed ``reasoningContent`` there and back, checked by
botocore's validator and the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aperture.emulator.anthropic_thinking import signature_for
from aperture.emulator.bedrock import build_reply, converse_body
from aperture.emulator.bedrock_errors import BedrockError
from aperture.emulator.bedrock_request import parse_converse_request
from aperture.model import ChatRequest, Message, Reasoning, Target, Thought, ToolCall
from aperture.providers._bedrock_wire import parse_converse_response
from tests.providers.test_bedrock_provider import MODEL, PROVIDER, SETTINGS, build

TARGET = Target(SETTINGS, MODEL)
ASK = Message("user", "Why is the sky blue?")


def answer(body: dict[str, Any], model: str = MODEL) -> Any:
    """What the emulated Bedrock answers, parsed back into the canonical response."""
    parsed = parse_converse_request(model, json.dumps(body).encode(), stream=False)
    wire = json.dumps(converse_body(parsed, build_reply(parsed))).encode()
    return parse_converse_response(wire, Target(SETTINGS, model))


def test_claude_thinks_from_a_budget_and_answers_with_signed_reasoning() -> None:
    chat = ChatRequest(
        model="claude", messages=(ASK,), max_tokens=4000, reasoning=Reasoning(budget_tokens=2000)
    )
    body = build(chat)
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 2000}
    }
    assert body["inferenceConfig"]["maxTokens"] == 4000
    choice = answer(body).choices[0]
    (thought,) = choice.reasoning
    assert "Why is the sky blue?" in thought.text
    assert thought.signature == signature_for(thought.text)
    assert choice.content.startswith("Saw no images")


def test_an_effort_without_max_tokens_makes_room_for_its_budget() -> None:
    body = build(ChatRequest(model="claude", messages=(ASK,), reasoning=Reasoning(effort="low")))
    assert body["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 2048
    assert body["inferenceConfig"]["maxTokens"] == 2048 + 4096


def test_signed_reasoning_goes_back_first_in_the_tool_turn() -> None:
    text = "Light scatters."
    thoughts = (Thought(text, signature_for(text)), Thought(redacted="b3BhcXVl"))
    call = ToolCall("tooluse_1", "lookup", "{}")
    messages = (
        ASK,
        Message("assistant", None, tool_calls=(call,), reasoning=thoughts),
        Message("tool", "ok", tool_call_id="tooluse_1"),
    )
    chat = ChatRequest(
        model="claude", messages=messages, max_tokens=4000, reasoning=Reasoning(budget_tokens=2000)
    )
    body = build(chat)
    assert body["messages"][1]["content"][:2] == [
        {"reasoningContent": {"reasoningText": {"text": text, "signature": signature_for(text)}}},
        {"reasoningContent": {"redactedContent": "b3BhcXVl"}},
    ]
    assert answer(body).choices[0].content
    # A thought changed on the way fails the signature check.
    body["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]["text"] = "Other."
    with pytest.raises(BedrockError, match="signature"):
        answer(body)


def test_temperature_with_thinking_is_refused_as_claude_refuses_it() -> None:
    chat = ChatRequest(
        model="claude",
        messages=(ASK,),
        max_tokens=4000,
        temperature=0.3,
        reasoning=Reasoning(budget_tokens=2000),
    )
    body = json.loads(PROVIDER.build_request(chat, TARGET).body)
    with pytest.raises(BedrockError, match="temperature"):
        answer(body)


def test_nova_gets_its_reasoning_config() -> None:
    nova = Target(SETTINGS, "us.amazon.nova-premier-v1:0")
    chat = ChatRequest(model="nova", messages=(ASK,), reasoning=Reasoning(budget_tokens=9000))
    body = json.loads(PROVIDER.build_request(chat, nova).body)
    assert body["additionalModelRequestFields"] == {
        "reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}
    }
