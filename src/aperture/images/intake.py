"""Check an image before anything leaves: decode strictly, sniff, measure, limit.

Everything here is synchronous; the pipeline runs large images in a worker thread.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, NamedTuple

import pybase64

from aperture.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageFormatError
from aperture.images.formats import PILLOW_FORMATS
from aperture.media.datauri import parse_data_uri
from aperture.media.dimensions import jpeg_size
from aperture.media.payloads import Payload
from aperture.media.sniff import sniff, sniff_non_image
from aperture.model import InlineImage

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["ImageLimits", "Inspected", "inspect_bytes", "inspect_data_uri"]


class ImageLimits(NamedTuple):
    max_bytes: int
    max_pixels: int
    accepted: frozenset[str]
    """MIME types intake takes; normalisation later converts them for each target."""
    max_frames: int = 1000


class Inspected(NamedTuple):
    url: str
    """The canonical data URI: the sniffed MIME type, then the base64 payload."""
    info: InlineImage
    data: bytes
    """The decoded bytes, for normalisation; never logged or stored."""


def inspect_data_uri(
    uri: str, limits: ImageLimits, *, param: str, decoded: Payload | None = None
) -> Inspected:
    """Validate a data URI and return it in canonical form with what intake learned.

    When the client already declared the right type, its own string is returned and no
    copy of the payload is made. ``decoded`` is what the request decoder already decoded
    of this very string (strictly, as here): used when it starts where the payload does.

    Raises:
        ImageDecodeError: no MIME prefix, invalid base64, or bytes that are not an image.
        ImageTooLargeError: over the byte limit (checked before decoding), the pixel
            limit or the frame limit (both read from the header).
        UnsupportedImageFormatError: not a raster image (SVG, PDF) or not accepted.
    """
    declared, offset = parse_data_uri(uri, param=param)
    encoded_len = len(uri) - offset
    if encoded_len // 4 * 3 > limits.max_bytes:
        raise ImageTooLargeError(
            f"Image is about {encoded_len // 4 * 3} bytes; the limit is {limits.max_bytes} bytes.",
            param=param,
        )
    if decoded is not None and decoded.offset == offset:
        data = decoded.data
    else:
        data = _decode_base64(uri, offset, param)
    info = inspect_bytes(data, limits, param=param, declared=declared)
    if uri[5 : 5 + len(info.mime)] != info.mime or offset != len(info.mime) + 13:
        prefix = f"data:{info.mime};base64,"
        uri, offset = prefix + uri[offset:], len(prefix)
    return Inspected(uri, _with_offset(info, offset), data)


def inspect_bytes(
    data: bytes, limits: ImageLimits, *, param: str, declared: str = "", source: str = "inline"
) -> InlineImage:
    """What the bytes really are, measured from the header, within the limits."""
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
        said = f" (declared {declared})" if declared else ""
        raise ImageDecodeError(f"The data is not a recognisable image{said}.", param=param)
    mime, frames, damage = sniffed
    if mime not in limits.accepted:
        accepted = ", ".join(sorted(limits.accepted))
        raise UnsupportedImageFormatError(
            f"{mime} images are not accepted here (accepted: {accepted}).", param=param
        )
    if damage is not None:
        # The framing is broken: no provider would decode it, so none is paid to say so.
        raise ImageDecodeError(f"The image cannot be used: {damage}.", param=param)
    if frames > limits.max_frames:
        raise ImageTooLargeError(
            f"Image has {frames} frames; the limit is {limits.max_frames}.", param=param
        )
    width, height = _measure(data, mime, param)
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"Image is {width}x{height} ({width * height} pixels); "
            f"the limit is {limits.max_pixels} pixels.",
            param=param,
        )
    return InlineImage(
        mime=mime,
        width=width,
        height=height,
        size_bytes=len(data),
        frames=frames,
        payload_offset=0,
        source=source,
    )


def data_uri_for(data: bytes, info: InlineImage) -> tuple[str, InlineImage]:
    """A canonical data URI for bytes the gateway produced (fetched or normalised)."""
    prefix = f"data:{info.mime};base64,"
    encoded: bytes = pybase64.b64encode(data)
    return prefix + encoded.decode("ascii"), _with_offset(info, len(prefix))


def _with_offset(info: InlineImage, offset: int) -> InlineImage:
    return InlineImage(
        mime=info.mime,
        width=info.width,
        height=info.height,
        size_bytes=info.size_bytes,
        frames=info.frames,
        payload_offset=offset,
        source=info.source,
    )


def _decode_base64(uri: str, offset: int, param: str) -> bytes:
    payload = uri[offset:]
    if not payload:
        raise ImageDecodeError("The data URI holds no data.", param=param)
    try:
        decoded: bytes = pybase64.b64decode(payload, validate=True)
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
    return decoded


def _measure(data: bytes, mime: str, param: str) -> tuple[int, int]:
    """Width and height from the header alone; Pillow's open() does not decode pixels."""
    read = jpeg_size(data) if mime == "image/jpeg" else None
    if read is not None:
        width, height = read
        if width <= 0 or height <= 0:
            raise ImageDecodeError(f"The {mime} image has no pixels.", param=param)
        return width, height
    from aperture.images._pillow import Image as PILImage  # Pillow loads with the first image

    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies; Pillow's warning would only be noise here.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data), formats=[PILLOW_FORMATS[mime]]) as image:
                width, height = image.size
                whole = mime != "image/tiff" or _tiff_is_whole(image, len(data))
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
    if not whole:
        raise ImageDecodeError(
            "The image cannot be used: the TIFF is truncated (its strips or tiles run past "
            "the end).",
            param=param,
        )
    return width, height


# TIFF tags locating the pixel data: StripOffsets/StripByteCounts, TileOffsets/TileByteCounts.
_TIFF_DATA = ((273, 279), (324, 325))


def _tiff_is_whole(image: PILImage.Image, size: int) -> bool:
    """Whether every strip or tile of the first page lies inside the bytes (read from the IFD)."""
    tags = getattr(image, "tag_v2", {})
    for offsets_tag, counts_tag in _TIFF_DATA:
        offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
        if offsets is None or counts is None:
            continue
        offsets = offsets if isinstance(offsets, tuple) else (offsets,)
        counts = counts if isinstance(counts, tuple) else (counts,)
        return all(o + c <= size for o, c in zip(offsets, counts, strict=False))
    return True
