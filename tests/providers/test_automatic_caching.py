"""Automatic prompt caching (Anthropic's top-level ``cache_control``) per provider kind:
Anthropic gets the field, Bedrock a ``cachePoint`` after the last block."""

from __future__ import annotations

import json

from aperture.model import CacheMark, ChatRequest, Message, Text
from aperture.providers.anthropic import AnthropicProvider
from tests.providers.test_anthropic_thinking import TARGET as CLAUDE
from tests.providers.test_bedrock_provider import build as build_converse
from tests.providers.test_bedrock_thinking import answer

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


def test_bedrock_reports_cache_reads_and_writes_for_its_cache_points() -> None:
    long = "A long shared preamble. " * 300  # over the 1024-token minimum
    chat = ChatRequest(
        model="m",
        messages=(
            Message("system", (Text(long, CacheMark()),)),
            Message("user", (Text(long + " And now?", CacheMark()),)),
        ),
    )
    usage = answer(build_converse(chat)).usage
    assert usage is not None
    assert usage.cached_tokens == 1800  # the system prefix, read
    assert usage.cache_creation_tokens == 1803  # the turn after it, written
    assert usage.prompt_tokens == 1800 + 1803
