"""An image as text recognisers read it best: grayscale, bounded in pixels (for OCR).

``grayscale_pixels`` is the form a decode worker runs (see workers.py): it returns plain
bytes, so that only the small grayscale result crosses back to the server process.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aperture.images.formats import PILLOW_FORMATS

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["GrayPixels", "grayscale", "grayscale_pixels"]

# The formats intake accepts, and only those: Pillow never picks a decoder from the bytes.
_FORMATS = tuple(sorted(set(PILLOW_FORMATS.values())))


def grayscale(data: bytes, max_pixels: int) -> Image.Image:
    """The image in grayscale (what tesseract reads best), at most ``max_pixels`` large.

    Raises:
        ValueError: the bytes are not an image in a format intake accepts.
        MemoryError: decoding it needs more memory than there is.
    """
    from aperture.images._pillow import Image  # Pillow loads with the first image

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
    except MemoryError:
        raise  # not the image's fault alone: in a decode worker, its memory ceiling
    # Pillow reports malformed images with many exception types (OSError, SyntaxError,
    # ValueError, struct.error, EOFError...), decompression bombs included.
    except Exception as exc:
        raise ValueError("the image cannot be decoded") from exc
    if image.size != size:
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return image


@dataclass(frozen=True, slots=True)
class GrayPixels:
    """8-bit grayscale pixels, row by row: what a decode worker sends back."""

    width: int
    height: int
    pixels: bytes

    def image(self) -> Image.Image:
        from aperture.images._pillow import Image  # Pillow loads with the first image

        return Image.frombytes("L", (self.width, self.height), self.pixels)


def grayscale_pixels(data: bytes, max_pixels: int) -> GrayPixels:
    """``grayscale`` as bytes that pickle flat (at most ``max_pixels`` of them).

    Raises:
        ValueError: the bytes are not an image in a format intake accepts.
    """
    image = grayscale(data, max_pixels)
    return GrayPixels(image.width, image.height, image.tobytes())


def _fit(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    width, height = size
    if width * height <= max_pixels:
        return size
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))
