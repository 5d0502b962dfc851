"""An incremental Server-Sent Events decoder: bytes in, events out, no I/O.

Follows the WHATWG event-stream rules that matter for LLM APIs: lines end in LF or CRLF
(no provider sends bare CR); ``data`` lines of one event are joined with LF; a blank line
dispatches; comments (``:`` lines, used as keep-alives) are ignored.

Work is linear in the bytes fed (``upstream.lines``), and one event, counted as its data
lines plus any line still arriving, is capped at ``max_event_bytes``.
"""

from __future__ import annotations

from typing import NamedTuple

from aperture.upstream.lines import DEFAULT_MAX_EVENT_BYTES, FrameTooLargeError, LineSplitter

__all__ = ["SseDecoder", "SseEvent"]


class SseEvent(NamedTuple):
    event: str
    data: str


class SseDecoder:
    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._lines = LineSplitter(max_event_bytes)
        self._limit = max_event_bytes
        self._event = ""
        self._data: list[str] = []
        self._size = 0  # bytes of the current event's data lines

    @property
    def scanned(self) -> int:
        """Bytes searched for line ends so far: never more than the bytes fed."""
        return self._lines.scanned

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume ``chunk`` and return the events it completed.

        Raises:
            FrameTooLargeError: one event is over ``max_event_bytes``.
            UnicodeDecodeError: a field is not UTF-8.
        """
        events: list[SseEvent] = []
        for line in self._lines.feed(chunk):
            self._line(line[:-1] if line.endswith(b"\r") else line, events)
        if self._size + self._lines.held > self._limit:
            raise FrameTooLargeError(self._size + self._lines.held, self._limit)
        return events

    def flush(self) -> list[SseEvent]:
        """Nothing: an event the body ended before its blank line is dropped (WHATWG)."""
        self._lines.flush()
        self._event, self._data, self._size = "", [], 0
        return []

    def _line(self, line: bytes, events: list[SseEvent]) -> None:
        if not line:
            if self._data:
                events.append(SseEvent(self._event or "message", "\n".join(self._data)))
            self._event, self._data, self._size = "", [], 0
            return
        if line[0] == 0x3A:  # ':' comment
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._size += len(value) + 1
            if self._size > self._limit:
                raise FrameTooLargeError(self._size, self._limit)
            self._data.append(value.decode())
        elif name == b"event":
            self._event = value.decode()
