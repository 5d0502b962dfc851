"""The real format of an image from its magic bytes, its frame count and whether its
container is whole, without decoding.

Signatures and animation rules follow the formats' own specifications (PNG/APNG, GIF89a,
the WebP RIFF container, ISO-BMFF brands for HEIF and AVIF); the structure walks that count
frames also find truncation (see structure.py).
"""

from __future__ import annotations

from typing import NamedTuple

from aperture.media.structure import (
    Structure,
    walk_bmp,
    walk_gif,
    walk_iso_bmff,
    walk_jpeg,
    walk_png,
    walk_webp,
)

__all__ = ["NOT_IMAGES", "Sniffed", "sniff", "sniff_non_image"]

_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_TIFF_PREFIXES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# Things people send as images that are not raster images: named so the error can say so.
NOT_IMAGES = {
    b"%PDF-": "application/pdf",
    b"<svg": "image/svg+xml",
    b"<?xml": "image/svg+xml",
}


class Sniffed(NamedTuple):
    mime: str
    frames: int
    damage: str | None = None
    """Why the container is broken (truncated, corrupt framing); None when it is whole."""


def sniff(data: bytes) -> Sniffed | None:
    """The MIME type the bytes really are, and how many frames they hold; None if unknown."""
    head = data[:32]
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return _sniffed("image/png", walk_png(data))
    if head[:3] == b"\xff\xd8\xff":
        return _sniffed("image/jpeg", walk_jpeg(data))
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _sniffed("image/gif", walk_gif(data))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _sniffed("image/webp", walk_webp(data))
    if head[4:8] == b"ftyp":
        brand = _iso_bmff(data)
        if brand is None:
            return None
        return Sniffed(brand.mime, brand.frames, walk_iso_bmff(data).damage)
    if head[:2] == b"BM":
        return _sniffed("image/bmp", walk_bmp(data))
    if head[:4] in _TIFF_PREFIXES:
        return Sniffed("image/tiff", 1)
    return None


def _sniffed(mime: str, structure: Structure) -> Sniffed:
    return Sniffed(mime, structure.frames, structure.damage)


def sniff_non_image(data: bytes) -> str | None:
    """The MIME type of a well-known non-raster document (PDF, SVG), if it is one."""
    head = data[:256].lstrip()
    for magic, mime in NOT_IMAGES.items():
        if head.startswith(magic):
            return mime
    return None


def _iso_bmff(data: bytes) -> Sniffed | None:
    brand = data[8:12]
    box_size = int.from_bytes(data[:4], "big")
    compatible = data[16 : min(max(box_size, 16), 64)]
    if brand == b"avif":
        return Sniffed("image/avif", 1)
    if brand == b"avis":
        return Sniffed("image/avif", 2)
    if brand in _HEIC_BRANDS:
        return Sniffed("image/heic", 2 if brand.startswith(b"hev") else 1)
    if brand in _HEIF_BRANDS:
        frames = 2 if brand == b"msf1" else 1
        is_avif = any(compatible[i : i + 4] == b"avif" for i in range(0, len(compatible), 4))
        return Sniffed("image/avif" if is_avif else "image/heif", frames)
    return None
