"""The official OpenAI SDK parses the emulator's answers, streams and errors."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import openai
import pytest
from PIL import Image
from starlette.testclient import TestClient

from aperture.emulator import create_emulator_app

EXPECTED = (
    "Saw 2 images: #1 image/png 64x32 detail=high, #2 url image from example.com detail=low. "
    'Asked: "What is this?"'
)


@pytest.fixture
def sdk() -> Iterator[openai.OpenAI]:
    with TestClient(create_emulator_app()) as http_client:
        client = openai.OpenAI(
            base_url="http://testserver/openai/v1",
            api_key="x",
            http_client=http_client,
            max_retries=0,
        )
        yield client
        client.close()


def _png_uri(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 10)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _messages() -> list[openai.types.chat.ChatCompletionMessageParam]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": _png_uri(64, 32), "detail": "high"}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/a.jpg", "detail": "low"},
                },
            ],
        }
    ]


def test_sdk_parses_a_completion(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model="emulator-vision", messages=_messages())
    assert completion.choices[0].message.content == EXPECTED
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.image_tokens == 255 + 85
    assert completion.usage.prompt_tokens == 4 + 255 + 85
    assert completion.usage.completion_tokens == len(EXPECTED.split())


def test_sdk_stream_matches_the_completion(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="emulator-vision",
        messages=_messages(),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == EXPECTED
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 4 + 255 + 85 + len(EXPECTED.split())


def test_sdk_reads_a_streamed_tool_call(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="emulator-vision",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        tool_choice="required",
        stream=True,
    )
    name, arguments = "", ""
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.index == 0
            if call.function is not None:
                name += call.function.name or ""
                arguments += call.function.arguments or ""
    assert name == "get_weather"
    assert json.loads(arguments) == {"text": "Weather in Oslo?"}


def test_sdk_raises_bad_request_with_code(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="emulator-text", messages=_messages())
    assert caught.value.param == "messages.[0].content.[1].type"
    assert caught.value.code is None


def test_sdk_raises_rate_limit_and_quota(sdk: openai.OpenAI) -> None:
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "hi"}
    ]
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(
            model="emulator-vision",
            messages=messages,
            extra_headers={"x-emulator-fault": "status=429"},
        )
    assert caught.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(
            model="emulator-vision", messages=messages, extra_headers={"x-emulator-fault": "quota"}
        )
    assert caught.value.code == "insufficient_quota"
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(
            model="emulator-vision",
            messages=messages,
            extra_headers={"x-emulator-fault": "status=503"},
        )


def test_sdk_raises_on_a_midstream_error(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="emulator-vision",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers={"x-emulator-fault": "midstream"},
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="The server had an error"):
        seen.extend(chunk.choices[0].delta.content or "" for chunk in stream)
    assert seen == ["", "Saw", " no"]


def test_sdk_lists_models(sdk: openai.OpenAI) -> None:
    assert [model.id for model in sdk.models.list()] == ["emulator-vision", "emulator-text"]
