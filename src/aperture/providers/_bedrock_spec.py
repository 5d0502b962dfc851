"""The ``bedrock`` kind: AWS Bedrock's Converse API (adapter: ``bedrock``)."""

from __future__ import annotations

import msgspec

from aperture.providers._anthropic_spec import ANTHROPIC_IMAGES
from aperture.providers.spec import (
    TOOLS,
    VISION_TOOLS,
    VISION_TOOLS_REASONING,
    DocumentLimits,
    ProviderSpec,
)

__all__ = ["BEDROCK"]

BEDROCK = ProviderSpec(
    # Converse DocumentBlock (docs.aws.amazon.com/bedrock/latest/APIReference/
    # API_runtime_DocumentBlock.html, read 2026-12): 4.5 MB per document, 5 documents; the
    # pages are Claude's 100. Converse reads a document block's text (its page images only
    # with citations on, which the gateway does not ask for): a page costs its text, counted
    # at the low end of Anthropic's "1,500-3,000 tokens per page". Not in providers.md.
    documents=DocumentLimits(
        max_bytes=4_500_000, max_pages=100, pages_as_images=False, text_tokens_per_page=1500
    ),
    kind="bedrock",
    adapter="aperture.providers.bedrock:BedrockProvider",
    wire="bedrock-converse",
    # The endpoint follows the region: bedrock-runtime.<region>.amazonaws.com.
    base_url=None,
    # providers.md §6-7: Claude's limits but 20 images; Bedrock cannot fetch URLs.
    images=msgspec.structs.replace(ANTHROPIC_IMAGES, max_images=20),
    fetches_urls=False,
    image_tokens="bedrock",
    known_models=(
        ("*anthropic.claude-v2*", TOOLS),
        ("*anthropic.claude-instant*", TOOLS),
        # Claude 3.7 and 4 think on Bedrock too (additionalModelRequestFields.thinking).
        ("*anthropic.claude-3-7-*", VISION_TOOLS_REASONING),
        ("*anthropic.claude-*-4*", VISION_TOOLS_REASONING),
        ("*anthropic.claude*", VISION_TOOLS),
        ("*amazon.nova-pro*", VISION_TOOLS),
        ("*amazon.nova-lite*", VISION_TOOLS),
        ("*amazon.nova-premier*", VISION_TOOLS),
        ("*meta.llama3-2-11b*", VISION_TOOLS),
        ("*meta.llama3-2-90b*", VISION_TOOLS),
        ("*meta.llama4*", VISION_TOOLS),
        ("*mistral.pixtral*", VISION_TOOLS),
    ),
)
