"""An incremental Server-Sent Events decoder: bytes in, events out, no I/O.

Follows the WHATWG event-stream rules that matter for LLM APIs: lines end in LF or CRLF
(no provider sends bare CR); ``data`` lines of one event are joined with LF; a blank line
dispatches; comments (``:`` lines, used as keep-alives) are ignored.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SseDecoder", "SseEvent"]


class SseEvent(NamedTuple):
    event: str
    data: str


class SseDecoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume ``chunk`` and return the events it completed."""
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        events: list[SseEvent] = []
        for line in lines:
            self._line(line[:-1] if line.endswith(b"\r") else line, events)
        return events

    def _line(self, line: bytes, events: list[SseEvent]) -> None:
        if not line:
            if self._data:
                events.append(SseEvent(self._event or "message", "\n".join(self._data)))
            self._event, self._data = "", []
            return
        if line[0] == 0x3A:  # ':' comment
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode())
        elif name == b"event":
            self._event = value.decode()
