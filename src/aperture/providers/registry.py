"""Provider kind -> adapter: the one place that names provider kinds.

Adapters are imported on first use, so a gateway that serves only OpenAI-compatible
providers never loads botocore or the other providers' modules (a faster cold start).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache

from aperture.providers.base import Provider
from aperture.providers.presets import PRESETS

__all__ = ["ADAPTERS", "provider_for"]

ADAPTERS: Mapping[str, str] = {
    **{
        kind: "aperture.providers.openai:OpenAIProvider"
        for kind, preset in PRESETS.items()
        if preset.openai_wire
    },
    "azure": "aperture.providers.azure:AzureProvider",
    "anthropic": "aperture.providers.anthropic:AnthropicProvider",
    "gemini": "aperture.providers.gemini:GeminiProvider",
    "bedrock": "aperture.providers.bedrock:BedrockProvider",
    "mistral": "aperture.providers.mistral:MistralProvider",
    "cohere": "aperture.providers.cohere:CohereProvider",
    "ollama": "aperture.providers.ollama:OllamaProvider",
}


@cache  # adapters are stateless; one instance per kind for the process
def provider_for(kind: str) -> Provider:
    """The adapter for ``kind``; the settings schema admits only kinds listed here."""
    module, _, name = ADAPTERS[kind].partition(":")
    adapter: Provider = getattr(importlib.import_module(module), name)()
    return adapter
