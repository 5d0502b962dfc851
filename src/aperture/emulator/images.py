"""Checking an inline image the way providers do: strict base64, real type, size, frames.

Provider-neutral: the checks raise ``ImageRejected`` with a reason, and each emulated
provider turns the reason into its own error envelope.
"""

from __future__ import annotations

import binascii
import io
import warnings
from enum import Enum

import pybase64
from PIL import Image

from aperture.emulator.describe import SeenImage
from aperture.media.sniff import sniff

__all__ = ["MAX_IMAGE_BYTES", "ImageRejected", "Rejection", "inspect_base64"]

MAX_IMAGE_BYTES = 20 * 1024 * 1024


class Rejection(Enum):
    UNSUPPORTED = "unsupported"
    """Not decodable, not an image, a format the provider refuses, or animated."""
    MISMATCH = "mismatch"
    """The declared MIME type is not what the bytes are."""
    TOO_LARGE = "too_large"


class ImageRejected(Exception):
    def __init__(self, reason: Rejection, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def inspect_base64(
    declared: str,
    payload: str,
    *,
    detail: str,
    accepted: frozenset[str],
    allow_animated: bool = False,
) -> SeenImage:
    """Decode, sniff and measure one base64 image declared as ``declared``.

    Raises:
        ImageRejected: the payload is not strict base64, not one of ``accepted``, animated
            when that is refused, not what was declared, or over 20 MB decoded.
    """
    try:
        data: bytes = pybase64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRejected(Rejection.UNSUPPORTED, "The image data is not valid base64.") from exc
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(
            Rejection.TOO_LARGE,
            f"The image is {len(data)} bytes after decoding; the limit is {MAX_IMAGE_BYTES}.",
        )
    sniffed = sniff(data)
    if sniffed is None or sniffed.mime not in accepted:
        raise ImageRejected(Rejection.UNSUPPORTED, "The image bytes are not a supported format.")
    if sniffed.frames > 1 and not allow_animated:
        raise ImageRejected(Rejection.UNSUPPORTED, "Animated images are not supported.")
    if sniffed.mime != declared:
        raise ImageRejected(
            Rejection.MISMATCH,
            f"The image was declared as {declared} but its bytes are {sniffed.mime}.",
        )
    width, height = _measure(data)
    return SeenImage(detail=detail, mime=sniffed.mime, width=width, height=height)


def _measure(data: bytes) -> tuple[int, int]:
    # Only the header is read; a huge declared canvas is a size to report, not a bomb to fear.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRejected(Rejection.UNSUPPORTED, "The image could not be read.") from exc
    return int(width), int(height)
