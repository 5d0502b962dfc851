"""The ``cohere`` kind: Cohere's v2 chat (adapter: ``cohere``)."""

from __future__ import annotations

from aperture.providers.spec import VISION_TOOLS, ImageLimits, LogprobSupport, ProviderSpec

__all__ = ["COHERE", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "https://api.cohere.com"

COHERE = ProviderSpec(
    # v2 chat ``logprobs: true``: the chosen tokens' logprobs, no alternatives.
    logprobs=LogprobSupport(max_top=0),
    kind="cohere",
    adapter="aperture.providers.cohere:CohereProvider",
    wire="cohere-chat-v2",
    base_url=DEFAULT_BASE_URL,
    images=ImageLimits(max_images=20, effective_long_edge=2048),
    fetches_urls=True,
    image_tokens="cohere",
    known_models=(
        ("command-a-vision*", frozenset({"vision"})),
        ("c4ai-aya-vision*", VISION_TOOLS),
    ),
    api_key_env="COHERE_API_KEY",
    demo_models=("command-a-vision-07-2025", "command-a-03-2025"),
)
