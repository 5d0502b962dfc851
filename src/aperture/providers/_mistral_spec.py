"""The ``mistral`` kind: Mistral's chat completions (adapter: ``mistral``)."""

from __future__ import annotations

from aperture.providers.spec import (
    VISION_TOOLS_JSON,
    ImageLimits,
    LogprobSupport,
    MediaLimits,
    ProviderSpec,
)

__all__ = ["DEFAULT_BASE_URL", "MISTRAL"]

DEFAULT_BASE_URL = "https://api.mistral.ai"

MISTRAL = ProviderSpec(
    # Voxtral's audio understanding (docs.mistral.ai/capabilities/audio): input_audio as
    # base64, about 40 minutes of audio at most. No video in Mistral chat.
    audio=MediaLimits(max_seconds=40 * 60, source="docs.mistral.ai/capabilities/audio"),
    max_choices=128,
    # logprobs and top_logprobs in chat completions, OpenAI's token shape (the mistralai
    # SDK's ChatCompletionRequest and ChatCompletionChoice.logprobs); no bound is stated there.
    logprobs=LogprobSupport(max_top=20),
    kind="mistral",
    adapter="aperture.providers.mistral:MistralProvider",
    wire="mistral-chat",
    base_url=DEFAULT_BASE_URL,
    images=ImageLimits(
        max_bytes=10_000_000, max_side=10000, max_images=8, effective_long_edge=1540
    ),
    fetches_urls=True,
    image_tokens="mistral",
    known_models=(
        ("pixtral*", VISION_TOOLS_JSON),
        ("mistral-small-2503*", VISION_TOOLS_JSON),
        ("mistral-small-2506*", VISION_TOOLS_JSON),
        ("mistral-small-latest", VISION_TOOLS_JSON),
        ("mistral-medium*", VISION_TOOLS_JSON),
        ("mistral-large-2512*", VISION_TOOLS_JSON),
        ("mistral-large-latest", VISION_TOOLS_JSON),
        ("ministral-*-2512*", VISION_TOOLS_JSON),
    ),
    api_key_env="MISTRAL_API_KEY",
    demo_models=("pixtral-large-latest", "mistral-small-latest", "mistral-large-latest"),
)
