import base64

import msgspec

from aperture.providers._json_body import Verbatim, encode_body, verbatim

B64 = base64.b64encode(bytes(range(256)) * 400).decode()  # 136 KB: written unscanned
URI = "data:image/png;base64," + B64


def test_large_checked_strings_are_written_as_they_are_where_they_belong() -> None:
    value = {
        "a": [{"url": verbatim(URI)}, {"data": verbatim(URI, 22)}, "x"],
        "b": verbatim("small"),
        "c": {"d": verbatim(URI), "e": 1.5, "f": None},
    }
    assert isinstance(value["c"]["d"], Verbatim)  # type: ignore[index]
    expected = {
        "a": [{"url": URI}, {"data": B64}, "x"],
        "b": "small",
        "c": {"d": URI, "e": 1.5, "f": None},
    }
    encoded = encode_body(value)
    assert encoded == msgspec.json.encode(expected)


def test_small_strings_stay_plain_strings() -> None:
    assert verbatim("data:image/png;base64,AAAA", 22) == "AAAA"
    assert encode_body({"a": verbatim("xyz")}) == b'{"a":"xyz"}'
