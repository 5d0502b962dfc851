"""What a target accepts in an image: its kind's spec, with the provider's config overrides.

Limits move fast, so each kind's figures (``providers/spec.py``, one spec per kind) are
defaults that config can override per provider.
"""

from __future__ import annotations

from functools import cache

import msgspec

from aperture.providers.registry import spec_for
from aperture.providers.spec import ImageLimits
from aperture.settings import ProviderSettings

__all__ = ["CONVERTIBLE_MIME_TYPES", "TargetImageLimits", "limits_for", "limits_for_provider"]

# Everything intake accepts because normalisation can turn it into what a target takes.
CONVERTIBLE_MIME_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/tiff",
        "image/heic",
        "image/heif",
        "image/avif",
    }
)


class TargetImageLimits(ImageLimits, frozen=True, kw_only=True):
    """A kind's image limits and whether it fetches URLs itself, as one target applies them."""

    fetches_urls: bool = True


@cache  # one object per kind, so an unchanged provider's limits are the kind's own
def limits_for(kind: str) -> TargetImageLimits:
    """The default image limits of a provider kind.

    Raises:
        LookupError: no such kind.
    """
    spec = spec_for(kind)
    return TargetImageLimits(**msgspec.structs.asdict(spec.images), fetches_urls=spec.fetches_urls)


def limits_for_provider(provider: ProviderSettings) -> TargetImageLimits:
    """The provider kind's limits with the provider's configured overrides applied."""
    limits = limits_for(provider.kind)
    overrides = {
        name: value
        for name, value in msgspec.structs.asdict(provider.images).items()
        if value is not None
    }
    if "accepted" in overrides:
        overrides["accepted"] = frozenset(overrides["accepted"])
    return msgspec.structs.replace(limits, **overrides) if overrides else limits
