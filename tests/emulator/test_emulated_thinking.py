"""The emulators judge thinking and prompt caching as the real APIs do."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aperture.emulator.anthropic_cache import MIN_CACHED_TOKENS, cache_split
from aperture.emulator.anthropic_errors import AnthropicError
from aperture.emulator.anthropic_request import parse_messages_request
from aperture.emulator.gemini_errors import GoogleError
from aperture.emulator.gemini_thinking import Thinking, read_thinking

ASK: Any = [{"role": "user", "content": "Hi"}]


def anthropic(**fields: Any) -> bytes:
    return json.dumps({"model": "claude-sonnet-4-5", "messages": ASK, **fields}).encode()


def test_cache_reads_all_but_the_last_breakpoint_and_writes_the_rest() -> None:
    assert cache_split([]) == (0, 0)
    assert cache_split([MIN_CACHED_TOKENS - 1]) == (0, 0)  # too short to cache
    assert cache_split([2000]) == (2000, 0)
    assert cache_split([1500, 4000]) == (2500, 1500)
    assert cache_split([500, 4000]) == (4000, 0)  # the earlier prefix is too short to read
    with pytest.raises(AnthropicError, match="A maximum of 4 blocks"):
        cache_split([1, 2, 3, 4, 5])


def test_count_tokens_takes_no_max_tokens_and_counts_what_messages_would() -> None:
    counted = parse_messages_request(anthropic(), counting=True)
    assert counted.prompt_tokens == parse_messages_request(anthropic(max_tokens=9)).prompt_tokens
    with pytest.raises(AnthropicError, match="max_tokens: Extra inputs"):
        parse_messages_request(anthropic(max_tokens=9), counting=True)


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"thinking": {"type": "enabled"}}, "budget_tokens: Field required"),
        ({"thinking": {"type": "sometimes"}}, "thinking"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}, "top_k": 5}, "top_k"),
        (
            {
                "thinking": {"type": "enabled", "budget_tokens": 2000},
                "tools": [{"name": "t", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "any"},
            },
            "forces tool use",
        ),
    ],
)
def test_anthropic_refuses_thinking_it_cannot_do(fields: dict[str, Any], said: str) -> None:
    with pytest.raises(AnthropicError, match=said):
        parse_messages_request(anthropic(max_tokens=4000, **fields))


def test_models_before_claude_3_7_cannot_think() -> None:
    body = json.loads(anthropic(max_tokens=4000, thinking={"type": "adaptive"}))
    body["model"] = "claude-3-5-haiku-latest"
    with pytest.raises(AnthropicError, match="does not support thinking"):
        parse_messages_request(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("config", "model", "said"),
    [
        ({"thinkingBudget": 0}, "gemini-2.5-pro", "only works in thinking mode"),
        ({"thinkingBudget": 50000}, "gemini-2.5-flash", "between 0 and 24576"),
        ({"thinkingBudget": 64}, "gemini-2.5-pro", "between 128 and 32768"),
        ({"includeThoughts": True}, "gemini-2.0-flash", "not supported for this model"),
    ],
)
def test_gemini_judges_thinking_config_per_model(
    config: dict[str, Any], model: str, said: str
) -> None:
    with pytest.raises(GoogleError, match=said):
        read_thinking(config, model)


def test_gemini_thinks_when_asked_and_may_turn_it_off() -> None:
    assert read_thinking({"thinkingBudget": -1, "includeThoughts": True}, "gemini-3-pro") == (
        Thinking(on=True, include_thoughts=True)
    )
    assert read_thinking({"thinkingBudget": 0}, "gemini-2.5-flash") == Thinking(on=False)
    assert read_thinking(None, "gemini-2.5-flash") == Thinking()
