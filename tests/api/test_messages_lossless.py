"""The issue's test for Messages: a request carrying ``cache_control``, ``thinking`` and a
base64 PDF ``document`` reaches Anthropic with all three as sent, and the answer's signed
thinking comes back."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pydantic
import pytest
from anthropic.types import TextBlock, ThinkingBlock
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

from aperture.emulator.anthropic_thinking import signature_for
from tests.documents.test_intake import make_pdf
from tests.upstreams import Recorder

PDF = base64.b64encode(make_pdf(2)).decode()
EPHEMERAL: Any = {"type": "ephemeral"}
HOUR: Any = {"type": "ephemeral", "ttl": "1h"}
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}


@pytest.fixture
def claude(gateway_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def request() -> dict[str, Any]:
    document = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        "cache_control": EPHEMERAL,
    }
    return {
        "model": "claude-recorded",
        "max_tokens": 8000,
        "thinking": THINKING,
        "system": [{"type": "text", "text": "You read reports.", "cache_control": HOUR}],
        "messages": [
            {
                "role": "user",
                "content": [
                    document,
                    {"type": "text", "text": "What does it say?", "cache_control": EPHEMERAL},
                ],
            }
        ],
    }


def test_cache_control_thinking_and_a_pdf_reach_anthropic_intact(
    claude: anthropic.Anthropic, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    message = claude.messages.create(**request())
    received = json.loads(rec.bodies[-1])
    pydantic.TypeAdapter(MessageCreateParamsNonStreaming).validate_python(received)
    assert received["thinking"] == THINKING
    assert received["max_tokens"] == 8000
    assert received["system"] == [
        {"type": "text", "text": "You read reports.", "cache_control": HOUR}
    ]
    document, question = received["messages"][0]["content"]
    assert document == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        "cache_control": EPHEMERAL,
    }
    assert question == {"type": "text", "text": "What does it say?", "cache_control": EPHEMERAL}
    # The answer opens with the thinking Anthropic signed, signature and all.
    thinking, text = message.content
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.signature == signature_for(thinking.thinking)
    assert isinstance(text, TextBlock)


def test_the_same_request_streamed(claude: anthropic.Anthropic) -> None:
    body = {**request(), "model": "claude-vision"}
    with claude.messages.stream(**body) as stream:
        final = stream.get_final_message()
    thinking = final.content[0]
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.signature == signature_for(thinking.thinking)
    assert isinstance(final.content[1], TextBlock)
