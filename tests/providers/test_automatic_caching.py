"""Automatic prompt caching (Anthropic's top-level ``cache_control``) per provider kind:
Anthropic gets the field, Bedrock a ``cachePoint`` after the last block."""

from __future__ import annotations

import json

from aperture.model import CacheMark, ChatRequest, Message
from aperture.providers.anthropic import AnthropicProvider
from tests.providers.test_anthropic_thinking import TARGET as CLAUDE
from tests.providers.test_bedrock_provider import build as build_converse

CHAT = ChatRequest(
    model="m",
    messages=(Message("system", "Be brief."), Message("user", "Hello")),
    cache=CacheMark(ttl="1h"),
)


def test_anthropic_gets_the_top_level_field_as_sent() -> None:
    body = json.loads(AnthropicProvider().build_request(CHAT, CLAUDE).body)
    assert body["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_bedrock_gets_a_cache_point_after_the_last_block() -> None:
    body = build_converse(CHAT)  # botocore's validator and the emulator accept it
    assert body["messages"][-1]["content"] == [
        {"text": "Hello"},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
    ]
