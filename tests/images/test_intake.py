import base64

import pytest

from aperture.errors import (
    ImageDecodeError,
    ImageTooLargeError,
    UnsupportedImageFormatError,
)
from aperture.images import ImageLimits, inspect_data_uri
from tests import sample_images

LIMITS = ImageLimits(
    max_bytes=100_000,
    max_pixels=1_000_000,
    accepted=frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"}),
)
PARAM = "messages[0].content[1].image_url.url"


def test_a_correct_uri_is_returned_unchanged_with_its_measurements() -> None:
    uri = sample_images.data_uri(sample_images.png(30, 20), "image/png")
    canonical, info, _ = inspect_data_uri(uri, LIMITS, param=PARAM)
    assert canonical is uri
    assert (info.mime, info.width, info.height, info.frames) == ("image/png", 30, 20, 1)
    assert info.size_bytes == len(sample_images.png(30, 20))
    assert canonical[info.payload_offset :] == uri.split(",", 1)[1]


def test_a_wrong_declared_type_is_corrected_to_the_real_one() -> None:
    uri = sample_images.data_uri(sample_images.jpeg(10, 10), "image/png")
    canonical, info, _ = inspect_data_uri(uri, LIMITS, param=PARAM)
    assert info.mime == "image/jpeg"
    assert canonical.startswith("data:image/jpeg;base64,")
    assert canonical[info.payload_offset :] == uri.split(",", 1)[1]


def test_jpg_alias_and_parameters_are_normalised() -> None:
    payload = base64.b64encode(sample_images.jpeg()).decode()
    canonical, _, _ = inspect_data_uri(
        f"data:image/jpg;name=x.jpg;base64,{payload}", LIMITS, param=PARAM
    )
    assert canonical == f"data:image/jpeg;base64,{payload}"


@pytest.mark.parametrize(
    "payload",
    ["not base64!", "aGVsbG8=garbage", "aGVs\nbG8=", "aGVsbG8===", "aGV-bG8_", "aGVsbG8"],
)
def test_invalid_base64_is_a_decode_error(payload: str) -> None:
    with pytest.raises(ImageDecodeError) as caught:
        inspect_data_uri(f"data:image/png;base64,{payload}", LIMITS, param=PARAM)
    assert caught.value.param == PARAM


def test_multi_line_base64_says_how_to_fix_it() -> None:
    encoded = base64.encodebytes(sample_images.png(200, 200)).decode()
    with pytest.raises(ImageDecodeError, match="base64 -w 0"):
        inspect_data_uri(f"data:image/png;base64,{encoded}", LIMITS, param=PARAM)


def test_the_byte_limit_is_checked_before_decoding() -> None:
    # Not valid base64 at all: the size check must fire first.
    with pytest.raises(ImageTooLargeError) as caught:
        inspect_data_uri("data:image/png;base64," + "!" * 200_000, LIMITS, param=PARAM)
    assert caught.value.status == 413


def test_the_pixel_limit_is_checked_from_the_header() -> None:
    big = sample_images.png(2000, 1000)  # 2 MP, small file
    with pytest.raises(ImageTooLargeError, match="2000x1000"):
        inspect_data_uri(sample_images.data_uri(big, "image/png"), LIMITS, param=PARAM)


@pytest.mark.parametrize(
    ("data", "error", "fragment"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", UnsupportedImageFormatError, "svg"),
        (b"%PDF-1.4 ...", UnsupportedImageFormatError, "application/pdf"),
        (sample_images.bmp(), UnsupportedImageFormatError, "image/bmp"),
        (b"just some text", ImageDecodeError, "not a recognisable image"),
        (sample_images.png()[:20], ImageDecodeError, "PNG is truncated"),
    ],
)
def test_what_is_not_an_accepted_image_is_refused(
    data: bytes, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        inspect_data_uri(sample_images.data_uri(data, "image/png"), LIMITS, param=PARAM)


def test_animated_images_report_their_frames() -> None:
    _, info, _ = inspect_data_uri(
        sample_images.data_uri(sample_images.gif(frames=4), "image/gif"), LIMITS, param=PARAM
    )
    assert info.frames == 4


def test_bytes_the_decoder_already_decoded_are_checked_like_any_others() -> None:
    from aperture.media.payloads import Payload

    data = sample_images.jpeg(40, 30)
    uri = sample_images.data_uri(data, "image/jpeg")
    offset = len("data:image/jpeg;base64,")
    kept = inspect_data_uri(uri, LIMITS, param=PARAM, decoded=Payload(offset, data))
    assert kept == inspect_data_uri(uri, LIMITS, param=PARAM)
    assert kept.data is data, "not decoded a second time"
    # Bytes that are no image are refused as if intake had decoded them itself.
    with pytest.raises(ImageDecodeError):
        inspect_data_uri(uri, LIMITS, param=PARAM, decoded=Payload(offset, b"not an image"))
    # Kept for another offset, they are not this payload: it is decoded afresh.
    elsewhere = inspect_data_uri(uri, LIMITS, param=PARAM, decoded=Payload(offset - 1, b"?"))
    assert elsewhere.data == data
    # And the byte limit still holds, before anything is used.
    with pytest.raises(ImageTooLargeError):
        inspect_data_uri(
            uri, LIMITS._replace(max_bytes=100), param=PARAM, decoded=Payload(offset, data)
        )
