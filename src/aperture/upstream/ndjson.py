"""An incremental newline-delimited JSON (NDJSON) line splitter: bytes in, lines out, no I/O.

Ollama streams ``application/x-ndjson``: one JSON object per line. This decoder only frames:
it returns each complete line as text and leaves parsing to the provider's stream parser.
Lines end in LF or CRLF; blank lines (keep-alives, a trailing newline) are skipped; a line
split across chunks, even inside a multi-byte UTF-8 character, is held until its end
arrives. ``flush()`` returns a last line the server sent without a final newline.

Work is linear in the bytes fed (``upstream.lines``); one line is capped at
``max_event_bytes``.
"""

from __future__ import annotations

from aperture.upstream.lines import DEFAULT_MAX_EVENT_BYTES, LineSplitter

__all__ = ["NdjsonDecoder"]


class NdjsonDecoder:
    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._lines = LineSplitter(max_event_bytes)

    @property
    def scanned(self) -> int:
        """Bytes searched for line ends so far: never more than the bytes fed."""
        return self._lines.scanned

    def feed(self, chunk: bytes) -> list[str]:
        """Consume ``chunk`` and return the non-blank lines it completed, in order.

        Raises:
            FrameTooLargeError: one line is over ``max_event_bytes``.
        """
        return [text for line in self._lines.feed(chunk) if (text := _text(line))]

    def flush(self) -> list[str]:
        """The unterminated last line, if any: call once when the body has ended."""
        text = _text(self._lines.flush())
        return [text] if text else []


def _text(line: bytes) -> str:
    # Splitting on LF only cuts between complete UTF-8 sequences (LF never occurs inside one).
    # Invalid UTF-8 becomes U+FFFD rather than an exception: the line's JSON is still judged
    # by the provider's parser, which reports a malformed stream in the gateway's own terms.
    return line.decode(errors="replace").strip()
