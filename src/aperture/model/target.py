"""Where a request goes: a configured provider and the model name it knows."""

from __future__ import annotations

import msgspec

from aperture.settings import ProviderSettings

__all__ = ["Target"]


class Target(msgspec.Struct, frozen=True):
    provider: ProviderSettings
    upstream_model: str
    wire: str | None = None
    """Which of the kind's APIs serves the model (its ``wire`` setting); None: the kind's own."""
