"""``POST /v1/messages/count_tokens``: Anthropic's own count for Anthropic targets, the
gateway's estimate (images included) for the rest, said so in a header."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from aperture.emulator.anthropic_request import parse_messages_request
from tests import sample_images
from tests.upstreams import Recorder

PNG = sample_images.png(300, 200)
B64 = sample_images.data_uri(PNG, "image/png").split(",", 1)[1]
IMAGE: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}}
MESSAGES: Any = [
    {"role": "user", "content": [IMAGE, {"type": "text", "text": "What is in this picture?"}]}
]
TOOLS: Any = [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]


@pytest.fixture
def claude(gateway_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_anthropic_counts_for_an_anthropic_target(
    claude: anthropic.Anthropic, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    raw = claude.messages.with_raw_response.count_tokens(
        model="claude-recorded",
        system="Be brief.",
        messages=MESSAGES,
        tools=TOOLS,
        thinking={"type": "enabled", "budget_tokens": 2000},
    )
    assert raw.headers["x-aperture-token-count"] == "provider"
    assert raw.headers["x-aperture-provider"] == "claude-recorded"
    counted = raw.parse()
    sent = json.loads(rec.bodies[-1])
    assert set(sent) == {"model", "system", "messages", "tools", "thinking"}
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    # Exactly the emulated Anthropic's own count of what it was sent (text and image).
    as_messages = json.dumps({**sent, "max_tokens": 4000}).encode()
    assert counted.input_tokens == parse_messages_request(as_messages).prompt_tokens
    assert counted.input_tokens > 50  # the image's tokens are in it


def test_other_kinds_get_the_gateways_estimate_with_image_tokens(
    claude: anthropic.Anthropic,
) -> None:
    text_only: Any = [{"role": "user", "content": "What is in this picture?"}]
    plain = claude.messages.with_raw_response.count_tokens(model="demo-vision", messages=text_only)
    assert plain.headers["x-aperture-token-count"] == "estimate"
    with_image = claude.messages.with_raw_response.count_tokens(
        model="demo-vision", messages=MESSAGES
    )
    assert with_image.headers["x-aperture-token-count"] == "estimate"
    # OpenAI's tile rule for a 300x200 image at auto detail: 85 + 170 per 512 px tile.
    assert with_image.parse().input_tokens - plain.parse().input_tokens == 85 + 170


def test_the_same_checks_as_a_messages_request(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="no-such-model", messages=MESSAGES)
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.count_tokens(model="demo-text", messages=MESSAGES)
    assert "unsupported_capability" in str(refused.value.body)
