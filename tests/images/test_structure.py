"""Truncated and corrupt images are found from their framing alone, whole ones pass."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image

from aperture.errors import ImageDecodeError
from aperture.images import ImageLimits, inspect_bytes
from aperture.images.limits import CONVERTIBLE_MIME_TYPES
from aperture.media import sniff
from tests import sample_images

LIMITS = ImageLimits(max_bytes=10_000_000, max_pixels=10_000_000, accepted=CONVERTIBLE_MIME_TYPES)


def noise(fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image = Image.effect_noise((120, 80), 60).convert("RGB")
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def apng() -> bytes:
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


WHOLE: dict[str, Callable[[], bytes]] = {
    "png": lambda: noise("PNG"),
    "apng": apng,
    "jpeg": lambda: noise("JPEG"),
    "progressive-jpeg": lambda: noise("JPEG", progressive=True),
    "jpeg-exif": lambda: sample_images.jpeg_with_exif(60, 40, orientation=6, gps=True),
    "gif": lambda: sample_images.gif(30, 20),
    "animated-gif": lambda: sample_images.gif(16, 16, frames=4),
    "interlaced-gif": lambda: noise("GIF", interlace=True),
    "webp": lambda: noise("WEBP"),
    "webp-odd-size": lambda: sample_images.webp(21, 11),
    "lossless-webp": lambda: noise("WEBP", lossless=True),
    "animated-webp": lambda: sample_images.webp(frames=3),
    "bmp": lambda: sample_images.bmp(30, 20),
    "tiff": lambda: sample_images.tiff(60, 40),
    "heic": lambda: sample_images.heic(40, 30),
    "avif": lambda: sample_images.avif(40, 30),
}


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_whole_images_pass(name: str) -> None:
    data = WHOLE[name]()
    sniffed = sniff(data)
    assert sniffed is not None
    assert sniffed.damage is None
    inspect_bytes(data, LIMITS, param="p")


@pytest.mark.parametrize("name", sorted(WHOLE))
@pytest.mark.parametrize("keep", [0.5, 0.9, -1])
def test_cut_images_are_a_decode_error(name: str, keep: float) -> None:
    data = WHOLE[name]()
    cut = data[: int(len(data) * keep)] if keep > 0 else data[:keep]
    with pytest.raises(ImageDecodeError) as caught:
        inspect_bytes(cut, LIMITS, param="messages[0].content[1].image_url.url")
    assert caught.value.param == "messages[0].content[1].image_url.url"


def test_data_after_the_jpeg_end_marker_is_accepted() -> None:
    # Phones append Motion Photo videos and maker data after EOI; decoders ignore them.
    data = noise("JPEG") + b"\x00\x00\x00\x18ftypmp42" + bytes(4000)
    assert sniff(data) == ("image/jpeg", 1, None)


def test_data_after_png_iend_and_gif_trailer_is_accepted() -> None:
    assert sniff(noise("PNG") + bytes(16)) == ("image/png", 1, None)
    assert sniff(sample_images.gif() + b"\x00") == ("image/gif", 1, None)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d[:19] + bytes([d[19] ^ 1]) + d[20:], "IHDR checksum"),  # width, not its CRC
        (lambda d: d[:12] + b"IDAT" + d[16:], "IHDR"),
        (lambda d: d[:33] + d[d.index(b"IEND") - 4 :], "no image data"),
    ],
)
def test_corrupt_png_framing_is_named(mutate: Callable[[bytes], bytes], reason: str) -> None:
    sniffed = sniff(mutate(noise("PNG")))
    assert sniffed is not None
    assert sniffed.damage is not None
    assert reason in sniffed.damage


def test_a_jpeg_without_a_frame_header_is_refused() -> None:
    data = noise("JPEG")
    sof = data.index(b"\xff\xc0")
    length = int.from_bytes(data[sof + 2 : sof + 4], "big")
    sniffed = sniff(data[:sof] + data[sof + 2 + length :])
    assert sniffed is not None
    assert sniffed.damage == "the JPEG has no frame header before its image data"


def test_a_webp_shorter_than_its_riff_size_is_refused() -> None:
    data = noise("WEBP")
    grown = data[:4] + (len(data) + 100 - 8).to_bytes(4, "little") + data[8:]
    sniffed = sniff(grown)
    assert sniffed is not None
    assert sniffed.damage is not None
    assert "RIFF size" in sniffed.damage
