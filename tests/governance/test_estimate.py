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
from aperture.images.tokens import estimate_image_tokens, token_family
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


def test_documents_cost_pages_times_the_provider_rule() -> None:
    from aperture.governance.estimate import document_tokens, page_long_edge
    from aperture.images.limits import limits_for

    letter = ((612.0, 792.0),) * 3

    def native(kind: str, model: str) -> int:
        target = Target(ProviderSettings(name=kind, kind=kind), model)
        limits = limits_for(kind)
        return document_tokens(
            "native", target, letter, limits, image_count=3, max_pixels=4_200_000
        )

    # Gemini states a flat figure a page: 258, and 560 at Gemini 3's default resolution.
    assert native("gemini", "gemini-2.5-flash") == 3 * 258
    assert native("gemini", "gemini-3-pro-preview") == 3 * 560
    # Bedrock's Converse reads the text only; Claude the page image and the text.
    assert native("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0") == 3 * 1500
    limits = limits_for("anthropic")
    edge = page_long_edge(limits, 3)
    assert edge == 1568
    page = estimate_image_tokens(token_family("anthropic", "claude-sonnet-4-5"), 1212, 1568)
    assert native("anthropic", "claude-sonnet-4-5") == 3 * (page + 1500)

    openai = Target(ProviderSettings(name="o", kind="openai"), "gpt-4o")
    # Rendered for a vision model: the pages as the images the gateway draws (144 dpi).
    pages = document_tokens(
        "pages", openai, letter, limits_for("openai"), image_count=3, max_pixels=4_200_000
    )
    assert pages == 3 * estimate_image_tokens(token_family("openai", "gpt-4o"), 1224, 1584)
    # As text: its characters at four a token, or a page's worth each when unread.
    assert document_tokens("text", openai, letter, limits, image_count=0, max_pixels=1,
                           text_chars=400) == 100  # fmt: skip
    assert document_tokens("text", openai, letter, limits, image_count=0, max_pixels=1) == 4500
