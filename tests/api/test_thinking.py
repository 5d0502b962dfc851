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


def test_openai_reasoning_models_get_reasoning_effort_from_either_dialect(
    client: openai.OpenAI, claude: anthropic.Anthropic, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    completion = client.chat.completions.create(
        model="reasoner",
        reasoning_effort="high",
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
    )
    assert json.loads(rec.bodies[-1])["reasoning_effort"] == "high"
    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 64
    # A Messages budget becomes the effort it reaches (8192 <= 9000 < 16384: medium).
    claude.messages.create(
        model="reasoner",
        max_tokens=12000,
        thinking={"type": "enabled", "budget_tokens": 9000},
        messages=ask(),
    )
    sent = json.loads(rec.bodies[-1])
    assert sent["reasoning_effort"] == "medium"
    assert "thinking" not in sent


def test_a_model_configured_without_reasoning_refuses_reasoning_effort(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="demo-vision",
            reasoning_effort="low",
            messages=[{"role": "user", "content": "Hi"}],
        )
    body = refused.value.body
    assert isinstance(body, dict)
    assert (body["code"], body["param"]) == ("unsupported_capability", "reasoning_effort")


def test_a_streamed_gemini_answer_brings_its_thoughts_and_signature(
    claude: anthropic.Anthropic,
) -> None:
    with claude.messages.stream(
        model="gemini-vision", max_tokens=4000, thinking=THINK, messages=ask()
    ) as stream:
        final = stream.get_final_message()
    thoughts = [block for block in final.content if isinstance(block, ThinkingBlock)]
    assert "Why is the sky blue?" in thoughts[0].thinking
    # Gemini signs the answer's last part: its signature arrives after the text.
    assert any(block.signature for block in thoughts)
    assert any(isinstance(block, TextBlock) for block in final.content)


def test_gemini_refuses_a_budget_outside_its_range(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(
            model="gemini-vision",
            max_tokens=8000,
            thinking={"type": "enabled", "budget_tokens": 30000},
            messages=ask(),
        )
    assert "thinking budget" in str(refused.value)


def test_a_chat_completions_tool_loop_keeps_the_signed_reasoning(client: openai.OpenAI) -> None:
    tools: Any = [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    ]
    question: Any = {"role": "user", "content": "Why is the sky blue?"}
    first = client.chat.completions.create(
        model="gemini-vision",
        reasoning_effort="low",
        tools=tools,
        tool_choice="required",
        messages=[question],
    )
    message = first.choices[0].message
    assert message.tool_calls
    details = (message.model_extra or {})["reasoning_details"]
    assert details[0]["type"] == "reasoning.text"
    assert details[0]["signature"]
    # The assistant message goes back as it came, its reasoning_details with it.
    turn = message.model_dump(exclude_none=True)
    result: Any = {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "ok"}
    again = client.chat.completions.create(
        model="gemini-vision",
        reasoning_effort="low",
        tools=tools,
        messages=[question, turn, result],
    )
    assert again.choices[0].message.content
    # Gemini checks the signature it gave that call: a changed one is refused.
    turn["reasoning_details"] = [{**details[0], "signature": "dGFtcGVyZWQ="}]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gemini-vision",
            reasoning_effort="low",
            tools=tools,
            messages=[question, turn, result],
        )


def test_a_streamed_chat_completion_ends_each_signed_thought_with_its_details(
    client: openai.OpenAI,
) -> None:
    stream = client.chat.completions.create(
        model="claude-vision",
        reasoning_effort="low",
        stream=True,
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
    )
    text, details = [], []
    for chunk in stream:
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            text.append(extra.get("reasoning_content") or "")
            details += extra.get("reasoning_details") or []
    thought = "".join(text)
    # One item, whole: what the client sends back with the next turn.
    assert details == [
        {
            "type": "reasoning.text",
            "text": thought,
            "signature": signature_for(thought),
            "index": 0,
        }
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_a_redacted_thought_round_trips_through_responses(
    client: openai.OpenAI, recorder: tuple[Recorder, str], stream: bool
) -> None:
    rec, _ = recorder
    if stream:
        with client.responses.stream(
            model="claude-recorded", input=REDACTED_TRIGGER, reasoning={"effort": "low"}
        ) as events:
            response = events.get_final_response()
    else:
        response = client.responses.create(
            model="claude-recorded", input=REDACTED_TRIGGER, reasoning={"effort": "low"}
        )
    sealed = response.output[0]
    assert sealed.type == "reasoning"
    assert sealed.summary == []
    assert sealed.encrypted_content is not None
    data = sealed.encrypted_content.removeprefix("redacted_thinking:")
    client.responses.create(
        model="claude-recorded",
        reasoning={"effort": "low"},
        input=[
            {"role": "user", "content": REDACTED_TRIGGER},
            sealed.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "assistant", "content": response.output_text},
            {"role": "user", "content": "And at sunset?"},
        ],
    )
    turn = json.loads(rec.bodies[-1])["messages"][1]["content"]
    assert turn[0] == {"type": "redacted_thinking", "data": data}
