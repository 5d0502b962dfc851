"""Upstream JSON bodies, with megabytes of base64 written in as they are.

``msgspec`` scans every character of a string for what JSON must escape; an image's base64
(a canonical data URI or bare base64 that intake validated strictly) has nothing to escape,
so such a string is left out of the encoding and its bytes joined in at its place: one copy
instead of a scan and a copy.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

__all__ = ["Verbatim", "encode_body", "verbatim"]

# Below this the scan is cheaper than the splice.
_VERBATIM_MIN = 64 * 1024


class Verbatim:
    """``text[start:]``, known to need no JSON escaping (strict base64, a canonical data URI)."""

    __slots__ = ("start", "text")

    def __init__(self, text: str, start: int) -> None:
        self.text = text
        self.start = start


def verbatim(text: str, start: int = 0) -> Any:
    """``text[start:]`` for a body ``encode_body`` writes; a large one is written unscanned.

    Only for strings that intake validated (strict base64, canonical data URI headers): they
    are written into the JSON as they are, between quotes.
    """
    if len(text) - start < _VERBATIM_MIN:
        return text[start:] if start else text
    return Verbatim(text, start)


def encode_body(value: Any) -> bytes:
    """``value`` as JSON bytes, ``Verbatim`` strings joined in without being scanned."""
    pieces: list[tuple[bytes, Verbatim]] = []

    def hook(obj: Any) -> Any:
        if isinstance(obj, Verbatim):
            # A token per string per body: no client text can be one.
            token = secrets.token_hex(20)
            pieces.append((f'"{token}"'.encode(), obj))
            return token
        raise NotImplementedError(f"cannot encode {type(obj).__name__}")

    encoded = msgspec.json.encode(value, enc_hook=hook)
    if not pieces:
        return encoded
    view, at = memoryview(encoded), 0
    parts: list[bytes | memoryview] = []
    for quoted, piece in pieces:
        # Tokens are written in document order, so each is found after the one before.
        found = encoded.index(quoted, at)
        data = memoryview(piece.text.encode("ascii"))[piece.start :]
        parts += (view[at : found + 1], data)
        at = found + len(quoted) - 1
    parts.append(view[at:])
    return b"".join(parts)
