"""Make an image acceptable to one target: first frame, format, orientation, size, bytes.

Synchronous and CPU-bound. ``plan`` decides, cheaply and without decoding pixels, whether
an image is fine as it is, needs only its metadata stripped, or needs decoding; the decoding
(``run_pixel_job``) is what callers send to a memory-limited worker (see workers.py). Pixel
and frame counts were checked from the header at intake.
"""

from __future__ import annotations

import io
import warnings
from typing import Literal, NamedTuple

from PIL import Image, ImageOps

from aperture.images._pillow import PILLOW_FORMATS
from aperture.images.limits import TargetImageLimits

__all__ = [
    "NormalizeOptions",
    "Normalized",
    "PixelJob",
    "needs_normalizing",
    "normalize",
    "plan",
    "run_pixel_job",
    "strip_jpeg_metadata",
]

_LOSSLESS_SOURCES = frozenset({"image/png", "image/gif", "image/bmp", "image/tiff"})
_JPEG_QUALITIES = (85, 75, 65, 55)
_ORIENTATION = 0x0112
# APP1 (Exif, XMP), APP13 (IPTC) and comments carry GPS, names and serials; APP0 (JFIF),
# APP2 (ICC colour) and APP14 (Adobe colour transform) change how pixels look: kept.
_DROPPED_JPEG_SEGMENTS = frozenset({0xE1, 0xED, 0xFE})


class NormalizeOptions(NamedTuple):
    detail: Literal["auto", "low", "high"] | None = None
    optimize: bool = False
    strip_metadata: bool = True
    image_count: int = 1


class Normalized(NamedTuple):
    data: bytes
    mime: str
    width: int
    height: int
    changes: tuple[str, ...]


class PixelJob(NamedTuple):
    """Decoding work, picklable for a worker process."""

    data: bytes
    mime: str
    frames: int
    limits: TargetImageLimits
    long_edge: int | None


def needs_normalizing(
    data: bytes,
    mime: str,
    size: tuple[int, int],
    frames: int,
    limits: TargetImageLimits,
    options: NormalizeOptions,
) -> bool:
    """Whether ``normalize`` has anything to do; cheap, no decoding (safe on the event loop)."""
    return _needs_pixels(len(data), mime, size, frames, limits, options) or (
        mime == "image/jpeg" and options.strip_metadata and _jpeg_has_metadata(data)
    )


def _needs_pixels(
    size_bytes: int,
    mime: str,
    size: tuple[int, int],
    frames: int,
    limits: TargetImageLimits,
    options: NormalizeOptions,
) -> bool:
    return (
        (frames > 1 and not limits.animated)
        or mime not in limits.accepted
        or _target_long_edge(size, size_bytes, limits, options) is not None
        or limits.wire_size(size_bytes) > limits.max_bytes
    )


def normalize(
    data: bytes,
    mime: str,
    size: tuple[int, int],
    frames: int,
    limits: TargetImageLimits,
    options: NormalizeOptions,
) -> Normalized | None:
    """The image as ``limits`` wants it, or None when it is fine as it is (all in-process).

    ``changes`` lists what was done (``first_frame``, ``converted``, ``oriented``,
    ``downscaled``, ``recompressed``, ``metadata_stripped``) for logs and headers.
    """
    planned = plan(data, mime, size, frames, limits, options)
    return run_pixel_job(planned) if isinstance(planned, PixelJob) else planned


def plan(
    data: bytes,
    mime: str,
    size: tuple[int, int],
    frames: int,
    limits: TargetImageLimits,
    options: NormalizeOptions,
) -> Normalized | PixelJob | None:
    """None (fine as it is), the result when no pixel needs decoding, or the decoding job."""
    target_edge = _target_long_edge(size, len(data), limits, options)
    has_exif = mime == "image/jpeg" and options.strip_metadata and _jpeg_has_metadata(data)
    if not _needs_pixels(len(data), mime, size, frames, limits, options):
        if not has_exif:
            return None
        if _jpeg_orientation(data) in (None, 1):
            stripped = strip_jpeg_metadata(data)
            return Normalized(stripped, mime, size[0], size[1], ("metadata_stripped",))
    return PixelJob(data, mime, frames, limits, target_edge)


def run_pixel_job(job: PixelJob) -> Normalized:
    """Decode (reduced where the format allows), convert, resize and re-encode."""
    with warnings.catch_warnings():
        # Intake has applied the gateway's own pixel limit; Pillow's lower one only warns.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return _reencode(job.data, job.mime, job.frames, job.limits, job.long_edge)


def _target_long_edge(
    size: tuple[int, int], size_bytes: int, limits: TargetImageLimits, options: NormalizeOptions
) -> int | None:
    edge = limits.max_side_for(options.image_count)
    over_bytes = limits.wire_size(size_bytes) > limits.max_bytes
    if options.optimize or over_bytes:
        # Too many bytes will cost pixels anyway: start from what the model works at, so the
        # decoder can skip most of the work (JPEG draft mode).
        wanted = limits.effective_long_edge
        if options.detail == "low" and limits.low_detail_long_edge is not None:
            wanted = limits.low_detail_long_edge
        if wanted is not None:
            edge = min(edge, wanted)
    return edge if max(size) > edge else None


def _reencode(
    data: bytes, mime: str, frames: int, limits: TargetImageLimits, long_edge: int | None
) -> Normalized:
    changes: list[str] = []
    source = Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[mime]])
    if frames > 1 and not limits.animated:
        changes.append("first_frame")
    if long_edge is not None:
        # draft() lets libjpeg decode at 1/2, 1/4 or 1/8 scale: big photos shrink fast.
        source.draft("RGB", _scaled(source.size, long_edge))
    source.seek(0)
    source.load()
    # The decoded frame is used in place: a copy would double the peak memory. The file
    # object is a BytesIO over ``data``, so leaving it to the garbage collector is harmless.
    image: Image.Image = source if source.mode != "P" else source.convert("RGBA")
    if image.getexif().get(_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
        changes.append("oriented")
    if long_edge is not None and max(image.size) > long_edge:
        image = _resize(image, _scaled(image.size, long_edge))
        changes.append("downscaled")
    elif long_edge is not None:
        changes.append("downscaled")
    out_mime = _output_mime(mime, image, limits)
    if out_mime != mime:
        changes.append("converted")
    if limits.wire_size(len(data)) > limits.max_bytes:
        changes.append("recompressed")
    encoded = _encode(image, out_mime, quality=_JPEG_QUALITIES[0])
    encoded, image = _fit_bytes(encoded, image, out_mime, limits, changes)
    changes.append("metadata_stripped")
    return Normalized(encoded, out_mime, image.width, image.height, tuple(changes))


def _output_mime(mime: str, image: Image.Image, limits: TargetImageLimits) -> str:
    if mime in limits.accepted and mime != "image/gif":
        return mime
    keeps_detail = mime in _LOSSLESS_SOURCES or _has_alpha(image)
    if keeps_detail and "image/png" in limits.accepted:
        return "image/png"
    if "image/jpeg" in limits.accepted:
        return "image/jpeg"
    return next(iter(sorted(limits.accepted)))


def _fit_bytes(
    encoded: bytes,
    image: Image.Image,
    mime: str,
    limits: TargetImageLimits,
    changes: list[str],
) -> tuple[bytes, Image.Image]:
    """Shrink until the provider's byte count fits, losing as little as the model would see.

    First down to the resolution the model works at anyway, then lower quality, then fewer
    pixels in proportion to the bytes still over (one resize per try, not many small ones).
    """
    if limits.wire_size(len(encoded)) <= limits.max_bytes:
        return encoded, image
    if "recompressed" not in changes:
        changes.append("recompressed")
    edge = limits.effective_long_edge
    if edge is not None and max(image.size) > edge:
        image = _resize(image, _scaled(image.size, edge))
        encoded = _encode(image, mime, quality=_JPEG_QUALITIES[0])
        _note_downscaled(changes)
    lossy = mime in ("image/jpeg", "image/webp")
    for quality in _JPEG_QUALITIES[1:] if lossy else ():
        if limits.wire_size(len(encoded)) <= limits.max_bytes:
            return encoded, image
        encoded = _encode(image, mime, quality=quality)
    for _ in range(8):
        over = limits.wire_size(len(encoded)) / limits.max_bytes
        if over <= 1 or min(image.size) <= 16:
            break
        scale = min(0.9, 0.95 / over**0.5)
        image = _resize(
            image, (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        )
        encoded = _encode(image, mime, quality=_JPEG_QUALITIES[-1])
        _note_downscaled(changes)
    return encoded, image


def _note_downscaled(changes: list[str]) -> None:
    if "downscaled" not in changes:
        changes.append("downscaled")


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    # reducing_gap first shrinks by an integer factor with a box filter: the same look to a
    # vision model, several times faster on a 24-megapixel photo.
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)


def _encode(image: Image.Image, mime: str, *, quality: int) -> bytes:
    buffer = io.BytesIO()
    icc = image.info.get("icc_profile")
    match mime:
        case "image/jpeg":
            rgb = _flatten(image) if image.mode not in ("RGB", "L") else image
            rgb.save(buffer, "JPEG", quality=quality, optimize=True, icc_profile=icc)
        case "image/webp":
            image.save(buffer, "WEBP", quality=quality, icc_profile=icc)
        case "image/png":
            image.save(buffer, "PNG", optimize=False, icc_profile=icc)
        case _:
            image.save(buffer, PILLOW_FORMATS[mime])
    return buffer.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    if not _has_alpha(image):
        return image.convert("RGB")
    # JPEG has no alpha: composite on white, as browsers show transparent areas.
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _scaled(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    width, height = size
    scale = long_edge / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each header segment before the scan data."""
    segments: list[tuple[int, int, int]] = []
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segments.append((marker, pos, pos + 2 + length))
        pos += 2 + length
    return segments


def _jpeg_has_metadata(data: bytes) -> bool:
    return any(m in _DROPPED_JPEG_SEGMENTS for m, _, _ in _jpeg_segments(data))


def _jpeg_orientation(data: bytes) -> int | None:
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        value = image.getexif().get(_ORIENTATION)
    return value if isinstance(value, int) else None


def strip_jpeg_metadata(data: bytes) -> bytes:
    """The JPEG without Exif, XMP, IPTC and comments; pixels untouched (no re-encode)."""
    kept = [data[:2]]
    end = 2
    for marker, start, stop in _jpeg_segments(data):
        if marker not in _DROPPED_JPEG_SEGMENTS:
            kept.append(data[start:stop])
        end = stop
    kept.append(data[end:])
    return b"".join(kept)
