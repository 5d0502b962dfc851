"""The ``ollama`` kind: Ollama's native ``/api/chat`` (adapter: ``ollama``)."""

from __future__ import annotations

from aperture.providers.spec import VISION_TOOLS, ImageLimits, LogprobSupport, ProviderSpec

__all__ = ["DEFAULT_BASE_URL", "OLLAMA"]

DEFAULT_BASE_URL = "http://127.0.0.1:11434"

_VISION_FAMILIES = (
    "llava*",
    "bakllava*",
    "llama3.2-vision*",
    "llama4*",
    "gemma3*",
    "qwen2.5vl*",
    "qwen3-vl*",
    "minicpm-v*",
    "moondream*",
    "granite3.2-vision*",
    "mistral-small3.1*",
    "mistral-small3.2*",
)

OLLAMA = ProviderSpec(
    # /api/chat ``logprobs`` and ``top_logprobs`` (0..20) in recent versions (the ollama
    # SDK's ChatRequest and ChatResponse.logprobs); an older server ignores them.
    logprobs=LogprobSupport(max_top=20),
    kind="ollama",
    adapter="aperture.providers.ollama:OllamaProvider",
    wire="ollama-chat",
    base_url=DEFAULT_BASE_URL,
    images=ImageLimits(
        accepted=frozenset({"image/png", "image/jpeg", "image/webp"}), effective_long_edge=2048
    ),
    # Ollama takes base64 images only.
    fetches_urls=False,
    image_tokens="unpublished",
    known_models=tuple((pattern, VISION_TOOLS) for pattern in _VISION_FAMILIES),
)
