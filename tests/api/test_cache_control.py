"""``cache_control`` through the gateway: what a Messages client marks reaches Anthropic
exactly where it was sent, as the official SDK's own request type describes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pydantic
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

from tests import sample_images
from tests.upstreams import Recorder

PNG = sample_images.png(30, 20)
EPHEMERAL: dict[str, Any] = {"type": "ephemeral"}
HOUR: dict[str, Any] = {"type": "ephemeral", "ttl": "1h"}


@pytest.fixture
def claude(gateway_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_cache_breakpoints_reach_anthropic_where_they_were_sent(
    claude: anthropic.Anthropic, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    data = sample_images.data_uri(PNG, "image/png").split(",", 1)[1]
    claude.messages.create(
        model="claude-recorded",
        max_tokens=100,
        system=[
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "A long shared preamble.", "cache_control": HOUR},
        ],
        tools=[
            {
                "name": "lookup",
                "description": "Look a word up.",
                "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
                "cache_control": EPHEMERAL,
            }
        ],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": data},
                        "cache_control": EPHEMERAL,
                    },
                    {"type": "text", "text": "What is this?", "cache_control": EPHEMERAL},
                    {"type": "text", "text": "Answer briefly."},
                ],
            }
        ],
    )
    sent = json.loads(rec.bodies[-1])
    # The Anthropic SDK's own description of a request accepts what was sent upstream.
    pydantic.TypeAdapter(MessageCreateParamsNonStreaming).validate_python(sent)
    # A system list carrying a breakpoint stays a list, each block as it was.
    assert sent["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "A long shared preamble.", "cache_control": HOUR},
    ]
    assert sent["tools"][0]["cache_control"] == EPHEMERAL
    image, marked, plain = sent["messages"][0]["content"]
    assert image["cache_control"] == EPHEMERAL
    assert marked == {"type": "text", "text": "What is this?", "cache_control": EPHEMERAL}
    assert "cache_control" not in plain


def test_a_system_list_without_breakpoints_is_still_one_string(
    claude: anthropic.Anthropic, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    claude.messages.create(
        model="claude-recorded",
        max_tokens=50,
        system=[{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
        messages=[{"role": "user", "content": "Hi"}],
    )
    sent = json.loads(rec.bodies[-1])
    assert sent["system"] == "One.\n\nTwo."


def test_a_malformed_cache_control_is_refused_at_its_path(
    claude: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(
            model="claude-recorded",
            max_tokens=50,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "Hi",
                            "cache_control": {"type": "forever"},  # type: ignore[typeddict-item]
                        }
                    ],
                }
            ],
        )
    assert "cache_control" in str(refused.value)
