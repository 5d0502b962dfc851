"""Is the container whole? Each format's own framing, walked without decoding a pixel.

A truncated or corrupt image is refused at intake, before a provider is paid to say so.
The walks follow the formats' structure (JPEG marker segments, PNG chunks, GIF blocks, the
WebP RIFF container, ISO-BMFF boxes) and only read headers: the cost grows with the number
of segments, chunks or blocks, never with the pixels, and no payload is copied.

Every walker returns the frame count it saw along the way and, when the structure is
broken, a short reason for the client.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

__all__ = [
    "Structure",
    "walk_bmp",
    "walk_gif",
    "walk_iso_bmff",
    "walk_jpeg",
    "walk_png",
    "walk_webp",
]


class Structure(NamedTuple):
    frames: int
    damage: str | None = None
    """Why the bytes are not a whole image; None when the framing is intact."""


_PNG_SIGNATURE = 8
_MAX_PNG_CHUNK = 2**31 - 1  # the PNG spec's own bound on a chunk length
# JPEG markers that stand alone, without a length: TEM, RST0-7, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8, 0xD9})
# Start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def walk_jpeg(data: bytes) -> Structure:
    """Marker segments from SOI to the first SOS, then an EOI somewhere after it.

    The entropy-coded data is not walked: a 0xFF inside it is always followed by 0x00 or a
    restart marker, so ``FF D9`` after the scan header can only be an end-of-image marker.
    Bytes after the EOI are accepted: phones append Motion Photo videos and maker data there.
    """
    pos, frame = 2, False
    while True:
        segment = _jpeg_segment(data, pos)
        if isinstance(segment, str):
            return Structure(1, segment)
        marker, pos = segment
        frame = frame or marker in _SOF
        if marker == 0xDA:
            break
    if not frame:
        return Structure(1, "the JPEG has no frame header before its image data")
    if data.rfind(b"\xff\xd9", pos) < 0:
        return Structure(1, "the JPEG is truncated (no end-of-image marker)")
    return Structure(1)


def _jpeg_segment(data: bytes, pos: int) -> tuple[int, int] | str:
    """The marker at ``pos`` and where the next one starts, or why there is none."""
    end = len(data)
    if pos < end and data[pos] != 0xFF:
        return "the JPEG headers are corrupt (no marker where one belongs)"
    while pos < end and data[pos] == 0xFF:  # fill bytes may precede any marker
        pos += 1
    if pos >= end:
        return "the JPEG ends inside its headers"
    marker = data[pos]
    if marker == 0xD9:
        return "the JPEG ends before its image data"
    if marker in _STANDALONE:
        return marker, pos + 1
    if pos + 3 > end:
        return "the JPEG ends inside its headers"
    length = (data[pos + 1] << 8) | data[pos + 2]
    if length < 2:
        return "the JPEG headers are corrupt (a segment length below 2)"
    if pos + 1 + length > end:
        return "the JPEG ends inside its headers"
    return marker, pos + 1 + length


def walk_png(data: bytes) -> Structure:
    """Chunk by chunk (length, type, data, CRC) from IHDR to IEND.

    Only IHDR's CRC is checked (13 bytes): it guards the size the limits were decided on.
    The image data's CRCs are left to the decoder, which checks them anyway.
    """
    view = memoryview(data)
    pos, end, frames, seen_data = _PNG_SIGNATURE, len(data), 1, False
    while True:
        if pos + 12 > end:
            return Structure(frames, "the PNG is truncated (no IEND chunk)")
        length = int.from_bytes(view[pos : pos + 4], "big")
        kind = bytes(view[pos + 4 : pos + 8])
        if length > _MAX_PNG_CHUNK or not kind.isalpha():
            return Structure(frames, "the PNG is corrupt (a malformed chunk header)")
        stop = pos + 12 + length
        if stop > end:
            return Structure(frames, "the PNG is truncated (a chunk runs past the end)")
        if pos == _PNG_SIGNATURE:
            if kind != b"IHDR" or length != 13:
                return Structure(frames, "the PNG is corrupt (it does not start with IHDR)")
            crc = int.from_bytes(view[stop - 4 : stop], "big")
            if zlib.crc32(view[pos + 4 : stop - 4]) != crc:
                return Structure(frames, "the PNG is corrupt (IHDR checksum mismatch)")
        elif kind == b"acTL" and length >= 4 and not seen_data:
            frames = max(1, int.from_bytes(view[pos + 8 : pos + 12], "big"))
        elif kind == b"IDAT":
            seen_data = True
        elif kind == b"IEND":
            if not seen_data:
                return Structure(frames, "the PNG has no image data")
            return Structure(frames)
        pos = stop


def walk_gif(data: bytes) -> Structure:
    """Header, colour table, then extension and image blocks up to the 0x3B trailer."""
    end = len(data)
    if end < 13:
        return Structure(1, "the GIF ends inside its header")
    pos, flags, frames = 13, data[10], 0
    if flags & 0x80:
        pos += 3 * (2 ** ((flags & 7) + 1))
    while pos < end:
        intro = data[pos]
        if intro == 0x3B:
            if frames == 0:
                return Structure(1, "the GIF has no image")
            return Structure(frames)
        if intro == 0x21:
            pos = _skip_sub_blocks(data, pos + 2)
        elif intro == 0x2C:
            frames += 1
            if pos + 10 > end:
                break
            local = data[pos + 9]
            pos += 10
            if local & 0x80:
                pos += 3 * (2 ** ((local & 7) + 1))
            pos = _skip_sub_blocks(data, pos + 1)  # past the LZW code size
        else:
            return Structure(max(frames, 1), "the GIF is corrupt (an unknown block)")
    return Structure(max(frames, 1), "the GIF is truncated (no trailer)")


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """Past a chain of sub-blocks and its terminator; beyond the end if it is cut off."""
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1
        if size == 0:
            return pos
        pos += size
    return end + 1


def walk_webp(data: bytes) -> Structure:
    """The RIFF size against the byte count, then each chunk inside it."""
    if len(data) < 20:
        return Structure(1, "the WebP ends inside its header")
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data):
        return Structure(1, "the WebP is truncated (shorter than its RIFF size)")
    pos, frames, image = 12, 0, False
    while pos + 8 <= riff_end:
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += 8 + size + (size & 1)
        if pos > riff_end + (size & 1):  # a writer may leave out the last padding byte
            return Structure(max(frames, 1), "the WebP is corrupt (a chunk runs past the end)")
        if kind == b"ANMF":
            frames += 1
        image = image or kind in (b"VP8 ", b"VP8L", b"ANMF")
    if not image:
        return Structure(max(frames, 1), "the WebP has no image data")
    return Structure(max(frames, 1))


def walk_iso_bmff(data: bytes) -> Structure:
    """Top-level boxes (HEIC, AVIF) must tile the file exactly: a cut one runs past the end."""
    pos, end, kinds = 0, len(data), set()
    while pos < end:
        if pos + 8 > end:
            return Structure(1, "the image is truncated (a box header is cut off)")
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            if pos + 16 > end:
                return Structure(1, "the image is truncated (a box header is cut off)")
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = end - pos  # the last box runs to the end of the file
        if size < header:
            return Structure(1, "the image is corrupt (a box smaller than its header)")
        if pos + size > end:
            return Structure(1, "the image is truncated (a box runs past the end)")
        kinds.add(kind)
        pos += size
    if b"meta" not in kinds:
        return Structure(1, "the image is corrupt (no meta box)")
    return Structure(1)


def walk_bmp(data: bytes) -> Structure:
    """The file size and pixel offset in the BMP header against the byte count."""
    if len(data) < 26:
        return Structure(1, "the BMP ends inside its header")
    declared = int.from_bytes(data[2:6], "little")
    pixels_at = int.from_bytes(data[10:14], "little")
    # Some writers leave the size at 0; a non-zero one longer than the data is a cut file.
    if declared > len(data) or pixels_at >= len(data):
        return Structure(1, "the BMP is truncated (shorter than its header says)")
    return Structure(1)
