"""Decode a JSON request body once, strictly, into a dialect's wire type.

Every failure becomes a 400 with the path of the offending field: malformed JSON, invalid
UTF-8 (anywhere: msgspec only checks the strings it keeps, and a skipped or passed-through
field would otherwise reach a provider, or a later ``.decode()``, as a 500), deep nesting,
out-of-range numbers, wrong types and duplicate top-level keys (a provider that keeps the
first of two ``model`` keys would run a model the gateway never authorised). Messages quote
what the client sent only through ``errors.quote`` / ``errors.clip``: bounded.
"""

from __future__ import annotations

import codecs
import re
from typing import Any, TypeVar

import msgspec

from aperture.errors import InvalidJsonError, InvalidRequestError, clip, quote

__all__ = ["check_utf8", "convert_at", "decode_request", "top_level_keys"]

T = TypeVar("T")

# A token: a short string without escapes, taken whole with whether a colon follows it (a key
# at depth 1; most strings of a request), or else one structural character.
_TOKEN = re.compile(rb'"([^"\\]{0,256})"[ \t\r\n]*(:?)|["{}\[\]]')
_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")
# UTF-8 is checked in windows: each window's text is dropped at once, so a 20 MB body costs
# one 1 MB string at a time rather than a 20 MB copy.
_UTF8_WINDOW = 1 << 20


def decode_request(body: bytes, decoder: msgspec.json.Decoder[T]) -> tuple[T, list[str]]:
    """Decode ``body`` and return the object with its top-level keys in order.

    Raises:
        InvalidJsonError: not JSON, nested too deeply, or a top-level key repeated.
        InvalidRequestError: valid JSON of the wrong shape; ``param`` says where.
    """
    if not body.strip():
        raise InvalidJsonError("The request body is empty; send a JSON object.")
    check_utf8(body)
    try:
        value = decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, param = _split_validation_error(str(exc))
        raise InvalidRequestError(f"Invalid request: {clip(message)}", param=param) from exc
    except msgspec.DecodeError as exc:
        raise InvalidJsonError(f"The body is not valid JSON: {clip(str(exc))}") from exc
    except UnicodeDecodeError as exc:  # check_utf8 passed the body: a defence in depth
        raise InvalidJsonError("The body is not valid UTF-8.") from exc
    except RecursionError as exc:
        raise InvalidJsonError("The body is nested too deeply to be a chat request.") from exc
    keys = top_level_keys(body)
    if len(keys) != len(set(keys)):
        seen: set[str] = set()
        duplicate = next(k for k in keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidJsonError(
            f"The key {quote(duplicate)} appears more than once.", param=duplicate
        )
    return value, keys


def convert_at(value: Any, type: type[T], path: str) -> T:
    """Convert an already decoded JSON value to ``type``, naming errors from ``path``.

    For values a dialect must decode apart from the body (an item whose kind decides its
    type), with the same messages and ``param`` paths as ``decode_request``.

    Raises:
        InvalidRequestError: the value has the wrong shape; ``param`` is under ``path``.
    """
    try:
        return msgspec.convert(value, type)
    except msgspec.ValidationError as exc:
        message, param = _split_validation_error(str(exc))
        if param is None:
            param = path
        elif not param.startswith("["):
            param = f"{path}.{param}"
        else:
            param = path + param
        raise InvalidRequestError(f"Invalid request: {clip(message)}", param=param) from exc


def check_utf8(body: bytes) -> None:
    """Refuse a body that is not UTF-8, naming the first bad byte.

    Raises:
        InvalidJsonError: with the byte offset of the first invalid sequence.
    """
    if body.isascii():  # most bodies, base64 images included: one memchr-speed pass
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    for start in range(0, len(body), _UTF8_WINDOW):
        # The decoder holds back a sequence cut by the last window, and counts from it.
        held = len(decoder.getstate()[0])
        end = start + _UTF8_WINDOW
        try:
            decoder.decode(view[start:end], final=end >= len(body))
        except UnicodeDecodeError as exc:
            at = start - held + exc.start
            raise InvalidJsonError(
                f"The body is not valid UTF-8: {exc.reason} at byte {at}. JSON text must be "
                "UTF-8; send other bytes as base64.",
            ) from exc


def top_level_keys(body: bytes) -> list[str]:
    """The keys of the top-level object of a valid JSON document, duplicates included.

    Short plain strings are taken by the regex in one step; long ones (and any with escapes)
    are skipped with ``bytes.find``, so a multi-megabyte base64 value costs one memchr-speed
    scan rather than a loop over its characters.
    """
    keys: list[str] = []
    depth, pos = 0, 0
    search = _TOKEN.search
    while (match := search(body, pos)) is not None:
        pos = match.end()
        short, colon = match.groups()
        if short is not None:
            if depth == 1 and colon:
                keys.append(short.decode())
            continue
        char = body[match.start()]
        if char == 0x22:  # '"': a long string, or one with escapes
            end = _string_end(body, pos)
            if depth == 1 and body[_WHITESPACE.match(body, end + 1).end()] == 0x3A:  # type: ignore[union-attr]
                keys.append(_decode_key(body[pos:end]))
            pos = end + 1
        elif char in b"{[":
            depth += 1
        else:
            depth -= 1
    return keys


def _string_end(body: bytes, pos: int) -> int:
    while True:
        quote = body.find(b'"', pos)
        backslash = quote - 1
        while body[backslash] == 0x5C:
            backslash -= 1
        if (quote - 1 - backslash) % 2 == 0:
            return quote
        pos = quote + 1


def _decode_key(raw: bytes) -> str:
    if b"\\" in raw:
        key: str = msgspec.json.decode(b'"' + raw + b'"')
        return key
    return raw.decode()


def _split_validation_error(text: str) -> tuple[str, str | None]:
    message, _, where = text.partition(" - at `")
    path = where.rstrip("`").removeprefix("$").removeprefix(".") or None
    missing = _MISSING.fullmatch(message)
    if missing is not None:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return message, path


def encode_json(value: Any) -> bytes:
    """Encode a value to JSON bytes (one place, so every dialect encodes the same way)."""
    return msgspec.json.encode(value)
