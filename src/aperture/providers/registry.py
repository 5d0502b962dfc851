"""Provider kind -> adapter: the one place that names provider kinds."""

from __future__ import annotations

from collections.abc import Mapping

from aperture.providers.anthropic import AnthropicProvider
from aperture.providers.azure import AzureProvider
from aperture.providers.base import Provider
from aperture.providers.gemini import GeminiProvider
from aperture.providers.openai import OpenAIProvider
from aperture.providers.presets import PRESETS

__all__ = ["PROVIDERS", "provider_for"]

_OPENAI = OpenAIProvider()

PROVIDERS: Mapping[str, Provider] = {
    **{kind: _OPENAI for kind, preset in PRESETS.items() if preset.openai_wire},
    "azure": AzureProvider(),
    "anthropic": AnthropicProvider(),
    "gemini": GeminiProvider(),
}


def provider_for(kind: str) -> Provider:
    """The adapter for ``kind``; settings validation guarantees it exists."""
    return PROVIDERS[kind]
