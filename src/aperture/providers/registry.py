"""The provider kinds: the one list of specs (plain data; ``adapters`` imports the code).

Adding a kind is its spec (and adapter, unless it speaks a wire an adapter already speaks)
plus one line here; settings, image limits, token estimates and known models follow.

Adapters are imported on first use, so a gateway that serves only OpenAI-compatible
providers never loads botocore or the other providers' modules (a faster cold start): the
specs listed here name their adapter as a string.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from aperture.providers._anthropic_spec import ANTHROPIC
from aperture.providers._bedrock_spec import BEDROCK
from aperture.providers._cohere_spec import COHERE
from aperture.providers._gemini_spec import GEMINI
from aperture.providers._mistral_spec import MISTRAL
from aperture.providers._ollama_spec import OLLAMA
from aperture.providers.presets import (
    AZURE,
    DEEPSEEK,
    GLM,
    GROQ,
    MOONSHOT,
    OPENAI,
    QWEN,
    VLLM,
    XAI,
)
from aperture.providers.spec import ProviderSpec

__all__ = ["LISTED", "SPECS", "spec_for"]

LISTED: tuple[ProviderSpec, ...] = (
    OPENAI,
    AZURE,
    ANTHROPIC,
    GEMINI,
    BEDROCK,
    MISTRAL,
    COHERE,
    OLLAMA,
    XAI,
    GROQ,
    DEEPSEEK,
    QWEN,
    MOONSHOT,
    GLM,
    VLLM,
)
"""Every provider kind's spec, in the order error messages and the demo list them."""

SPECS: Mapping[str, ProviderSpec] = MappingProxyType({spec.kind: spec for spec in LISTED})


def spec_for(kind: str) -> ProviderSpec:
    """The spec of ``kind``; the settings admit only kinds listed here.

    Raises:
        LookupError: no such kind (settings built in code, not loaded, can name one).
    """
    try:
        return SPECS[kind]
    except KeyError:
        known = ", ".join(SPECS)
        raise LookupError(f"unknown provider kind {kind!r} (known: {known})") from None
