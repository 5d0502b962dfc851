"""Encode pixels rendered elsewhere (a PDF's pages) as images one target accepts.

Runs where the rendering runs, in a decode worker: the renderer yields one page at a time
and each is encoded before the next is drawn, so one bitmap is in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aperture.images.limits import TargetImageLimits
from aperture.images.normalize import Normalized, fit_bytes

__all__ = ["RgbBitmap", "encode_bitmaps", "page_mime"]


class RgbBitmap(Protocol):
    @property
    def pixels(self) -> bytes: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def stride(self) -> int: ...


def page_mime(limits: TargetImageLimits) -> str:
    """PNG where the target takes it (text stays sharp and a page of text is small in PNG),
    else JPEG, else what it takes."""
    for mime in ("image/png", "image/jpeg", "image/webp"):
        if mime in limits.accepted:
            return mime
    return next(iter(sorted(limits.accepted)))


def encode_bitmaps(bitmaps: Iterable[RgbBitmap], limits: TargetImageLimits) -> list[Normalized]:
    """Each bitmap encoded within the target's byte cap (fewer pixels only if it must)."""
    from aperture.images._pillow import Image  # Pillow loads with the first page

    mime = page_mime(limits)
    out: list[Normalized] = []
    for bitmap in bitmaps:
        image = Image.frombuffer(
            "RGB",
            (bitmap.width, bitmap.height),
            bitmap.pixels,
            "raw",
            "RGB",
            bitmap.stride,
            1,
        )
        changes: list[str] = ["rendered"]
        data, image = fit_bytes(image, mime, limits, changes)
        out.append(Normalized(data, mime, image.width, image.height, tuple(changes)))
    return out
