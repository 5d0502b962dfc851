"""Check an inline image before anything leaves: decode strictly, sniff, measure, limit."""

from __future__ import annotations

import io
import warnings
from typing import NamedTuple

import pybase64
from PIL import Image as PILImage

from aperture.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageFormatError
from aperture.images.datauri import parse_data_uri
from aperture.images.sniff import sniff, sniff_non_image
from aperture.model import InlineImage

__all__ = ["ImageLimits", "inspect_data_uri"]

# The formats Pillow may parse headers of: an explicit allowlist, never its full plugin set.
_PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
}


class ImageLimits(NamedTuple):
    max_bytes: int
    max_pixels: int
    accepted: frozenset[str]
    """MIME types the target takes; anything else is refused until it can be converted."""


def inspect_data_uri(uri: str, limits: ImageLimits, *, param: str) -> tuple[str, InlineImage]:
    """Validate a data URI and return it in canonical form with what intake learned.

    The canonical URI carries the sniffed MIME type; when the client already declared it
    correctly, the client's own string is returned and no copy of the payload is made.

    Raises:
        ImageDecodeError: no MIME prefix, invalid base64, or bytes that are not an image.
        ImageTooLargeError: over the byte limit (checked before decoding) or the pixel limit.
        UnsupportedImageFormatError: a format the target does not accept (SVG, PDF, HEIC...).
    """
    declared, offset = parse_data_uri(uri, param=param)
    encoded_len = len(uri) - offset
    if encoded_len // 4 * 3 > limits.max_bytes:
        raise ImageTooLargeError(
            f"Image is about {encoded_len // 4 * 3} bytes; the limit is {limits.max_bytes} bytes.",
            param=param,
        )
    data = _decode_base64(uri, offset, param)
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(
            f"Image is {len(data)} bytes; the limit is {limits.max_bytes} bytes.", param=param
        )
    sniffed = sniff(data)
    if sniffed is None:
        document = sniff_non_image(data)
        if document is not None:
            raise UnsupportedImageFormatError(
                f"{document} is not a raster image; send PNG, JPEG, GIF or WebP.", param=param
            )
        raise ImageDecodeError(
            f"The data is not a recognisable image (declared {declared}).", param=param
        )
    mime, frames = sniffed
    if mime not in limits.accepted:
        accepted = ", ".join(sorted(limits.accepted))
        raise UnsupportedImageFormatError(
            f"{mime} images are not accepted here (accepted: {accepted}).", param=param
        )
    width, height = _measure(data, mime, param)
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"Image is {width}x{height} ({width * height} pixels); "
            f"the limit is {limits.max_pixels} pixels.",
            param=param,
        )
    if mime != declared or uri[5 : 5 + len(mime)] != mime or offset != len(mime) + 13:
        prefix = f"data:{mime};base64,"
        uri, offset = prefix + uri[offset:], len(prefix)
    info = InlineImage(
        mime=mime,
        width=width,
        height=height,
        size_bytes=len(data),
        frames=frames,
        payload_offset=offset,
    )
    return uri, info


def _decode_base64(uri: str, offset: int, param: str) -> bytes:
    payload = uri[offset:]
    if not payload:
        raise ImageDecodeError("The data URI holds no data.", param=param)
    try:
        decoded: bytes = pybase64.b64decode(payload, validate=True)
        return decoded
    except (ValueError, TypeError) as exc:
        hint = (
            " It contains line breaks: encode with `base64 -w 0` for a single line."
            if "\n" in payload
            else ""
        )
        raise ImageDecodeError(
            "The image data is not valid base64 (standard alphabet, padded, no whitespace)." + hint,
            param=param,
        ) from exc


def _measure(data: bytes, mime: str, param: str) -> tuple[int, int]:
    """Width and height from the header alone; Pillow's open() does not decode pixels."""
    pillow_format = _PILLOW_FORMATS.get(mime)
    if pillow_format is None:
        raise UnsupportedImageFormatError(f"{mime} images are not accepted here.", param=param)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies; Pillow's warning would only be noise here.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data), formats=[pillow_format]) as image:
                width, height = image.size
    except PILImage.DecompressionBombError as exc:
        raise ImageTooLargeError("Image has too many pixels to process.", param=param) from exc
    # Pillow signals malformed headers with many exception types (OSError, SyntaxError,
    # ValueError, struct.error, EOFError...); all mean the same thing to the client.
    except Exception as exc:
        raise ImageDecodeError(
            f"The {mime} image is corrupt or truncated and cannot be read.", param=param
        ) from exc
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"The {mime} image has no pixels.", param=param)
    return width, height
