"""Extended thinking through the gateway: Anthropic's ``thinking`` and OpenAI's reasoning
effort in, thinking back in each client's dialect, signed thoughts round-tripped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import RedactedThinkingBlock, TextBlock, ThinkingBlock

from aperture.emulator.anthropic_thinking import REDACTED_TRIGGER, signature_for
from tests.upstreams import Recorder

THINK: Any = {"type": "enabled", "budget_tokens": 2000}


@pytest.fixture
def claude(gateway_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def ask(text: str = "Why is the sky blue?") -> list[Any]:
    return [{"role": "user", "content": text}]


def test_the_answer_opens_with_a_signed_thinking_block(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-vision", max_tokens=4000, thinking=THINK, messages=ask()
    )
    thinking, text = message.content
    assert isinstance(thinking, ThinkingBlock)
    assert "Why is the sky blue?" in thinking.thinking
    assert thinking.signature == signature_for(thinking.thinking)
    assert isinstance(text, TextBlock)
    assert text.text.startswith("Saw no images")


def test_a_streamed_answer_sends_thinking_and_signature_deltas(
    claude: anthropic.Anthropic,
) -> None:
    with claude.messages.stream(
        model="claude-vision", max_tokens=4000, thinking=THINK, messages=ask()
    ) as stream:
        deltas = [event.delta.type for event in stream if event.type == "content_block_delta"]
        final = stream.get_final_message()
    assert deltas[0] == "thinking_delta"
    assert "signature_delta" in deltas
    assert deltas[-1] == "text_delta"
    thinking = final.content[0]
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.signature == signature_for(thinking.thinking)
    assert isinstance(final.content[1], TextBlock)


def test_signed_thinking_goes_back_with_the_tool_turn_unaltered(
    claude: anthropic.Anthropic, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    first = claude.messages.create(
        model="claude-recorded", max_tokens=4000, thinking=THINK, messages=ask()
    )
    thinking = first.content[0]
    assert isinstance(thinking, ThinkingBlock)
    sent_back = {"type": "thinking", "thinking": thinking.thinking, "signature": thinking.signature}
    tools: Any = [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]
    history: Any = [
        *ask(),
        {
            "role": "assistant",
            "content": [
                sent_back,
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
    ]
    answer = claude.messages.create(
        model="claude-recorded", max_tokens=4000, thinking=THINK, tools=tools, messages=history
    )
    assert answer.stop_reason == "end_turn"
    received = json.loads(rec.bodies[-1])
    assert received["messages"][1]["content"][0] == sent_back
    assert received["thinking"] == THINK
    # An altered thought fails Anthropic's signature check, as it would in production.
    history[1]["content"][0] = {**sent_back, "thinking": "Something else."}
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(
            model="claude-recorded", max_tokens=4000, thinking=THINK, tools=tools, messages=history
        )


def test_redacted_thinking_comes_back_and_round_trips(claude: anthropic.Anthropic) -> None:
    first = claude.messages.create(
        model="claude-vision", max_tokens=4000, thinking=THINK, messages=ask(REDACTED_TRIGGER)
    )
    redacted = first.content[0]
    assert isinstance(redacted, RedactedThinkingBlock)
    assert redacted.data
    history: Any = [
        *ask(REDACTED_TRIGGER),
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": redacted.data}]},
        *ask("And at sunset?"),
    ]
    again = claude.messages.create(
        model="claude-vision", max_tokens=4000, thinking=THINK, messages=history
    )
    assert isinstance(again.content[-1], TextBlock)


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 500}}, "budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 8000}}, "max_tokens"),
        # This SDK no longer types ``temperature``; clients still send it.
        ({"thinking": THINK, "extra_body": {"temperature": 0.2}}, "temperature"),
    ],
)
def test_what_anthropic_refuses_with_thinking_is_refused(
    claude: anthropic.Anthropic, fields: dict[str, Any], said: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(model="claude-vision", max_tokens=4000, messages=ask(), **fields)
    assert said in str(refused.value)


def test_thinking_for_a_model_that_cannot_think_is_refused_at_thinking(
    claude: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(model="claude-text", max_tokens=4000, thinking=THINK, messages=ask())
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["error"]["code"] == "unsupported_capability"
    assert body["error"]["message"].startswith("thinking:")
    # Disabled thinking asks nothing of the model.
    claude.messages.create(
        model="claude-text", max_tokens=100, thinking={"type": "disabled"}, messages=ask()
    )


def test_reasoning_effort_becomes_thinking_and_comes_back_as_reasoning_content(
    client: openai.OpenAI, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    completion = client.chat.completions.create(
        model="claude-recorded",
        reasoning_effort="low",
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
    )
    received = json.loads(rec.bodies[-1])
    assert received["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert received["max_tokens"] == 2048 + 4096
    message = completion.choices[0].message
    reasoning = getattr(message, "reasoning_content", None)
    assert isinstance(reasoning, str)
    assert "Why is the sky blue?" in reasoning
    assert message.content is not None
    assert message.content.startswith("Saw no images")


def test_a_streamed_chat_completion_carries_reasoning_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="claude-vision",
        reasoning_effort="medium",
        stream=True,
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
    )
    reasoning, content = [], []
    for chunk in stream:
        for choice in chunk.choices:
            piece = getattr(choice.delta, "reasoning_content", None)
            if piece:
                reasoning.append(piece)
            if choice.delta.content:
                content.append(choice.delta.content)
    assert "Why is the sky blue?" in "".join(reasoning)
    assert "".join(content).startswith("Saw no images")


def test_responses_reasoning_items_carry_the_summary_and_continue_signed(
    client: openai.OpenAI, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    response = client.responses.create(
        model="claude-recorded", input="Why is the sky blue?", reasoning={"effort": "low"}
    )
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    summary = reasoning.summary[0].text
    assert "Why is the sky blue?" in summary
    assert reasoning.encrypted_content == signature_for(summary)
    assert response.output_text.startswith("Saw no images")
    # The item sent back reaches Anthropic as the signed thinking block it came from.
    client.responses.create(
        model="claude-recorded",
        reasoning={"effort": "low"},
        input=[
            {"role": "user", "content": "Why is the sky blue?"},
            reasoning.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "assistant", "content": response.output_text},
            {"role": "user", "content": "And at sunset?"},
        ],
    )
    turn = json.loads(rec.bodies[-1])["messages"][1]["content"]
    assert turn[0] == {"type": "thinking", "thinking": summary, "signature": signature_for(summary)}


def test_a_responses_stream_has_the_reasoning_summary_events(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="claude-vision", input="Why is the sky blue?", reasoning={"effort": "low"}
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds.index("response.reasoning_summary_part.added") < kinds.index(
        "response.reasoning_summary_text.delta"
    )
    assert "response.reasoning_summary_text.done" in kinds
    assert "response.reasoning_summary_part.done" in kinds
    reasoning = final.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.encrypted_content == signature_for(reasoning.summary[0].text)
    assert final.output_text.startswith("Saw no images")


def test_gemini_thinks_from_a_budget_and_its_signature_survives_the_tool_turn(
    claude: anthropic.Anthropic,
) -> None:
    tools: Any = [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]
    first = claude.messages.create(
        model="gemini-vision",
        max_tokens=4000,
        thinking=THINK,
        tools=tools,
        tool_choice={"type": "any"},
        messages=ask(),
    )
    thinking, use = first.content
    assert isinstance(thinking, ThinkingBlock)
    assert "Why is the sky blue?" in thinking.thinking
    assert thinking.signature
    assert use.type == "tool_use"

    def turn(signature: str) -> Any:
        block = {"type": "thinking", "thinking": thinking.thinking, "signature": signature}
        return [
            *ask(),
            {"role": "assistant", "content": [block, use.model_dump(exclude_none=True)]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "ok"}],
            },
        ]

    again = claude.messages.create(
        model="gemini-vision",
        max_tokens=4000,
        thinking=THINK,
        tools=tools,
        messages=turn(thinking.signature),
    )
    assert isinstance(again.content[-1], TextBlock)
    # Gemini checks the signature it gave that call: proof the gateway sent it back.
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(
            model="gemini-vision",
            max_tokens=4000,
            thinking=THINK,
            tools=tools,
            messages=turn("dGFtcGVyZWQ="),
        )


def test_gemini_thoughts_reach_a_chat_completions_client(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gemini-vision",
        reasoning_effort="low",
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
    )
    message = completion.choices[0].message
    assert "Why is the sky blue?" in getattr(message, "reasoning_content", "")
    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens
