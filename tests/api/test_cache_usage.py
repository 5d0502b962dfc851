"""Prompt-cache usage through the gateway: what Anthropic reports read and written reaches
Messages clients as it was (the OpenAI shapes' ``cached_tokens``: tests/dialects)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from aperture.emulator.anthropic_cache import MIN_CACHED_TOKENS
from tests.upstreams import Recorder

EPHEMERAL: Any = {"type": "ephemeral"}
# Two cacheable prefixes: each over Anthropic's minimum (four characters a token).
PREAMBLE = "A long shared preamble. " * (MIN_CACHED_TOKENS // 5)
HISTORY = "An earlier turn of the conversation. " * (MIN_CACHED_TOKENS // 8)


@pytest.fixture
def claude(gateway_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def conversation() -> Any:
    return [
        {"role": "user", "content": [{"type": "text", "text": HISTORY}]},
        {"role": "assistant", "content": "Noted."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Now summarise.", "cache_control": EPHEMERAL}],
        },
    ]


def test_messages_clients_see_cache_reads_and_writes(claude: anthropic.Anthropic) -> None:
    system: Any = [{"type": "text", "text": PREAMBLE, "cache_control": EPHEMERAL}]
    first = claude.messages.create(
        model="claude-vision",
        max_tokens=100,
        system=system,
        messages=[{"role": "user", "content": "Hello"}],
    )
    # One breakpoint: the emulated Anthropic writes the prefix, as on a first request.
    assert first.usage.cache_creation_input_tokens is not None
    assert first.usage.cache_creation_input_tokens >= MIN_CACHED_TOKENS
    assert first.usage.cache_read_input_tokens == 0
    later = claude.messages.create(
        model="claude-vision", max_tokens=100, system=system, messages=conversation()
    )
    # Two: the earlier prefix is read, what follows it up to the last breakpoint written.
    assert later.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert later.usage.cache_creation_input_tokens
    assert later.usage.input_tokens < later.usage.cache_creation_input_tokens


def test_streamed_messages_carry_the_cache_usage(claude: anthropic.Anthropic) -> None:
    system: Any = [{"type": "text", "text": PREAMBLE, "cache_control": EPHEMERAL}]
    with claude.messages.stream(
        model="claude-vision", max_tokens=100, system=system, messages=conversation()
    ) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens
    assert final.usage.cache_creation_input_tokens


def test_automatic_caching_reaches_anthropic_as_the_top_level_field(
    claude: anthropic.Anthropic, recorder: tuple[Recorder, str]
) -> None:
    rec, _ = recorder
    message = claude.messages.create(
        model="claude-recorded",
        max_tokens=100,
        cache_control=EPHEMERAL,
        system=PREAMBLE,
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert json.loads(rec.bodies[-1])["cache_control"] == EPHEMERAL
    # The breakpoint is after the last block: the whole prompt is written.
    assert message.usage.cache_creation_input_tokens
    assert message.usage.input_tokens == 0
