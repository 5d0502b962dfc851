import pytest

from aperture.media import sniff
from aperture.media.sniff import sniff_non_image
from tests import sample_images


@pytest.mark.parametrize(
    ("data", "mime", "frames"),
    [
        (sample_images.png(), "image/png", 1),
        (sample_images.jpeg(), "image/jpeg", 1),
        (sample_images.gif(), "image/gif", 1),
        (sample_images.gif(frames=3), "image/gif", 3),
        (sample_images.webp(), "image/webp", 1),
        (sample_images.webp(frames=2), "image/webp", 2),
        (sample_images.bmp(), "image/bmp", 1),
        (b"II*\x00" + bytes(28), "image/tiff", 1),
        (b"\x00\x00\x00\x18ftypheic" + bytes(20), "image/heic", 1),
        (b"\x00\x00\x00\x18ftypavif" + bytes(20), "image/avif", 1),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avif" + bytes(8), "image/avif", 1),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "image/heif", 1),
    ],
)
def test_real_format_and_frames_come_from_the_bytes(data: bytes, mime: str, frames: int) -> None:
    sniffed = sniff(data)
    assert sniffed is not None
    assert (sniffed.mime, sniffed.frames) == (mime, frames)


def test_apng_frame_count_comes_from_actl() -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    frames = [Image.new("RGB", (4, 4), c) for c in ("red", "green", "blue")]
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])
    assert sniff(buffer.getvalue()) == ("image/png", 3, None)


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"%PDF-1.7\n...", "application/pdf"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        (b"  <?xml version='1.0'?><svg/>", "image/svg+xml"),
    ],
)
def test_documents_are_named(data: bytes, mime: str) -> None:
    assert sniff(data) is None
    assert sniff_non_image(data) == mime


def test_unknown_bytes_are_not_an_image() -> None:
    assert sniff(b"hello world, not an image") is None
    assert sniff(b"") is None
