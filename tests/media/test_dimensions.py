import io

import pytest
from PIL import Image

from aperture.media.dimensions import jpeg_size
from tests import sample_images


def _jpeg(mode: str, size: tuple[int, int], **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "JPEG", **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        sample_images.jpeg(64, 48),
        sample_images.jpeg_with_exif(300, 200, orientation=6, gps=True),
        _jpeg("L", (123, 45)),
        _jpeg("CMYK", (7, 3000)),
        _jpeg("RGB", (640, 1), progressive=True),
    ],
)
def test_a_plain_jpeg_is_measured_as_pillow_measures_it(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert jpeg_size(data) == image.size


def _frame_header(bits: int, height: int, width: int, components: int) -> bytes:
    body = bytes([bits]) + height.to_bytes(2, "big") + width.to_bytes(2, "big")
    body += bytes([components]) + bytes(3 * components)
    return b"\xff\xc0" + (len(body) + 2).to_bytes(2, "big") + body


_SCAN = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 16 + b"\xff\xd9"


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8" + _frame_header(12, 10, 10, 3) + _SCAN,  # 12-bit: Pillow refuses it
        b"\xff\xd8" + _frame_header(8, 10, 10, 2) + _SCAN,  # two components: refused too
        b"\xff\xd8" + _frame_header(8, 20000, 20000, 3) + _SCAN,  # over Pillow's bomb line
        b"\xff\xd8\xff\x02\x00\x02" + _frame_header(8, 10, 10, 3) + _SCAN,  # a reserved marker
        b"\xff\xd8" + _SCAN,  # no frame header
        b"\xff\xd8" + _frame_header(8, 10, 10, 3),  # no scan
        b"\xff\xd8" + _frame_header(8, 10, 10, 3)[:7],  # cut inside the frame header
        b"\xff\xd8\x00" + _frame_header(8, 10, 10, 3) + _SCAN,  # no marker where one belongs
    ],
)
def test_anything_off_the_plain_path_is_left_to_pillow(data: bytes) -> None:
    assert jpeg_size(data) is None


def test_the_last_frame_header_before_the_scan_wins_as_in_pillow() -> None:
    data = b"\xff\xd8" + _frame_header(8, 10, 20, 3) + _frame_header(8, 30, 40, 3) + _SCAN
    with Image.open(io.BytesIO(data)) as image:
        assert jpeg_size(data) == image.size == (40, 30)


@pytest.mark.parametrize(
    "padding",
    [
        b"\xff\xfe\x00\x02" * 1_000_000,  # a million empty comments: seconds of walking
        b"\xff" * 4_000_000 + b"\xfe\x00\x02",  # megabytes of fill bytes before one marker
    ],
)
def test_a_header_made_to_be_walked_for_ever_is_left_to_pillow(padding: bytes) -> None:
    # The walk may run on the event loop: it gives up after a few dozen segments (or fill
    # bytes), and Pillow, in a worker thread, says what the file is.
    data = b"\xff\xd8" + padding + _frame_header(8, 10, 20, 3) + _SCAN
    assert jpeg_size(data) is None
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (20, 10)


def test_a_camera_jpeg_with_many_segments_is_still_read_here() -> None:
    data = b"\xff\xd8" + b"\xff\xe1\x00\x10" + b"\x00" * 14
    data += b"\xff\xfe\x00\x04ok" * 40 + b"\xff" * 7 + _frame_header(8, 10, 20, 3)[1:] + _SCAN
    with Image.open(io.BytesIO(data)) as image:
        assert jpeg_size(data) == image.size == (20, 10)
