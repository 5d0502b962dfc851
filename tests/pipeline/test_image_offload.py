"""Which decoded images intake reads on the event loop: only those whose header is short."""

import pytest

from aperture.pipeline.images import _short_header
from tests import sample_images
from tests.media.test_dimensions import _SCAN, _frame_header


@pytest.mark.parametrize(
    ("data", "short"),
    [
        (sample_images.jpeg(64, 48), True),
        (sample_images.png(64, 48), True),
        (b"GIF89a" + bytes(32), False),  # a walk over every sub-block
        # A JPEG that Pillow must walk segment by segment: off the loop.
        (b"\xff\xd8" + b"\xff\xfe\x00\x02" * 100_000 + _frame_header(8, 10, 20, 3) + _SCAN, False),
    ],
)
def test_only_images_with_a_short_header_are_read_on_the_event_loop(
    data: bytes, short: bool
) -> None:
    assert _short_header(data) is short
