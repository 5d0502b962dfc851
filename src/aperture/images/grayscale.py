"""An image as text recognisers read it best: grayscale, bounded in pixels (for OCR)."""

from __future__ import annotations

import io
import math
import warnings

from PIL import Image

from aperture.images._pillow import PILLOW_FORMATS

__all__ = ["grayscale"]

# The formats intake accepts, and only those: Pillow never picks a decoder from the bytes.
_FORMATS = tuple(sorted(set(PILLOW_FORMATS.values())))


def grayscale(data: bytes, max_pixels: int) -> Image.Image:
    """The image in grayscale (what tesseract reads best), at most ``max_pixels`` large.

    Raises:
        ValueError: the bytes are not an image in a format intake accepts.
    """
    try:
        with warnings.catch_warnings():
            # Intake has already applied the gateway's own pixel limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=_FORMATS) as source:
                size = _fit(source.size, max_pixels)
                if size != source.size:
                    # draft() lets libjpeg decode at 1/2, 1/4 or 1/8 scale: much less work.
                    source.draft("L", size)
                image = source.convert("L")
    # Pillow reports malformed images with many exception types (OSError, SyntaxError,
    # ValueError, struct.error, EOFError...), decompression bombs included.
    except Exception as exc:
        raise ValueError("the image cannot be decoded") from exc
    if image.size != size:
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return image


def _fit(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    width, height = size
    if width * height <= max_pixels:
        return size
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))
