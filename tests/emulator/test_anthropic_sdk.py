"""The official Anthropic SDK parses the emulator's messages, streams and errors."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam, ToolParam
from PIL import Image
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator import anthropic as emulator

EXPECTED = (
    "Saw 2 images: #1 image/jpeg 64x48 detail=auto, #2 url image from example.com detail=auto. "
    'Asked: "What is this?"'
)
TOOLS: list[ToolParam] = [
    {
        "name": "echo",
        "description": "Echo the question.",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    }
]


@pytest.fixture
def http() -> Iterator[TestClient]:
    app = Starlette(routes=[Mount("/anthropic", routes=emulator.routes())])
    with TestClient(app) as client:
        yield client


@pytest.fixture
def sdk(http: TestClient) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        base_url="http://testserver/anthropic", api_key="x", http_client=http, max_retries=0
    )
    yield client
    client.close()


def _jpeg_b64(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 10)).save(buffer, "JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def _messages() -> list[MessageParam]:
    return [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/jpeg",
                        "data": _jpeg_b64(64, 48),
                    },
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]


def test_sdk_parses_a_message(sdk: anthropic.Anthropic) -> None:
    message = sdk.messages.create(model="emulator-vision", max_tokens=200, messages=_messages())
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "emulator-vision"
    (block,) = message.content
    assert isinstance(block, anthropic.types.TextBlock)
    assert block.text == EXPECTED
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 4 + 6 + 85
    assert message.usage.output_tokens == len(EXPECTED.split())


def test_raw_body_validates_as_a_message(http: TestClient) -> None:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    payload: dict[str, Any] = {
        "model": "emulator-vision",
        "max_tokens": 200,
        "messages": _messages(),
    }
    for extra in ({}, {"tools": TOOLS, "tool_choice": {"type": "any"}}, {"max_tokens": 0}):
        response = http.post("/anthropic/v1/messages", json={**payload, **extra}, headers=headers)
        assert response.status_code == 200
        message = anthropic.types.Message.model_validate(response.json(), strict=False)
        assert message.id.startswith("msg_")


def test_sdk_stream_helper_matches_the_message(sdk: anthropic.Anthropic) -> None:
    created = sdk.messages.create(model="emulator-vision", max_tokens=200, messages=_messages())
    with sdk.messages.stream(
        model="emulator-vision", max_tokens=200, messages=_messages()
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == EXPECTED
    assert [b.model_dump(include={"type", "text"}) for b in final.content] == [
        b.model_dump(include={"type", "text"}) for b in created.content
    ]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == created.usage.input_tokens
    assert final.usage.output_tokens == created.usage.output_tokens


def test_sdk_raw_stream_event_types(sdk: anthropic.Anthropic) -> None:
    stream = sdk.messages.create(
        model="emulator-vision", max_tokens=200, messages=_messages(), stream=True
    )
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "ping" not in kinds  # the SDK skips pings
    start = events[0]
    assert isinstance(start, anthropic.types.RawMessageStartEvent)
    assert start.message.usage.input_tokens == 95
    delta = events[-2]
    assert isinstance(delta, anthropic.types.RawMessageDeltaEvent)
    assert delta.delta.stop_reason == "end_turn"


def test_sdk_streams_tool_use(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(
        model="emulator-vision",
        max_tokens=200,
        messages=_messages(),
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "echo"},
    ) as stream:
        final = stream.get_final_message()
    (block,) = final.content
    assert isinstance(block, anthropic.types.ToolUseBlock)
    assert block.name == "echo"
    assert block.input == {"text": "What is this?"}
    assert final.stop_reason == "tool_use"


def test_sdk_tool_round_trip(sdk: anthropic.Anthropic) -> None:
    first = sdk.messages.create(
        model="emulator-vision",
        max_tokens=200,
        messages=_messages(),
        tools=TOOLS,
        tool_choice={"type": "any"},
    )
    (use,) = first.content
    assert isinstance(use, anthropic.types.ToolUseBlock)
    follow_up: list[MessageParam] = [
        *_messages(),
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "echoed"},
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]
    second = sdk.messages.create(
        model="emulator-vision", max_tokens=200, messages=follow_up, tools=TOOLS
    )
    block = second.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    assert block.text.endswith('Asked: "Thanks"')


def test_sdk_stop_sequences(sdk: anthropic.Anthropic) -> None:
    message = sdk.messages.create(
        model="emulator-vision",
        max_tokens=200,
        messages=_messages(),
        stop_sequences=["Asked:"],
    )
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "Asked:"


@pytest.mark.parametrize(
    ("fault", "error_class", "status"),
    [
        ("status=429", anthropic.RateLimitError, 429),
        ("status=529", anthropic.OverloadedError, 529),
        ("status=500", anthropic.InternalServerError, 500),
        ("status=401", anthropic.AuthenticationError, 401),
        ("quota", anthropic.APIStatusError, 402),
    ],
)
def test_sdk_raises_scripted_faults(
    sdk: anthropic.Anthropic, fault: str, error_class: type[anthropic.APIStatusError], status: int
) -> None:
    with pytest.raises(error_class) as caught:
        sdk.messages.create(
            model="emulator-vision",
            max_tokens=10,
            messages=_messages(),
            extra_headers={"x-emulator-fault": fault},
        )
    assert caught.value.status_code == status
    assert caught.value.request_id is not None
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "1"
    if status == 402:
        assert body["error"]["type"] == "billing_error"


def test_sdk_raises_bad_request_for_a_mismatched_image(sdk: anthropic.Anthropic) -> None:
    messages = _messages()
    content = messages[0]["content"]
    assert isinstance(content, list)
    content[0] = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": _jpeg_b64(8, 8)},
    }
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model="emulator-vision", max_tokens=10, messages=messages)
    assert "Image does not match the provided media type image/png" in str(caught.value)


def test_sdk_raises_the_midstream_error(sdk: anthropic.Anthropic) -> None:
    seen: list[str] = []

    def consume() -> None:
        with sdk.messages.stream(
            model="emulator-vision",
            max_tokens=200,
            messages=_messages(),
            extra_headers={"x-emulator-fault": "midstream"},
        ) as stream:
            seen.extend(stream.text_stream)

    with pytest.raises(anthropic.APIStatusError) as caught:
        consume()
    assert "overloaded_error" in str(caught.value)
    assert "".join(seen) == "Saw 2"
