"""The real format of an image from its magic bytes, and its frame count, without decoding.

Signatures and animation rules follow the formats' own specifications (PNG/APNG, GIF89a,
the WebP RIFF container, ISO-BMFF brands for HEIF and AVIF).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = ["NOT_IMAGES", "Sniffed", "sniff"]

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


def sniff(data: bytes) -> Sniffed | None:
    """The MIME type the bytes really are, and how many frames they hold; None if unknown."""
    head = data[:32]
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return Sniffed("image/png", _png_frames(data))
    if head[:3] == b"\xff\xd8\xff":
        return Sniffed("image/jpeg", 1)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image/gif", max(1, _gif_frames(data)))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image/webp", _webp_frames(data))
    if head[4:8] == b"ftyp":
        return _iso_bmff(data)
    if head[:2] == b"BM":
        return Sniffed("image/bmp", 1)
    if head[:4] in _TIFF_PREFIXES:
        return Sniffed("image/tiff", 1)
    return None


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


def _png_frames(data: bytes) -> int:
    # APNG: an acTL chunk before the first IDAT holds the frame count.
    offset = 8
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        if kind == b"acTL" and offset + 12 <= len(data):
            return max(1, int.from_bytes(data[offset + 8 : offset + 12], "big"))
        if kind in (b"IDAT", b"IEND"):
            return 1
        offset += 12 + length
    return 1


def _webp_frames(data: bytes) -> int:
    if data[12:16] != b"VP8X" or len(data) <= 20 or not data[20] & 0x02:
        return 1
    frames, offset = 0, 12
    while offset + 8 <= len(data):
        kind = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        if kind == b"ANMF":
            frames += 1
        offset += 8 + size + (size & 1)
    return max(frames, 1)


def _gif_frames(data: bytes) -> int:
    # Walk the block stream: every image descriptor (0x2C) is a frame.
    pos, flags, end = 13, data[10] if len(data) > 10 else 0, len(data)
    if flags & 0x80:
        pos += 3 * (2 ** ((flags & 7) + 1))
    frames = 0
    while pos < end:
        intro = data[pos]
        if intro == 0x3B:
            break
        if intro == 0x21:
            pos = _skip_sub_blocks(data, pos + 2)
        elif intro == 0x2C:
            frames += 1
            if pos + 9 >= end:
                break
            local = data[pos + 9]
            pos += 10
            if local & 0x80:
                pos += 3 * (2 ** ((local & 7) + 1))
            pos = _skip_sub_blocks(data, pos + 1)
        else:
            break
    return frames


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1
        if size == 0:
            return pos
        pos += size
    return pos
