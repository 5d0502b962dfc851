"""Which decoded images intake reads on the event loop: only those whose header is short."""

import struct
import zlib

import pytest

from aperture.pipeline.images import _short_header
from tests import sample_images
from tests.media.test_dimensions import _SCAN, _frame_header


def _png_of_many_chunks() -> bytes:
    png = sample_images.png(8, 8)
    empty = struct.pack(">I", 0) + b"tEXt" + struct.pack(">I", zlib.crc32(b"tEXt"))
    return png[:33] + empty * 100_000 + png[33:]  # after the signature and IHDR


@pytest.mark.parametrize(
    ("data", "short"),
    [
        (sample_images.jpeg(64, 48), True),
        (sample_images.png(64, 48), False),  # a walk over every chunk
        (_png_of_many_chunks(), False),
        (b"GIF89a" + bytes(32), False),  # a walk over every sub-block
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", False),
        # A JPEG that Pillow must walk segment by segment: off the loop.
        (b"\xff\xd8" + b"\xff\xfe\x00\x02" * 100_000 + _frame_header(8, 10, 20, 3) + _SCAN, False),
    ],
)
def test_only_images_with_a_short_header_are_read_on_the_event_loop(
    data: bytes, short: bool
) -> None:
    assert _short_header(data) is short
