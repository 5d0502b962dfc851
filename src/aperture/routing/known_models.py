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

# Patterns are matched in order, first match wins.
KNOWN_MODELS: Mapping[str, tuple[tuple[str, frozenset[str]], ...]] = {
    "openai": (
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
    ),
}


def known_capabilities(kind: str, upstream_model: str) -> frozenset[str] | None:
    """The capabilities of ``upstream_model`` on a provider of ``kind``, if it is known."""
    for pattern, capabilities in KNOWN_MODELS.get(kind, ()):
        if fnmatch.fnmatchcase(upstream_model, pattern):
            return capabilities
    return None
