"""Make an image acceptable to one target: first frame, format, orientation, size, bytes.

Synchronous and CPU-bound. ``plan`` decides, cheaply and without decoding pixels, whether
an image is fine as it is, needs only its metadata stripped, or needs decoding; the decoding
(``run_pixel_job``) is what callers send to a memory-limited worker (see workers.py). Pixel
and frame counts were checked from the header at intake.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import TYPE_CHECKING, Literal, NamedTuple

from aperture.images.formats import PILLOW_FORMATS
from aperture.images.limits import TargetImageLimits

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "NormalizeOptions",
    "Normalized",
    "PixelJob",
    "fit_bytes",
    "needs_normalizing",
    "normalize",
    "plan",
    "run_pixel_job",
    "strip_jpeg_metadata",
]

_LOSSLESS_SOURCES = frozenset({"image/png", "image/gif", "image/bmp", "image/tiff"})
_JPEG_QUALITIES = (85, 75, 65, 55)
_LOSSY = frozenset({"image/jpeg", "image/webp"})
# Lossless and row by row: what a few bands of rows can stand for (see _banded_size).
_BANDED = frozenset({"image/png", "image/bmp", "image/tiff"})
# Fitting a byte cap: aim this far under it (a size is predicted, not known), give up after
# this many resizes, and trust a banded estimate (2 MP and up) when it is this far over.
_AIM = 0.9
_MAX_SHRINKS = 8
_BANDED_MIN_PIXELS = 2_000_000
_BANDS = 8
_CLEARLY_OVER = 1.1
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
    from aperture.images._pillow import Image  # Pillow loads with the first image

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
    from aperture.images._pillow import Image, ImageOps  # Pillow loads with the first image

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
    encoded, image = fit_bytes(image, out_mime, limits, changes)
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


class _Attempt(NamedTuple):
    """One try at the byte cap: the encoding, or only its size estimated from bands."""

    data: bytes | None
    wire_size: int
    pixels: int

    def fits(self, limits: TargetImageLimits) -> bool:
        return self.data is not None and self.wire_size <= limits.max_bytes


def fit_bytes(
    image: Image.Image, mime: str, limits: TargetImageLimits, changes: list[str]
) -> tuple[bytes, Image.Image]:
    """The image encoded within the provider's byte cap, losing as little as the model sees.

    First down to the resolution the model works at anyway, then lower quality, then fewer
    pixels, each size predicted from the encodings so far: bytes grow as a power of the pixel
    count, the power is fitted to the last two tries (a lossless encoding of a smooth image
    shrinks slower than its pixels), and the aim is a little under the cap. A lossless image
    that is clearly over is not encoded whole: bands of it estimate its size at a tenth of
    the cost. So a 40 MP PNG fits in two or three encodings, mostly small ones.
    """
    quality = _JPEG_QUALITIES[0]
    attempt = _attempt(image, mime, limits, quality)
    if not attempt.fits(limits):
        if "recompressed" not in changes:
            changes.append("recompressed")
        edge = limits.effective_long_edge
        if edge is not None and max(image.size) > edge:
            image = _resize(image, _scaled(image.size, edge))
            attempt = _attempt(image, mime, limits, quality)
            _note_downscaled(changes)
        for quality in _JPEG_QUALITIES[1:] if mime in _LOSSY else ():
            if attempt.fits(limits):
                break
            attempt = _attempt(image, mime, limits, quality)
        # Each try resizes the same image: no blur piles up, and its pixel count is exact.
        full, tries = image, [attempt]
        for _ in range(_MAX_SHRINKS):
            if attempt.fits(limits) or min(image.size) <= 16:
                break
            # Always fewer pixels than the last try, which was over: the loop cannot stall.
            wanted = min(_pixels_to_fit(tries, limits.max_bytes), attempt.pixels * 0.9)
            image = _resize(full, _area(full.size, wanted))
            attempt = _attempt(image, mime, limits, quality)
            tries.append(attempt)
            _note_downscaled(changes)
        if attempt.fits(limits) and len(tries) > 1 and attempt.wire_size < limits.max_bytes / 2:
            # Far under (bytes fell faster than the pixels, as noise does): one step back up,
            # now that a try on each side of the cap pins the curve down.
            wanted = _pixels_to_fit(tries, limits.max_bytes)
            if wanted > attempt.pixels * 1.2:
                bigger = _resize(full, _area(full.size, wanted))
                second = _attempt(bigger, mime, limits, quality)
                if second.fits(limits):
                    image, attempt = bigger, second
    # Out of tries on an estimate: what there is, encoded (over the cap only past 16 pixels).
    data = attempt.data if attempt.data is not None else _encode(image, mime, quality=quality)
    return data, image


def _attempt(image: Image.Image, mime: str, limits: TargetImageLimits, quality: int) -> _Attempt:
    pixels = image.width * image.height
    if mime in _BANDED and pixels >= _BANDED_MIN_PIXELS:
        guess = limits.wire_size(_banded_size(image, mime))
        if guess > limits.max_bytes * _CLEARLY_OVER:
            return _Attempt(None, guess, pixels)
    data = _encode(image, mime, quality=quality)
    return _Attempt(data, limits.wire_size(len(data)), pixels)


def _banded_size(image: Image.Image, mime: str) -> int:
    """The size ``image`` would encode to, from evenly spread bands of its rows.

    Lossless encoders work row by row (PNG's filters see one row back, deflate 32 KB), so a
    band's bytes per row are the whole image's, to a percent or two on photos and noise.
    """
    rows = max(8, image.height // (_BANDS * 8))
    total = 0
    for band in range(_BANDS):
        top = (image.height - rows) * (2 * band + 1) // (2 * _BANDS)
        strip = image.crop((0, top, image.width, top + rows))
        strip.info.pop("icc_profile", None)  # counted once, not once per band
        total += len(_encode(strip, mime, quality=_JPEG_QUALITIES[0]))
    return total * image.height // (rows * _BANDS)


def _area(size: tuple[int, int], pixels: float) -> tuple[int, int]:
    scale = math.sqrt(pixels / (size[0] * size[1]))
    return max(1, int(size[0] * scale)), max(1, int(size[1] * scale))


def _pixels_to_fit(tries: list[_Attempt], max_bytes: int) -> float:
    """How many pixels should encode to a little under ``max_bytes``, from the tries so far:
    bytes ∝ pixels^k, k fitted to the last two tries, else 1."""
    last = tries[-1]
    power = 1.0
    if len(tries) > 1:
        before = tries[-2]
        if before.pixels != last.pixels and before.wire_size != last.wire_size:
            power = math.log(before.wire_size / last.wire_size) / math.log(
                before.pixels / last.pixels
            )
            power = min(max(power, 0.3), 1.5)
    ratio: float = (max_bytes * _AIM / last.wire_size) ** (1 / power)
    return max(256.0, last.pixels * ratio)


def _note_downscaled(changes: list[str]) -> None:
    if "downscaled" not in changes:
        changes.append("downscaled")


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    from aperture.images._pillow import Image  # Pillow loads with the first image

    # reducing_gap first shrinks by an integer factor with a box filter: the same look to a
    # vision model, several times faster on a 24-megapixel photo. Hamming (support 1) keeps
    # bicubic's sharpness on a downscale (the encoded sizes differ by 2%) at 15% less CPU.
    return image.resize(size, Image.Resampling.HAMMING, reducing_gap=2.0)


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
    from aperture.images._pillow import Image  # Pillow loads with the first image

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
    from aperture.images._pillow import Image  # Pillow loads with the first image

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
