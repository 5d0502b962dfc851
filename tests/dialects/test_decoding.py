import base64
import json
from typing import Annotated

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aperture.dialects import decoding
from aperture.dialects.decoding import check_utf8, decode_request, top_level_keys
from aperture.errors import (
    MESSAGE_CHARS,
    PARAM_CHARS,
    QUOTE_CHARS,
    InvalidJsonError,
    InvalidRequestError,
    clip,
    quote,
)
from aperture.media.payloads import Payloads

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


BAD_UTF8 = [b"\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf"]


@given(st.text(alphabet="aé€😀", max_size=12), st.integers(0, 12), st.sampled_from(BAD_UTF8))
def test_check_utf8_names_the_first_bad_byte_across_windows(
    text: str, cut: int, bad: bytes
) -> None:
    raw = text.encode()
    body = raw[:cut] + bad + raw[cut:]
    try:
        body.decode()
    except UnicodeDecodeError as exc:
        expected = exc.start
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decoding, "_UTF8_WINDOW", 3)  # sequences cut by every window edge
        with pytest.raises(InvalidJsonError) as caught:
            check_utf8(body)
    assert f"at byte {expected}." in caught.value.message


@given(st.text(max_size=40))
def test_check_utf8_passes_every_valid_text(text: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decoding, "_UTF8_WINDOW", 3)
        check_utf8(text.encode(errors="ignore"))  # lone surrogates are not text


def test_a_bad_byte_in_a_passed_through_field_is_invalid_json() -> None:
    with pytest.raises(InvalidJsonError) as caught:
        decode_request(b'{"model":"a","data":{"k\xff":"v"}}', DECODER)
    assert "at byte 23." in caught.value.message


def test_quote_cuts_long_values_and_says_how_long() -> None:
    assert quote("gpt-4o") == "'gpt-4o'"
    assert quote(7) == "'7'"
    quoted = quote("x" * 50_000_000)
    assert quoted == f"'{'x' * QUOTE_CHARS}…' (50000000 characters)"
    assert quote("a\nb\x00") == repr("a\nb\x00")  # no forged log lines
    assert clip("y" * 500) == "y" * 200 + "… (500 characters)"


def test_every_error_is_bounded_whatever_its_maker_passed() -> None:
    error = InvalidRequestError("m" * 10_000_000, param="p" * 1_000_000)
    assert len(error.message) < MESSAGE_CHARS + 40
    assert str(error) == error.message
    assert error.param is not None and len(error.param) < PARAM_CHARS + 40


# ---- large base64 strings are cut out before decoding and put back


class Part(msgspec.Struct):
    kind: str
    url: str = ""
    blob: bytes = b""


class Spliced(msgspec.Struct, frozen=True):
    model: str
    parts: list[Part]
    extra: dict[str, object] = {}
    pair: tuple[str, ...] = ()


SPLICED = msgspec.json.Decoder(Spliced)
B64 = base64.b64encode(bytes(range(256)) * 400).decode()  # 136 KB, over the cut threshold


def test_large_base64_strings_decode_exactly_wherever_they_are() -> None:
    value = {
        "model": "m",
        "parts": [{"kind": "a", "url": "data:image/png;base64," + B64}, {"kind": "b", "url": B64}],
        "extra": {"nested": [B64, {"deep": "data:application/pdf;base64," + B64}]},
        "pair": [B64, "x"],
    }
    body = json.dumps(value).encode()
    assert decoding._scan(body, splice=True)[1], "the strings are cut out"
    decoded, keys = decode_request(body, SPLICED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decoding, "_SPLICE_MIN", len(body) + 1)  # the plain path only
        assert decoded == decode_request(body, SPLICED)[0]
    assert keys == ["model", "parts", "extra", "pair"]


@pytest.mark.parametrize(
    "payload",
    [
        B64[:-1] + "!",  # not base64: decoded as any string
        B64.replace("/", "\\/"),  # a JSON escape inside: decoded as any string
        "data:image/png;base64," + B64 + "=",  # bad padding after a header
        "é" + B64,  # not ASCII
        "data:image/p\\ng;base64," + B64,  # a JSON escape inside the data URI's header
    ],
)
def test_strings_that_are_not_plain_base64_decode_as_sent(payload: str) -> None:
    body = json.dumps({"model": "m", "parts": [{"kind": "a", "url": payload}]}).encode()
    body = body.replace(b"\\\\/", b"\\/")  # the escaped slash as a client sends it
    decoded, _ = decode_request(body, SPLICED)
    assert decoded.parts[0].url == json.loads(body)["parts"][0]["url"]


def test_a_bytes_field_still_gets_its_decoded_bytes() -> None:
    body = json.dumps({"model": "m", "parts": [{"kind": "a", "blob": B64}]}).encode()
    decoded, _ = decode_request(body, SPLICED)
    assert decoded.parts[0].blob == bytes(range(256)) * 400


@pytest.mark.parametrize(
    ("body", "error", "param"),
    [
        (
            b'{"model":"m","parts":[{"kind":"a","url":"' + B64.encode() + b'"}',
            InvalidJsonError,
            None,
        ),
        (b'{"model":"m","parts":[{"kind":"a","url":"' + B64.encode(), InvalidJsonError, None),
        (
            b'{"model":"m","parts":[{"kind":1,"url":"' + B64.encode() + b'"}]}',
            InvalidRequestError,
            "parts[0].kind",
        ),
        (
            b'{"model":"m","model":"n","parts":[{"kind":"a","url":"' + B64.encode() + b'"}]}',
            InvalidJsonError,
            "model",
        ),
        (
            b'{"model":"m","parts":[{"kind":"a","url":"' + B64.encode() + b'","x\xff":1}]}',
            InvalidJsonError,
            None,
        ),
    ],
)
def test_errors_with_a_large_string_are_the_plain_decoders(
    body: bytes, error: type[InvalidRequestError], param: str | None
) -> None:
    with pytest.raises(error) as spliced:
        decode_request(body, SPLICED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decoding, "_SPLICE_MIN", len(body) + 1)  # the plain path only
        with pytest.raises(error) as plain:
            decode_request(body, SPLICED)
    assert (spliced.value.message, spliced.value.param) == (plain.value.message, param)


def test_a_raw_value_holding_a_large_string_decodes_as_sent() -> None:
    body = json.dumps({"a": B64, "b": [B64]}).encode()
    decoded, _ = decode_request(body, msgspec.json.Decoder(dict[str, msgspec.Raw]))
    assert msgspec.json.decode(decoded["b"]) == [B64]


class Limited(msgspec.Struct):
    model: str
    parts: list[dict[str, Annotated[str, msgspec.Meta(max_length=100)]]]


def test_a_type_that_limits_strings_sees_every_string_itself() -> None:
    body = json.dumps({"model": "m", "parts": [{"url": B64}]}).encode()
    with pytest.raises(InvalidRequestError) as caught:
        decode_request(body, msgspec.json.Decoder(Limited))
    assert caught.value.param == "parts[0][...]"  # msgspec names a dict value so


def test_the_dialects_limit_no_string_so_their_images_are_cut_out() -> None:
    from aperture.dialects.anthropic.inbound import _DECODER as anthropic
    from aperture.dialects.openai.inbound import _DECODER as openai
    from aperture.dialects.responses.inbound import _DECODER as responses

    for decoder in (openai, anthropic, responses):
        assert not decoding._constrains_strings(decoder.type)


def test_image_data_uris_put_back_whole_are_kept_decoded_for_intake() -> None:
    image = "data:image/png;base64," + B64
    value = {
        "model": "m",
        "parts": [{"kind": "a", "url": image}, {"kind": "b", "url": B64}],
        "extra": {
            "doc": "data:application/pdf;base64," + B64,
            "small": "data:image/png;base64,AA==",
        },
    }
    payloads = Payloads()
    decoded, _ = decode_request(json.dumps(value).encode(), SPLICED, payloads)
    assert len(payloads) == 1, "only the large image data URI: not bare base64, not a document"
    url = decoded.parts[0].url
    assert payloads.take("".join(url)) is None, "an equal string is not the one decoded"
    kept = payloads.take(url)
    assert kept is not None
    assert (kept.offset, kept.data) == (len("data:image/png;base64,"), bytes(range(256)) * 400)
    assert payloads.take(url) is None, "taken once"


def test_a_body_decoded_as_sent_keeps_nothing() -> None:
    image = "data:image/png;base64," + B64
    body = b'{"model":"m","model":"n","parts":[{"kind":"a","url":"' + image.encode() + b'"}]}'
    payloads = Payloads()
    with pytest.raises(InvalidJsonError):
        decode_request(body, SPLICED, payloads)
    assert len(payloads) == 0


def test_a_messages_image_is_decoded_once_and_found_under_the_data_uri_it_becomes() -> None:
    from aperture.dialects.anthropic.inbound import parse_messages_request
    from aperture.model.chat import Image

    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 400
    data = base64.b64encode(jpeg).decode()
    source = {"type": "base64", "media_type": "image/jpeg", "data": data}
    pdf = {"type": "base64", "media_type": "application/pdf", "data": B64}
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": source},
                    {"type": "document", "source": pdf},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "image", "source": source}],
                    },
                ],
            }
        ],
    }
    payloads = Payloads()
    request, _ = parse_messages_request(json.dumps(body).encode(), payloads)
    images = [p for m in request.messages for p in m.content if isinstance(p, Image)]
    assert len(images) == 2
    for image in images:
        kept = payloads.take(image.url)
        assert kept is not None, "intake finds the decoded bytes under the data URI"
        assert image.url[kept.offset :] == data and kept.data == jpeg
    assert len(payloads) == 0, "the document's bytes are not held: its intake decodes them"
