"""Estimates before the call: text at four characters a token plus framing, max_tokens of
output, and image tokens at the dearest of the targets that may serve the request."""

from __future__ import annotations

import json
from typing import Any

from aperture.dialects.openai.inbound import parse_chat_request
from aperture.governance.estimate import (
    DEFAULT_OUTPUT_TOKENS,
    image_tokens,
    output_tokens,
    text_tokens,
)
from aperture.images.tokens import estimate_image_tokens
from aperture.model import ChatRequest, InlineImage, Target
from aperture.routing.catalog import TargetOption
from aperture.settings import ProviderSettings
from aperture.settings.schema import ProviderKind

URL = "https://images.example.com/cat.png"


def chat(*messages: dict[str, Any], **fields: Any) -> ChatRequest:
    body = {"model": "m", "messages": list(messages), **fields}
    request, _ = parse_chat_request(json.dumps(body).encode())
    return request


def user(*content: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(content)}


def image(url: str = URL, detail: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": url}
    if detail is not None:
        spec["detail"] = detail
    return {"type": "image_url", "image_url": spec}


def option(kind: ProviderKind, model: str) -> TargetOption:
    return TargetOption(
        Target(ProviderSettings(name=f"{kind}-p", kind=kind), model), frozenset({"vision"})
    )


def inline(width: int, height: int) -> InlineImage:
    return InlineImage("image/png", width, height, 1000, 1, 22)


def test_text_counts_four_characters_a_token_plus_four_per_message() -> None:
    request = chat({"role": "system", "content": "abcd"}, {"role": "user", "content": "x" * 9})
    # 13 characters -> 4 tokens, and 2 messages of framing.
    assert text_tokens(request) == 4 + 2 * 4


def test_text_counts_text_parts_tool_calls_and_tool_definitions() -> None:
    request = chat(
        user({"type": "text", "text": "hello"}, image()),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        tools=[
            {
                "type": "function",
                "function": {"name": "g", "description": "dd", "parameters": {"type": "object"}},
            }
        ],
    )
    # hello (5) + f{} (3) + g dd (3) + str({'type': 'object'}) (18) = 29 chars -> 8 tokens.
    assert text_tokens(request) == 8 + 2 * 4


def test_images_add_nothing_to_the_text_estimate() -> None:
    with_image = chat(user({"type": "text", "text": "abcd"}, image()))
    without = chat(user({"type": "text", "text": "abcd"}))
    assert text_tokens(with_image) == text_tokens(without) == 1 + 4


def test_output_is_max_tokens_or_the_default() -> None:
    assert output_tokens(chat(user({"type": "text", "text": "hi"}), max_tokens=7)) == 7
    assert output_tokens(chat(user({"type": "text", "text": "hi"}))) == DEFAULT_OUTPUT_TOKENS
    assert DEFAULT_OUTPUT_TOKENS == 4096


def test_a_request_without_images_or_options_has_no_image_tokens() -> None:
    text_only = chat(user({"type": "text", "text": "hi"}))
    assert image_tokens(text_only, {}, [option("openai", "gpt-4o")]) == 0
    assert image_tokens(chat(user(image())), {}, []) == 0


def test_an_unseen_url_image_counts_as_1024_square() -> None:
    request = chat(user({"type": "text", "text": "what is this?"}, image()))
    expected = estimate_image_tokens("openai-tile", 1024, 1024, None, model="gpt-4o")
    assert expected == 765
    assert image_tokens(request, {}, [option("openai", "gpt-4o")]) == expected


def test_a_seen_image_counts_at_its_size() -> None:
    request = chat(user({"type": "text", "text": "what is this?"}, image()))
    seen = {(0, 1): inline(200, 100)}
    expected = estimate_image_tokens("openai-tile", 200, 100, None, model="gpt-4o")
    assert expected == 255
    assert image_tokens(request, seen, [option("openai", "gpt-4o")]) == expected


def test_the_dearest_target_sets_the_estimate() -> None:
    request = chat(user(image()))
    cheap = option("openai", "gpt-4o")
    dear = option("anthropic", "claude-sonnet-4-5")
    on_claude = estimate_image_tokens("anthropic", 1024, 1024, None, model="claude-sonnet-4-5")
    assert on_claude > 765
    assert image_tokens(request, {}, [cheap, dear]) == on_claude
    assert image_tokens(request, {}, [dear, cheap]) == on_claude
    # The mini model counts an image as many more tokens than its big sibling.
    mini = option("openai", "gpt-4o-mini")
    on_mini = estimate_image_tokens("openai-tile", 1024, 1024, None, model="gpt-4o-mini")
    assert image_tokens(request, {}, [cheap, dear, mini]) == on_mini > on_claude


def test_the_images_of_a_request_add_up_per_target() -> None:
    request = chat(
        user(image(), {"type": "text", "text": "and"}, image(detail="low")),
        user(image()),
    )
    seen = {(1, 0): inline(200, 100)}
    gpt4o = option("openai", "gpt-4o")
    # An unseen URL (765), a low-detail one (85) and a seen 200x100 image (255).
    assert image_tokens(request, seen, [gpt4o]) == 765 + 85 + 255
