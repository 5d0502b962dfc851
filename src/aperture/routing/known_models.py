"""What well-known models can do, per provider kind, when the config does not say.

Config ``capabilities`` always wins; a model found nowhere is treated as text-only, so an
image is never sent to a model that was not declared able to see it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

__all__ = ["KNOWN_MODELS", "known_capabilities"]

_VISION_TOOLS = frozenset({"vision", "tools", "json_mode"})
_TEXT_TOOLS = frozenset({"tools", "json_mode"})

_VISION = frozenset({"vision", "tools"})
_TEXT = frozenset({"tools"})
_GEMINI = frozenset({"vision", "audio", "video", "tools", "json_mode"})
_OPENAI_MODELS = (
    ("gpt-4o-audio*", frozenset({"audio", "tools", "json_mode"})),
    ("gpt-image*", frozenset({"vision", "image_output"})),
    ("gpt-4o*", _VISION_TOOLS),
    ("gpt-4.1*", _VISION_TOOLS),
    ("gpt-4.5*", _VISION_TOOLS),
    ("gpt-5*", _VISION_TOOLS),
    ("o1", _VISION_TOOLS),
    ("o1-2*", _VISION_TOOLS),
    ("o3*", _VISION_TOOLS),
    ("o4-mini*", _VISION_TOOLS),
    ("gpt-4-turbo*", _VISION_TOOLS),
    ("gpt-3.5-turbo*", _TEXT_TOOLS),
    ("gpt-4", _TEXT_TOOLS),
    ("o1-mini*", frozenset({"json_mode"})),
    ("o3-mini*", _TEXT_TOOLS),
)

# Patterns are matched in order, first match wins; a kind's unmatched models are text-only.
KNOWN_MODELS: Mapping[str, tuple[tuple[str, frozenset[str]], ...]] = {
    "openai": _OPENAI_MODELS,
    "azure": _OPENAI_MODELS,
    "anthropic": (("claude-2*", _TEXT), ("claude-instant*", _TEXT), ("claude-*", _VISION)),
    "gemini": (
        ("gemini-*-image*", _GEMINI | {"image_output"}),
        ("gemini-1.0*", _TEXT),
        ("gemini-*", _GEMINI),
        ("gemma-3*", _VISION),
    ),
    "bedrock": (
        ("*anthropic.claude-v2*", _TEXT),
        ("*anthropic.claude-instant*", _TEXT),
        ("*anthropic.claude*", _VISION),
        ("*amazon.nova-pro*", _VISION),
        ("*amazon.nova-lite*", _VISION),
        ("*amazon.nova-premier*", _VISION),
        ("*meta.llama3-2-11b*", _VISION),
        ("*meta.llama3-2-90b*", _VISION),
        ("*meta.llama4*", _VISION),
        ("*mistral.pixtral*", _VISION),
    ),
    "mistral": (
        ("pixtral*", _VISION_TOOLS),
        ("mistral-small-2503*", _VISION_TOOLS),
        ("mistral-small-2506*", _VISION_TOOLS),
        ("mistral-small-latest", _VISION_TOOLS),
        ("mistral-medium*", _VISION_TOOLS),
        ("mistral-large-2512*", _VISION_TOOLS),
        ("mistral-large-latest", _VISION_TOOLS),
        ("ministral-*-2512*", _VISION_TOOLS),
    ),
    "cohere": (("command-a-vision*", frozenset({"vision"})), ("c4ai-aya-vision*", _VISION)),
    "ollama": tuple(
        (pattern, _VISION)
        for pattern in (
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
    ),
    "xai": (
        ("grok-2-vision*", _VISION),
        ("grok-vision*", _VISION),
        ("grok-4*", _VISION_TOOLS),
    ),
    "groq": (
        ("meta-llama/llama-4-scout*", _VISION_TOOLS),
        ("meta-llama/llama-4-maverick*", _VISION_TOOLS),
    ),
    "deepseek": (("deepseek-vl*", _VISION),),
    "qwen": (
        ("qwen*-omni*", _VISION | {"audio", "video"}),
        ("qwen-vl*", _VISION),
        ("qwen2.5-vl*", _VISION),
        ("qwen3-vl*", _VISION | {"video"}),
        ("qvq*", _VISION),
    ),
    "moonshot": (("*vision*", _VISION), ("kimi-latest*", _VISION)),
    "glm": (("glm-4v*", _VISION), ("glm-4.1v*", _VISION), ("glm-4.5v*", _VISION)),
}


def known_capabilities(kind: str, upstream_model: str) -> frozenset[str] | None:
    """The capabilities of ``upstream_model`` on a provider of ``kind``, if it is known."""
    for pattern, capabilities in KNOWN_MODELS.get(kind, ()):
        if fnmatch.fnmatchcase(upstream_model, pattern):
            return capabilities
    return None
