"""Cut a byte stream into LF-terminated lines, looking at each byte once, with a size cap.

The SSE and NDJSON decoders sit on this. Each chunk is searched for LF on its own: the
delimiter is one byte, so no overlap with earlier bytes is needed, and a line that spans
many chunks is appended to one ``bytearray`` (amortised constant time per byte) rather
than re-joined and re-split with every chunk. An 8 MB event sent 1 KB at a time costs
8 MB of scanning, not the 32 GB a rescanning buffer would.

A line, or the part of one held back waiting for its end, over ``max_line_bytes`` is a
``FrameTooLargeError``: a provider cannot make the gateway hold an unbounded event.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "FrameTooLargeError", "LineSplitter"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024
"""The default cap on one stream event (``providers[].max_event_bytes``)."""


class FrameTooLargeError(ValueError):
    """One event (an SSE event, an NDJSON line, an event-stream message) is over the cap."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"a stream event of {size} bytes or more is over the limit of {limit} bytes "
            "(providers[].max_event_bytes)"
        )
        self.size = size
        self.limit = limit


class LineSplitter:
    """Bytes in, complete lines out (without their LF); a partial line is held back."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._limit = max_line_bytes
        self._partial = bytearray()
        self.scanned = 0
        """Bytes searched for a delimiter so far: each byte fed is searched exactly once."""

    @property
    def held(self) -> int:
        """Bytes of an unfinished line held back."""
        return len(self._partial)

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines ``chunk`` completed, in order.

        Raises:
            FrameTooLargeError: a line, finished or not, is over the cap.
        """
        self.scanned += len(chunk)
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if lines and self._partial:
            self._check(len(self._partial) + len(lines[0]))
            self._partial += lines[0]
            lines[0] = bytes(self._partial)
            self._partial.clear()
        for line in lines:
            self._check(len(line))
        if rest:
            self._check(len(self._partial) + len(rest))
            self._partial += rest
        return lines

    def flush(self) -> bytes:
        """The unterminated last line (``b""`` if none): call once, when the body ends."""
        line = bytes(self._partial)
        self._partial.clear()
        return line

    def _check(self, size: int) -> None:
        if size > self._limit:
            raise FrameTooLargeError(size, self._limit)
