"""The ``anthropic`` kind: Anthropic's Messages API (adapter: ``anthropic``)."""

from __future__ import annotations

from aperture.providers.spec import (
    TOOLS,
    VISION_TOOLS,
    VISION_TOOLS_REASONING,
    DocumentLimits,
    ImageLimits,
    ProviderSpec,
)

__all__ = ["ANTHROPIC", "ANTHROPIC_IMAGES", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "https://api.anthropic.com"

# providers.md §4: 5 MB of base64 per image, 8000 px (2000 px past 20 images), 100 images.
ANTHROPIC_IMAGES = ImageLimits(
    max_bytes=5 * 1024 * 1024,
    counts_base64=True,
    max_side=8000,
    max_images=100,
    many_images=20,
    many_images_max_side=2000,
    effective_long_edge=1568,
)

ANTHROPIC = ProviderSpec(
    # PDF support (docs.anthropic.com/en/docs/build-with-claude/pdf-support, read 2026-12):
    # requests up to 32 MB, at most 100 pages per request. Each page is put in context as
    # an image and as its text: "1,500-3,000 tokens per page" for the text (the low end
    # here), plus the page image at Claude's image rule. Not in providers.md.
    documents=DocumentLimits(max_bytes=32_000_000, max_pages=100, text_tokens_per_page=1500),
    kind="anthropic",
    adapter="aperture.providers.anthropic:AnthropicProvider",
    wire="anthropic-messages",
    base_url=DEFAULT_BASE_URL,
    images=ANTHROPIC_IMAGES,
    fetches_urls=True,
    image_tokens="anthropic",
    # Extended thinking (docs.anthropic.com/en/docs/build-with-claude/extended-thinking, read
    # 2026-12): Claude 3.7 Sonnet and every Claude 4 model; not Claude 3.5 and older.
    known_models=(
        ("claude-2*", TOOLS),
        ("claude-instant*", TOOLS),
        ("claude-3-7-*", VISION_TOOLS_REASONING),
        ("claude-3*", VISION_TOOLS),
        ("claude-*-4*", VISION_TOOLS_REASONING),
        ("claude-4*", VISION_TOOLS_REASONING),
        ("claude-*", VISION_TOOLS),
    ),
    api_key_env="ANTHROPIC_API_KEY",
    demo_models=("claude-sonnet-4-5", "claude-opus-4-1", "claude-3-5-haiku-latest"),
)
