"""An incremental decoder (and encoder) for ``application/vnd.amazon.eventstream``: no I/O.

AWS streams (Bedrock ``ConverseStream``, ``InvokeModelWithResponseStream``) frame each
message in binary::

    [total length u32][headers length u32][prelude CRC32 u32][headers][payload][message CRC32]

all big-endian. The prelude CRC covers the first 8 bytes, the message CRC every byte before
it. Each header is ``[name length u8][name][type u8][value]``; the type decides the value's
encoding (botocore ``botocore/eventstream.py``, ``EventStreamHeaderParser``). Both CRCs are
checked: a corrupted frame is an error, never a silently wrong event. A frame's lengths are
checked from its prelude, before its bytes are buffered: a payload over ``max_event_bytes``
is a ``FrameTooLargeError`` at once. Work is linear: chunks are appended to one
``bytearray`` and each frame is CRC-checked once, when it is complete.

``Frame.headers`` maps names to strings. AWS event streams only send string headers
(``:message-type``, ``:event-type``, ``:exception-type``, ``:content-type``...); the other
types are still decoded, to text: booleans as ``true``/``false``, integers and timestamps
(milliseconds since the epoch) in decimal, byte arrays in base64 and UUIDs in their
canonical hyphenated form.
"""

from __future__ import annotations

import base64
import struct
import uuid
import zlib
from collections.abc import Mapping
from typing import NamedTuple

from aperture.upstream.lines import DEFAULT_MAX_EVENT_BYTES, FrameTooLargeError

__all__ = [
    "MAX_HEADERS_LENGTH",
    "MAX_PAYLOAD_LENGTH",
    "EventStreamDecoder",
    "EventStreamError",
    "Frame",
    "encode_frame",
]

PRELUDE_LENGTH = 12
_CRC_LENGTH = 4
_MIN_FRAME = PRELUDE_LENGTH + _CRC_LENGTH
# botocore's limits: a frame beyond them is refused before its bytes are buffered (the
# payload's also by the provider's max_event_bytes, whichever is smaller).
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024

_PRELUDE = struct.Struct("!III")
_U32 = struct.Struct("!I")
_FIXED_INTS: Mapping[int, struct.Struct] = {
    2: struct.Struct("!b"),
    3: struct.Struct("!h"),
    4: struct.Struct("!i"),
    5: struct.Struct("!q"),
    8: struct.Struct("!q"),  # timestamp: milliseconds since the epoch
}


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (bad CRC, impossible lengths, bad header)."""


class Frame(NamedTuple):
    headers: dict[str, str]
    payload: bytes


class EventStreamDecoder:
    """Feed it chunks as they arrive; it returns the frames each chunk completed."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._buffer = bytearray()
        self._max_payload = min(max_event_bytes, MAX_PAYLOAD_LENGTH)

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back: non-zero at the end means truncation."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Frame]:
        """Consume ``chunk`` and return the frames it completed, in order.

        Raises:
            EventStreamError: a frame is corrupt; the stream cannot be resynchronised.
            FrameTooLargeError: a frame's payload is over ``max_event_bytes``.
        """
        self._buffer += chunk
        frames: list[Frame] = []
        while len(self._buffer) >= PRELUDE_LENGTH:
            total, headers_length = self._prelude()
            if len(self._buffer) < total:
                break
            frames.append(_frame(bytes(self._buffer[:total]), headers_length))
            del self._buffer[:total]
        return frames

    def _prelude(self) -> tuple[int, int]:
        total, headers_length, crc = _PRELUDE.unpack_from(self._buffer)
        if zlib.crc32(self._buffer[:8]) != crc:
            raise EventStreamError("Event stream prelude CRC mismatch.")
        if total < _MIN_FRAME or headers_length > total - _MIN_FRAME:
            raise EventStreamError(
                f"Event stream frame lengths are impossible: total {total}, "
                f"headers {headers_length}."
            )
        if headers_length > MAX_HEADERS_LENGTH:
            raise EventStreamError(
                f"Event stream headers of {headers_length} bytes exceed {MAX_HEADERS_LENGTH}."
            )
        payload_length = total - headers_length - _MIN_FRAME
        if payload_length > self._max_payload:
            raise FrameTooLargeError(payload_length, self._max_payload)
        return total, headers_length

    def flush(self) -> list[Frame]:
        """Nothing: a frame the body cut short is never a frame (see ``buffered``)."""
        return []


def _frame(data: bytes, headers_length: int) -> Frame:
    (crc,) = _U32.unpack_from(data, len(data) - _CRC_LENGTH)
    if zlib.crc32(data[:-_CRC_LENGTH]) != crc:
        raise EventStreamError("Event stream message CRC mismatch.")
    headers_end = PRELUDE_LENGTH + headers_length
    headers = _headers(data[PRELUDE_LENGTH:headers_end])
    return Frame(headers, data[headers_end:-_CRC_LENGTH])


def _headers(data: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    at = 0
    try:
        while at < len(data):
            name_length = data[at]
            raw_name = data[at + 1 : at + 1 + name_length]
            if len(raw_name) != name_length:
                raise EventStreamError("An event stream header name is truncated.")
            name = raw_name.decode()
            at += 1 + name_length
            value, at = _value(data[at], data, at + 1)
            if name in headers:
                raise EventStreamError(f"Duplicate event stream header {name!r}.")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError("Event stream headers are malformed.") from exc
    return headers


def _value(kind: int, data: bytes, at: int) -> tuple[str, int]:
    """One header value as text, and where the next header starts."""
    if kind in (0, 1):
        return ("true" if kind == 0 else "false"), at
    fixed = _FIXED_INTS.get(kind)
    if fixed is not None:
        return str(fixed.unpack_from(data, at)[0]), at + fixed.size
    if kind in (6, 7):
        (length,) = struct.unpack_from("!H", data, at)
        raw = data[at + 2 : at + 2 + length]
        if len(raw) != length:
            raise EventStreamError("An event stream header value runs past the headers.")
        text = raw.decode() if kind == 7 else base64.b64encode(raw).decode()
        return text, at + 2 + length
    if kind == 9:
        raw = data[at : at + 16]
        if len(raw) != 16:
            raise EventStreamError("An event stream UUID header is truncated.")
        return str(uuid.UUID(bytes=raw)), at + 16
    raise EventStreamError(f"Unknown event stream header type {kind}.")


def encode_frame(headers: Mapping[str, str | bytes | bool | int], payload: bytes) -> bytes:
    """One frame, CRCs included: what an AWS service writes (used by the emulator and tests).

    Strings are type 7, bytes type 6, booleans types 0/1 and integers type 4 (type 5 when
    they do not fit in 32 bits).
    """
    encoded = bytearray()
    for name, value in headers.items():
        raw_name = name.encode()
        encoded += struct.pack("!B", len(raw_name)) + raw_name
        if isinstance(value, bool):
            encoded += b"\x00" if value else b"\x01"
        elif isinstance(value, int):
            small = -(2**31) <= value < 2**31
            encoded += struct.pack("!Bi", 4, value) if small else struct.pack("!Bq", 5, value)
        else:
            raw = value.encode() if isinstance(value, str) else value
            encoded += struct.pack("!BH", 7 if isinstance(value, str) else 6, len(raw)) + raw
    total = _MIN_FRAME + len(encoded) + len(payload)
    prelude = struct.pack("!II", total, len(encoded))
    prelude += _U32.pack(zlib.crc32(prelude))
    message = prelude + bytes(encoded) + payload
    return message + _U32.pack(zlib.crc32(message))
