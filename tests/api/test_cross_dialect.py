"""Any model from either dialect: OpenAI-shaped to Claude, Anthropic-shaped to OpenAI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests import sample_images
from tests.upstreams import Recorder

PNG = sample_images.png(30, 20)
JPEG_URI = sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg")


@pytest.fixture
def claude(gateway_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_openai_shape_to_a_claude_model(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare."},
                {"type": "image_url", "image_url": {"url": JPEG_URI}},
                {
                    "type": "image_url",
                    "image_url": {"url": sample_images.data_uri(PNG, "image/png")},
                },
            ],
        },
    ]
    raw = client.chat.completions.with_raw_response.create(
        model="claude-vision",
        messages=messages,
        max_tokens=300,  # type: ignore[arg-type]
    )
    completion = raw.parse()
    text = completion.choices[0].message.content or ""
    assert text.startswith("Saw 2 images: #1 image/jpeg 64x48")
    assert "#2 image/png 30x20" in text
    assert raw.headers["x-aperture-provider"] == "claude-emu"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0

    chunks = list(
        client.chat.completions.create(
            model="claude-vision",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].usage is not None


def test_openai_tools_to_a_claude_model(client: openai.OpenAI) -> None:
    tools = [
        {"type": "function", "function": {"name": "describe", "parameters": {"type": "object"}}}
    ]
    completion = client.chat.completions.create(
        model="claude-vision",
        messages=[{"role": "user", "content": "Use it"}],
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
    )
    (call,) = completion.choices[0].message.tool_calls or []
    assert completion.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"text": "Use it"}  # type: ignore[union-attr]


def test_anthropic_shape_to_an_openai_model(claude: anthropic.Anthropic) -> None:
    data = JPEG_URI.split(",", 1)[1]
    message = claude.messages.create(
        model="demo-vision",
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": data},
                    },
                    {"type": "text", "text": "What?"},
                ],
            }
        ],
    )
    assert message.content[0].text.startswith("Saw 1 image: #1 image/jpeg 64x48")  # type: ignore[union-attr]


def test_anthropic_shape_to_a_claude_model_keeps_the_image_as_base64(
    claude: anthropic.Anthropic, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    data = sample_images.data_uri(PNG, "image/png").split(",", 1)[1]
    message = claude.messages.create(
        model="claude-recorded",
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": data},
                    },
                    {"type": "text", "text": "What?"},
                ],
            }
        ],
    )
    assert "#1 image/png 30x20" in message.content[0].text  # type: ignore[union-attr]
    sent = json.loads(rec.bodies[-1])
    image = sent["messages"][0]["content"][0]
    assert image == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": data},
    }
    assert rec.headers[-1]["x-api-key"] == "rec"


def test_a_text_only_claude_gets_no_image(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="claude-text",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": JPEG_URI}}]}
            ],
        )
    assert caught.value.code == "unsupported_capability"
