"""An image's width and height read from its header, where that is cheaper than Pillow.

Pillow's ``open()`` reads no pixel either, but its JPEG header walk runs in Python, file
object and all: about 70 µs an image, paid again for every image of a request. Only the
plain case is read here; anything Pillow might judge otherwise (a marker it does not know,
a frame header it refuses, a size over its decompression-bomb line) answers None, and the
caller asks Pillow, which then says what it always said.
"""

from __future__ import annotations

__all__ = ["jpeg_size"]

# Start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Pillow refuses an image over twice its MAX_IMAGE_PIXELS (89478485) as a decompression bomb.
_PILLOW_BOMB_PIXELS = 2 * 89_478_485
# Frame headers Pillow takes: 8-bit samples, one, three or four components.
_PILLOW_COMPONENTS = frozenset({1, 3, 4})
# A camera's JPEG has a few dozen segments before its scan. A hostile one can have millions
# of 4-byte ones (or megabytes of fill bytes): seconds of this loop, which the caller may run
# on the event loop. Past these, the answer is None and the caller hands it to Pillow in a
# worker thread.
_MAX_SEGMENTS = 128
_MAX_FILL = 64


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the last frame header before the scan, as Pillow reads it; None
    when anything is off the plain path (the caller then asks Pillow)."""
    pos, end, size = 2, len(data), None
    for _ in range(_MAX_SEGMENTS):
        if pos >= end or data[pos] != 0xFF:
            return None
        most = min(end, pos + _MAX_FILL)
        while pos < most and data[pos] == 0xFF:  # fill bytes may precede any marker
            pos += 1
        if pos == most or pos + 3 > end:
            return None
        marker = data[pos]
        # Below C0 (TEM, reserved) and SOI/EOI/RST here are markers Pillow calls corrupt.
        if marker < 0xC0 or 0xD0 <= marker <= 0xD9:
            return None
        length = (data[pos + 1] << 8) | data[pos + 2]
        if length < 2 or pos + 1 + length > end:
            return None
        if marker == 0xDA:
            break
        if marker in _SOF:
            if length < 8 or data[pos + 3] != 8 or data[pos + 8] not in _PILLOW_COMPONENTS:
                return None
            height = (data[pos + 4] << 8) | data[pos + 5]
            width = (data[pos + 6] << 8) | data[pos + 7]
            size = width, height
        pos += 1 + length
    else:
        return None  # no scan within _MAX_SEGMENTS
    if size is None or size[0] * size[1] > _PILLOW_BOMB_PIXELS:
        return None
    return size
