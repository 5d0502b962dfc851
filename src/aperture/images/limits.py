"""What each provider family accepts in an image, from providers.md §1–13.

Limits move fast, so these are defaults that config can override per provider. Byte caps
are stated the way the provider counts them: Anthropic and Bedrock-Claude check the base64
string, everyone else the decoded bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

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
_COMMON = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


class TargetImageLimits(msgspec.Struct, frozen=True, kw_only=True):
    accepted: frozenset[str] = _COMMON
    max_bytes: int = 20_000_000
    counts_base64: bool = False
    max_side: int = 8192
    max_images: int = 500
    # Anthropic lowers the side cap when a request carries many images.
    many_images: int | None = None
    many_images_max_side: int | None = None
    animated: bool = False
    fetches_urls: bool = True
    # The resolution the model actually sees; `optimize` downsizes to it.
    effective_long_edge: int | None = None
    low_detail_long_edge: int | None = None

    def max_side_for(self, image_count: int) -> int:
        if self.many_images is not None and image_count > self.many_images:
            return min(self.max_side, self.many_images_max_side or self.max_side)
        return self.max_side

    def wire_size(self, size_bytes: int) -> int:
        """The size the provider measures: the base64 length for those that count it."""
        return (size_bytes + 2) // 3 * 4 if self.counts_base64 else size_bytes


_OPENAI = TargetImageLimits(
    max_images=500, effective_long_edge=2048, low_detail_long_edge=512, max_side=12000
)
_ANTHROPIC = TargetImageLimits(
    max_bytes=5 * 1024 * 1024,
    counts_base64=True,
    max_side=8000,
    max_images=100,
    many_images=20,
    many_images_max_side=2000,
    effective_long_edge=1568,
)

KIND_LIMITS: Mapping[str, TargetImageLimits] = {
    "openai": _OPENAI,
    "azure": _OPENAI,
    "vllm": _OPENAI,
    "moonshot": _OPENAI,
    "glm": _OPENAI,
    "anthropic": _ANTHROPIC,
    "bedrock": msgspec.structs.replace(_ANTHROPIC, max_images=20, fetches_urls=False),
    "gemini": TargetImageLimits(
        accepted=frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}),
        max_bytes=20_000_000,
        max_side=16384,
        max_images=3600,
        fetches_urls=False,
        effective_long_edge=3072,
    ),
    "ollama": TargetImageLimits(
        accepted=frozenset({"image/png", "image/jpeg", "image/webp"}),
        fetches_urls=False,
        effective_long_edge=2048,
    ),
    "mistral": TargetImageLimits(
        max_bytes=10_000_000, max_side=10000, max_images=8, effective_long_edge=1540
    ),
    "cohere": TargetImageLimits(max_images=20, effective_long_edge=2048),
    "xai": TargetImageLimits(
        accepted=frozenset({"image/png", "image/jpeg"}), max_bytes=20 * 1024 * 1024
    ),
    "groq": TargetImageLimits(max_bytes=3_000_000, max_side=5760, max_images=5),
    "deepseek": TargetImageLimits(max_bytes=32 * 1024 * 1024, max_side=8192, max_images=600),
    "qwen": TargetImageLimits(
        accepted=_COMMON | {"image/bmp", "image/tiff"}, max_bytes=10_000_000, max_images=100
    ),
}


def limits_for(kind: str) -> TargetImageLimits:
    """The default image limits of a provider kind."""
    return KIND_LIMITS.get(kind, _OPENAI)


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
