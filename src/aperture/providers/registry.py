"""Provider kind -> adapter: the one place that names provider kinds."""

from __future__ import annotations

from collections.abc import Mapping

from aperture.providers.anthropic import AnthropicProvider
from aperture.providers.azure import AzureProvider
from aperture.providers.base import Provider
from aperture.providers.bedrock import BedrockProvider
from aperture.providers.cohere import CohereProvider
from aperture.providers.gemini import GeminiProvider
from aperture.providers.mistral import MistralProvider
from aperture.providers.ollama import OllamaProvider
from aperture.providers.openai import OpenAIProvider
from aperture.providers.presets import PRESETS

__all__ = ["PROVIDERS", "provider_for"]

_OPENAI = OpenAIProvider()

PROVIDERS: Mapping[str, Provider] = {
    **{kind: _OPENAI for kind, preset in PRESETS.items() if preset.openai_wire},
    "azure": AzureProvider(),
    "anthropic": AnthropicProvider(),
    "gemini": GeminiProvider(),
    "bedrock": BedrockProvider(),
    "mistral": MistralProvider(),
    "cohere": CohereProvider(),
    "ollama": OllamaProvider(),
}


def provider_for(kind: str) -> Provider:
    """The adapter for ``kind``; the settings schema admits only kinds listed here."""
    return PROVIDERS[kind]
