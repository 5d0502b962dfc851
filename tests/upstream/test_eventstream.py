"""The AWS event-stream codec: frames, header types, CRCs, limits, and botocore as the oracle."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given
from hypothesis import strategies as st

from aperture.upstream import eventstream
from aperture.upstream.eventstream import (
    MAX_HEADERS_LENGTH,
    EventStreamDecoder,
    EventStreamError,
    Frame,
    encode_frame,
)
from aperture.upstream.lines import FrameTooLargeError

EVENT_HEADERS = {
    ":event-type": "contentBlockDelta",
    ":content-type": "application/json",
    ":message-type": "event",
}
PAYLOAD = b'{"contentBlockIndex":0,"delta":{"text":"hel"},"p":"abcdefgh"}'
STREAM = (
    encode_frame({":event-type": "messageStart", ":message-type": "event"}, b'{"role":"a"}')
    + encode_frame(EVENT_HEADERS, PAYLOAD)
    + encode_frame({":message-type": "event", ":event-type": "empty"}, b"")
    + encode_frame({}, b"no headers at all")
)
EXPECTED = [
    Frame({":event-type": "messageStart", ":message-type": "event"}, b'{"role":"a"}'),
    Frame(EVENT_HEADERS, PAYLOAD),
    Frame({":message-type": "event", ":event-type": "empty"}, b""),
    Frame({}, b"no headers at all"),
]


def frame(headers: bytes, payload: bytes) -> bytes:
    """A frame assembled by hand from the specification, independent of ``encode_frame``."""
    total = 16 + len(headers) + len(payload)
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack("!I", zlib.crc32(message))


def header(name: str, kind: int, value: bytes) -> bytes:
    return bytes([len(name)]) + name.encode() + bytes([kind]) + value


def test_decodes_consecutive_frames() -> None:
    assert EventStreamDecoder().feed(STREAM) == EXPECTED


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM)), max_size=10))
def test_any_chunking_gives_the_same_frames(cuts: list[int]) -> None:
    decoder = EventStreamDecoder()
    frames: list[Frame] = []
    start = 0
    for cut in [*sorted(cuts), len(STREAM)]:
        frames += decoder.feed(STREAM[start:cut])
        start = max(start, cut)
    assert frames == EXPECTED
    assert decoder.buffered == 0


def test_byte_by_byte_feeding_holds_partial_frames_back() -> None:
    decoder = EventStreamDecoder()
    data = encode_frame(EVENT_HEADERS, PAYLOAD)
    for i in range(len(data) - 1):
        assert decoder.feed(data[i : i + 1]) == []
    assert decoder.buffered == len(data) - 1
    assert decoder.feed(data[-1:]) == [Frame(EVENT_HEADERS, PAYLOAD)]
    assert decoder.buffered == 0


def test_botocore_reads_what_encode_frame_writes() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(STREAM)
    read = [m.to_response_dict() for m in buffer]
    assert [Frame(r["headers"], r["body"]) for r in read] == EXPECTED


def test_a_hand_built_frame_reads_the_same_in_botocore_and_here() -> None:
    headers = header(":event-type", 7, struct.pack("!H", 8) + b"metadata")
    data = frame(headers, b'{"usage":{}}')
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    (message,) = [m.to_response_dict() for m in buffer]
    assert EventStreamDecoder().feed(data) == [Frame(message["headers"], message["body"])]
    assert encode_frame({":event-type": "metadata"}, b'{"usage":{}}') == data


def test_every_header_type_decodes_to_text() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = b"".join(
        [
            header("t", 0, b""),
            header("f", 1, b""),
            header("byte", 2, struct.pack("!b", -5)),
            header("short", 3, struct.pack("!h", -300)),
            header("int", 4, struct.pack("!i", 70000)),
            header("long", 5, struct.pack("!q", 2**40)),
            header("bytes", 6, struct.pack("!H", 3) + b"\x00\xff\x10"),
            header("str", 7, struct.pack("!H", 5) + "héé".encode()),
            header("time", 8, struct.pack("!q", 1700000000000)),
            header("uuid", 9, ident.bytes),
        ]
    )
    (decoded,) = EventStreamDecoder().feed(frame(headers, b"x"))
    assert decoded.headers == {
        "t": "true",
        "f": "false",
        "byte": "-5",
        "short": "-300",
        "int": "70000",
        "long": str(2**40),
        "bytes": "AP8Q",
        "str": "héé",
        "time": "1700000000000",
        "uuid": str(ident),
    }
    assert decoded.payload == b"x"


def test_encode_frame_writes_non_string_headers_botocore_reads() -> None:
    data = encode_frame({"yes": True, "no": False, "n": 7, "big": 2**40, "raw": b"\x01"}, b"")
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    (message,) = [m.to_response_dict() for m in buffer]
    assert message["headers"] == {"yes": True, "no": False, "n": 7, "big": 2**40, "raw": b"\x01"}
    assert EventStreamDecoder().feed(data)[0].headers == {
        "yes": "true",
        "no": "false",
        "n": "7",
        "big": str(2**40),
        "raw": "AQ==",
    }


def corrupt(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("at", "message"),
    [(0, "prelude CRC"), (9, "prelude CRC"), (20, "message CRC"), (-1, "message CRC")],
)
def test_a_flipped_bit_anywhere_is_refused(at: int, message: str) -> None:
    data = encode_frame(EVENT_HEADERS, PAYLOAD)
    with pytest.raises(EventStreamError, match=message):
        EventStreamDecoder().feed(corrupt(data, at % len(data)))


def prelude(total: int, headers_length: int) -> bytes:
    head = struct.pack("!II", total, headers_length)
    return head + struct.pack("!I", zlib.crc32(head))


@pytest.mark.parametrize(
    ("total", "headers_length", "message"),
    [
        (15, 0, "impossible"),
        (20, 5, "impossible"),
        (16 + MAX_HEADERS_LENGTH + 1, MAX_HEADERS_LENGTH + 1, "headers of"),
    ],
)
def test_impossible_or_oversized_lengths_are_refused_from_the_prelude(
    total: int, headers_length: int, message: str
) -> None:
    # Refused before the rest of the frame arrives: nothing huge is ever buffered.
    with pytest.raises(EventStreamError, match=message):
        EventStreamDecoder().feed(prelude(total, headers_length))


@pytest.mark.parametrize(
    ("limit", "payload", "refused"),
    [
        (None, 16 * 1024 * 1024, False),
        (None, 16 * 1024 * 1024 + 1, True),
        (1000, 1000, False),
        (1000, 1001, True),
        (10**9, 25 * 1024 * 1024, True),  # never more than botocore reads
    ],
)
def test_a_payload_over_the_cap_is_refused_from_the_prelude(
    limit: int | None, payload: int, refused: bool
) -> None:
    decoder = EventStreamDecoder() if limit is None else EventStreamDecoder(limit)
    if refused:
        with pytest.raises(FrameTooLargeError, match="max_event_bytes"):
            decoder.feed(prelude(16 + payload, 0))
    else:
        assert decoder.feed(prelude(16 + payload, 0)) == []


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (header("a", 7, struct.pack("!H", 1) + b"x") * 2, "Duplicate"),
        (header("a", 42, b""), "Unknown event stream header type 42"),
        (header("a", 7, struct.pack("!H", 10) + b"short"), "runs past"),
        (header("a", 4, b"\x00\x01"), "malformed"),
        (header("a", 9, b"\x00" * 4), "UUID"),
        (b"\x09abc", "name is truncated"),
        (header("a", 7, struct.pack("!H", 2) + b"\xff\xfe"), "malformed"),
    ],
)
def test_malformed_headers_are_refused(headers: bytes, message: str) -> None:
    with pytest.raises(EventStreamError, match=message):
        EventStreamDecoder().feed(frame(headers, b""))


def test_an_8_mb_frame_in_small_chunks_is_checksummed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The work that grows with a frame is its CRC: count the bytes CRC'd. A decoder that
    # re-checked its whole buffer per chunk would CRC ~2,000 times the frame's size here.
    crc32 = zlib.crc32
    crc_bytes = 0

    def counted(data: bytes, value: int = 0) -> int:
        nonlocal crc_bytes
        crc_bytes += len(data)
        return crc32(data, value)

    monkeypatch.setattr(eventstream.zlib, "crc32", counted)
    payload = bytes(range(256)) * (8 * 4096)  # 8 MiB
    data = encode_frame(EVENT_HEADERS, payload) * 2
    crc_bytes = 0
    decoder = EventStreamDecoder()
    frames = [
        frame for at in range(0, len(data), 4096) for frame in decoder.feed(data[at : at + 4096])
    ]
    assert [frame.payload == payload for frame in frames] == [True, True]
    assert decoder.buffered == 0
    feeds = len(data) // 4096 + 1
    assert crc_bytes <= len(data) + 8 * feeds  # each frame once, each prelude once per feed
