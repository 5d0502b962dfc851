"""The ``gemini`` kind: the Gemini API's generateContent (adapter: ``gemini``)."""

from __future__ import annotations

from aperture.providers.spec import (
    TOOLS,
    VISION_TOOLS,
    DocumentLimits,
    ImageLimits,
    LogprobSupport,
    MediaLimits,
    ProviderSpec,
)
from aperture.settings import Capability

__all__ = ["DEFAULT_BASE_URL", "GEMINI", "GEMINI_IMAGE_TYPES"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

GEMINI_IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}
)
"""Exactly the image types Gemini lists (providers.md §5.2); GIF is not one of them."""
_SEES_HEARS: frozenset[Capability] = frozenset({"vision", "audio", "video", "tools", "json_mode"})

# Audio and video understanding (ai.google.dev/gemini-api/docs/audio, /video-understanding):
# inline data counts against the 20 MB request; up to 9.5 hours of audio in a prompt, about an
# hour of video at the default resolution. Not in providers.md.
_INLINE_BYTES = 20_000_000

GEMINI = ProviderSpec(
    audio=MediaLimits(
        formats=frozenset({"wav", "mp3", "aiff", "aac", "ogg", "flac"}),
        max_bytes=_INLINE_BYTES,
        max_seconds=9.5 * 3600,
        source="ai.google.dev/gemini-api/docs/audio",
    ),
    video=MediaLimits(
        max_bytes=_INLINE_BYTES, source="ai.google.dev/gemini-api/docs/video-understanding"
    ),
    # generationConfig.responseLogprobs and logprobs (0..20), candidateCount up to 8.
    logprobs=LogprobSupport(max_top=20),
    max_choices=8,
    # Document understanding (ai.google.dev/gemini-api/docs/document-processing, read
    # 2026-12): inline data up to 20 MB a request, at most 1000 pages; "each document page
    # is equivalent to 258 tokens". Gemini 3 counts a PDF page at its media resolution,
    # 560 by default (ai.google.dev/gemini-api/docs/media-resolution). Not in providers.md.
    documents=DocumentLimits(
        max_bytes=20_000_000,
        max_pages=1000,
        page_tokens=258,
        page_tokens_by_model=(("gemini-3*", 560),),
    ),
    kind="gemini",
    adapter="aperture.providers.gemini:GeminiProvider",
    wire="gemini-generate-content",
    base_url=DEFAULT_BASE_URL,
    images=ImageLimits(
        accepted=GEMINI_IMAGE_TYPES,
        max_bytes=20_000_000,
        max_side=16384,
        max_images=3600,
        effective_long_edge=3072,
    ),
    fetches_urls=False,
    image_tokens="gemini",
    known_models=(
        ("gemini-*-image*", _SEES_HEARS | {"image_output"}),
        ("gemini-1.0*", TOOLS),
        # Thinking models (ai.google.dev/gemini-api/docs/thinking, read 2026-12): 2.5 and 3.
        ("gemini-2.5-*", _SEES_HEARS | {"reasoning"}),
        ("gemini-3*", _SEES_HEARS | {"reasoning"}),
        ("gemini-*", _SEES_HEARS),
        ("gemma-3*", VISION_TOOLS),
    ),
    api_key_env="GEMINI_API_KEY",
    demo_models=("gemini-2.5-flash", "gemini-2.5-pro"),
)
