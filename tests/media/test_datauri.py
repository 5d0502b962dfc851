import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aperture.errors import ImageDecodeError
from aperture.media import parse_data_uri


def test_splits_mime_and_payload_without_copying() -> None:
    uri = "data:image/png;base64,AAAA"
    mime, offset = parse_data_uri(uri)
    assert mime == "image/png"
    assert uri[offset:] == "AAAA"


def test_parameters_before_base64_are_allowed_and_case_is_ignored() -> None:
    mime, offset = parse_data_uri("DATA:Image/JPG;name=a.jpg;BASE64,QUJD")
    assert mime == "image/jpeg"  # image/jpg is accepted on input, never forwarded
    assert offset == len("DATA:Image/JPG;name=a.jpg;BASE64,")


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("data:;base64,AAAA", "no MIME prefix"),
        ("data:base64,AAAA", "Malformed MIME"),
        ("data:image/png,AAAA", "not base64-encoded"),
        ("data:image/png;base64", "no comma"),
        ("iVBORw0KGgo=", "not a data URI"),
    ],
)
def test_malformed_uris_are_decode_errors(uri: str, fragment: str) -> None:
    with pytest.raises(ImageDecodeError, match=fragment) as caught:
        parse_data_uri(uri, param="messages[0].content[0].image_url.url")
    assert caught.value.param == "messages[0].content[0].image_url.url"
    assert caught.value.code == "image_decode_error"


@given(st.binary(max_size=64), st.sampled_from(["image/png", "image/jpeg", "image/webp"]))
def test_any_payload_round_trips(data: bytes, mime: str) -> None:
    uri = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    parsed = parse_data_uri(uri)
    assert parsed.mime == mime
    assert base64.b64decode(uri[parsed.payload_offset :]) == data


@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_is_a_decode_error(text: str) -> None:
    with contextlib.suppress(ImageDecodeError):
        parse_data_uri(text)
