"""The NDJSON line splitter: lines across chunk boundaries, CRLF, blank lines, a last line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aperture.upstream.lines import FrameTooLargeError
from aperture.upstream.ndjson import NdjsonDecoder


def test_whole_lines_in_one_chunk() -> None:
    decoder = NdjsonDecoder()
    assert decoder.feed(b'{"a":1}\n{"b":2}\n') == ['{"a":1}', '{"b":2}']
    assert decoder.flush() == []


def test_a_line_split_across_chunks_is_held_until_its_end() -> None:
    decoder = NdjsonDecoder()
    assert decoder.feed(b'{"message":{"con') == []
    assert decoder.feed(b'tent":"Hi"}') == []
    assert decoder.feed(b',"done":false}\n{"do') == ['{"message":{"content":"Hi"},"done":false}']
    assert decoder.feed(b'ne":true}\n') == ['{"done":true}']


def test_crlf_and_blank_lines() -> None:
    decoder = NdjsonDecoder()
    assert decoder.feed(b'\n{"a":1}\r\n\r\n  \n{"b":2}\r') == ['{"a":1}']
    assert decoder.feed(b"\n\n") == ['{"b":2}']


def test_multibyte_character_split_between_chunks() -> None:
    encoded = json.dumps({"content": "café ☕"}, ensure_ascii=False).encode() + b"\n"
    cut = encoded.index("☕".encode()) + 1  # inside the three-byte sequence
    decoder = NdjsonDecoder()
    assert decoder.feed(encoded[:cut]) == []
    assert [json.loads(line) for line in decoder.feed(encoded[cut:])] == [{"content": "café ☕"}]


def test_flush_returns_an_unterminated_last_line_once() -> None:
    decoder = NdjsonDecoder()
    assert decoder.feed(b'{"a":1}\n{"error":"boom"}') == ['{"a":1}']
    assert decoder.flush() == ['{"error":"boom"}']
    assert decoder.flush() == []


def test_invalid_utf8_does_not_raise() -> None:
    decoder = NdjsonDecoder()
    (line,) = decoder.feed(b'{"a":"\xff"}\n')
    assert line == '{"a":"\ufffd"}'


@given(
    objects=st.lists(
        st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=3), max_size=6
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_any_chunking_yields_the_same_lines(objects: list[dict[str, str]], cuts: list[int]) -> None:
    body = b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objects)
    points = sorted({min(c, len(body)) for c in cuts})
    chunks = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    decoder = NdjsonDecoder()
    lines = [line for chunk in chunks for line in decoder.feed(chunk)] + decoder.flush()
    assert [json.loads(line) for line in lines] == objects


def test_an_8_mb_line_in_small_chunks_is_scanned_once() -> None:
    # A splitter that appended to bytes (``buffer += chunk``) copied its whole buffer per
    # chunk: ~8,000 times the line's size here. This one searches each byte once.
    line = b'{"response":"' + b"x" * (8 * 1024 * 1024) + b'"}'
    stream = line + b"\n" + b'{"done":true}'
    decoder = NdjsonDecoder()
    lines = []
    for at in range(0, len(stream), 1024):
        lines += decoder.feed(stream[at : at + 1024])
    lines += decoder.flush()
    assert lines == [line.decode(), '{"done":true}']
    assert decoder.scanned == len(stream)


@pytest.mark.parametrize("chunk", [1, 700, 5000])
def test_a_line_over_the_cap_is_refused_once_it_is_over(chunk: int) -> None:
    decoder = NdjsonDecoder(max_event_bytes=4096)
    fed = 0
    while True:  # the line never ends: the decoder must give up once it is over the cap
        try:
            decoder.feed(b"x" * chunk)
        except FrameTooLargeError as exc:
            refused = exc
            break
        fed += chunk
    assert "over the limit of 4096 bytes" in str(refused)
    assert refused.limit == 4096
    assert fed <= 4096 + chunk
    assert NdjsonDecoder(max_event_bytes=4096).feed(b"y" * 4096 + b"\n") == ["y" * 4096]
