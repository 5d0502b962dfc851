"""Provider kind -> adapter: the one place that names provider kinds."""

from __future__ import annotations

from collections.abc import Mapping

from aperture.providers.base import Provider
from aperture.providers.openai import OpenAIProvider

__all__ = ["PROVIDERS", "provider_for"]

PROVIDERS: Mapping[str, Provider] = {
    "openai": OpenAIProvider(),
}


def provider_for(kind: str) -> Provider:
    """The adapter for ``kind``; settings validation guarantees it exists."""
    return PROVIDERS[kind]
