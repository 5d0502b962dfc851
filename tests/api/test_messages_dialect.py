"""The Anthropic Messages shape in and out, with the official anthropic SDK as the client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests import sample_images
from tests.upstreams import Recorder

JPEG = sample_images.jpeg(64, 48)
B64 = sample_images.data_uri(JPEG, "image/jpeg").split(",", 1)[1]


@pytest.fixture
def claude(gateway_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def image_block(media_type: str = "image/jpeg", data: str = B64) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def test_a_vision_request_in_the_anthropic_shape(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="demo-vision",
        max_tokens=512,
        system="Be brief.",
        messages=[
            {"role": "user", "content": [image_block(), {"type": "text", "text": "Describe."}]}  # type: ignore[list-item]
        ],
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "demo-vision"
    assert message.stop_reason == "end_turn"
    text = message.content[0].text  # type: ignore[union-attr]
    assert text.startswith("Saw 1 image: #1 image/jpeg 64x48")
    assert 'Asked: "Describe."' in text
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0


def test_streaming_has_the_real_event_sequence(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="demo-vision",
        max_tokens=512,
        messages=[{"role": "user", "content": [image_block(), {"type": "text", "text": "Hi"}]}],  # type: ignore[list-item]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert "content_block_start" in kinds
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert final.content[0].text.startswith("Saw 1 image: #1 image/jpeg 64x48")  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0
    assert final.stop_reason == "end_turn"


def test_tools_round_trip_in_the_anthropic_shape(claude: anthropic.Anthropic) -> None:
    tools = [{"name": "describe", "input_schema": {"type": "object", "properties": {}}}]
    message = claude.messages.create(
        model="demo-vision",
        max_tokens=256,
        tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "tool", "name": "describe"},
        messages=[{"role": "user", "content": "Use it"}],
    )
    assert message.stop_reason == "tool_use"
    (call,) = message.content
    assert call.type == "tool_use"
    assert call.name == "describe"
    assert call.input == {"text": "Use it"}

    with claude.messages.stream(
        model="demo-vision",
        max_tokens=256,
        tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Use it"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == {"text": "Use it"}  # type: ignore[union-attr]

    followup = claude.messages.create(
        model="demo-vision",
        max_tokens=256,
        tools=tools,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "Use it"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": call.id, "name": "describe", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "a cat"},
                    {"type": "text", "text": "So?"},
                ],
            },
        ],
    )
    assert 'Asked: "So?"' in followup.content[0].text  # type: ignore[union-attr]


def test_what_an_openai_compatible_provider_receives(
    claude: anthropic.Anthropic, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    claude.messages.create(
        model="recorded-vision",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief."}],
        stop_sequences=["END"],
        messages=[
            {
                "role": "user",
                "content": [image_block("image/png"), {"type": "text", "text": "What?"}],
            }
        ],  # type: ignore[list-item]
    )
    sent = json.loads(rec.bodies[-1])
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    image, text = sent["messages"][1]["content"]
    assert image["image_url"]["url"].startswith("data:image/jpeg;base64,")  # corrected from png
    assert text == {"type": "text", "text": "What?"}
    assert (sent["max_tokens"], sent["stop"]) == (100, ["END"])


def test_errors_come_back_in_the_anthropic_envelope(
    claude: anthropic.Anthropic, gateway_url: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model="demo-text",
            max_tokens=10,
            messages=[{"role": "user", "content": [image_block()]}],  # type: ignore[list-item]
        )
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "unsupported_capability"
    assert body["error"]["message"].startswith("messages[0].content[0]: ")

    response = httpx.post(
        f"{gateway_url}/v1/messages",
        json={
            "model": "demo-vision",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [image_block(data="!!")]}],
        },
    )
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (400, "image_decode_error")
    assert error["message"].startswith("messages[0].content[0].source.data: ")

    response = httpx.post(
        f"{gateway_url}/v1/messages", json={"model": "demo-vision", "messages": []}
    )
    assert response.json()["error"]["message"].startswith("max_tokens: ")

    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


def test_a_mid_stream_error_is_an_anthropic_error_event(gateway_url: str) -> None:
    body = {
        "model": "failing-midstream",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": [image_block(), {"type": "text", "text": "x"}]}],
    }
    with httpx.stream("POST", f"{gateway_url}/v1/messages", json=body) as response:
        lines = list(response.iter_lines())
    assert "event: error" in lines
    assert "message_stop" not in "\n".join(lines)


SCHEMA: Any = {
    "type": "object",
    "properties": {"images": {"type": "integer"}, "asked": {"type": "string"}},
    "required": ["images", "asked"],
    "additionalProperties": False,
}


def test_structured_output_reaches_every_kind(
    claude: anthropic.Anthropic, recorder: tuple[Recorder, str]
) -> None:
    # output_config.format is what the Vercel AI SDK's generateObject sends.
    rec, _ = recorder
    for model in ("claude-recorded", "recorded-vision"):
        message = claude.messages.create(
            model=model,
            max_tokens=100,
            output_config={"format": {"type": "json_schema", "schema": SCHEMA}},
            messages=[{"role": "user", "content": "Hi"}],
        )
        assert json.loads(message.content[0].text) == {"images": 0, "asked": "Hi"}  # type: ignore[union-attr]
        sent = json.loads(rec.bodies[-1])
        assert "output_config" not in sent
        if model == "claude-recorded":  # Anthropic's JSON mode: the schema in the instruction
            assert json.dumps(SCHEMA, separators=(",", ":")) in sent["system"]
        else:
            assert sent["response_format"] == {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": SCHEMA},
            }
