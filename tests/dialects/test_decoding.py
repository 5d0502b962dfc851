import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aperture.dialects.decoding import decode_request, top_level_keys
from aperture.errors import InvalidJsonError, InvalidRequestError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6), st.booleans())
def test_top_level_keys_match_the_object(value: dict[str, object], spaced: bool) -> None:
    body = json.dumps(value, separators=(", ", ": ") if spaced else (",", ":")).encode()
    assert top_level_keys(body) == list(value)


def test_escaped_and_nested_lookalikes_are_handled() -> None:
    body = rb'{"model":"a","x":{"model":1,"s":"\"}{"},"app_\u0069d" : "v\\", "y":["model"]}'
    assert top_level_keys(body) == ["model", "x", "app_id", "y"]


@pytest.mark.parametrize("length", [0, 255, 256, 257, 100_000])
@pytest.mark.parametrize("escaped", [False, True])
def test_keys_and_values_long_and_short_are_told_apart(length: int, escaped: bool) -> None:
    text = "k" * length + ('"' if escaped else "")
    value = {text: text, "n": [text, {text: 1}], "last" + text: {"x": text}}
    for separators in ((",", ":"), (" , ", " :\n ")):
        body = json.dumps(value, separators=separators).encode()
        assert top_level_keys(body) == list(value)


class Body(msgspec.Struct):
    model: str
    n: int = 0
    data: object = None


DECODER = msgspec.json.Decoder(Body)


@pytest.mark.parametrize(
    ("body", "error", "param"),
    [
        (b'{"model":"a","model":"b"}', InvalidJsonError, "model"),
        (b'{"model":"a","\\u006dodel":"b"}', InvalidJsonError, "model"),
        (b"{", InvalidJsonError, None),
        (b'{"model":"a","data":' + b"[" * 5000 + b"]" * 5000 + b"}", InvalidJsonError, None),
        (b'{"model":"a","skipped":' + b"[" * 5000 + b"]" * 5000 + b"}", InvalidJsonError, None),
        (b'{"model":"a","n":NaN}', InvalidJsonError, None),
        (b'{"model":1}', InvalidRequestError, "model"),
        (b"{}", InvalidRequestError, "model"),
        (b'{"model":"a","n":1e999}', InvalidRequestError, "n"),
        (b'{"model":"a","n":' + b"9" * 5000 + b"}", InvalidRequestError, "n"),
    ],
)
def test_bad_bodies_are_400s_with_a_param(
    body: bytes, error: type[InvalidRequestError], param: str | None
) -> None:
    with pytest.raises(error) as caught:
        decode_request(body, DECODER)
    assert caught.value.status == 400
    assert caught.value.param == param
