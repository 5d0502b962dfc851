"""Decode a JSON request body once, strictly, into a dialect's wire type.

Every failure becomes a 400 with the path of the offending field: malformed JSON, invalid
UTF-8 (anywhere: msgspec only checks the strings it keeps, and a skipped or passed-through
field would otherwise reach a provider, or a later ``.decode()``, as a 500), deep nesting,
out-of-range numbers, wrong types and duplicate top-level keys (a provider that keeps the
first of two ``model`` keys would run a model the gateway never authorised). Messages quote
what the client sent only through ``errors.quote`` / ``errors.clip``: bounded.

Large base64 strings (images, documents: megabytes each) are not scanned by the JSON
decoder: each is cut out of the body (``_splice_out``), validated as strict base64 at SIMD
speed, and put back as one ``str`` made straight from the body's bytes. Any failure decodes
the body as sent, so every error and its ``param`` is the one the plain decoder gives.
"""

from __future__ import annotations

import binascii
import codecs
import re
import secrets
from collections.abc import Callable, Hashable, Iterable
from functools import cache
from typing import Any, NamedTuple, TypeVar, cast

import msgspec
import msgspec.inspect
import pybase64

from aperture.errors import InvalidJsonError, InvalidRequestError, clip, quote
from aperture.media.payloads import Payloads

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
# Strings this long are cut out before decoding when they are base64; below it the JSON
# decoder's own scan costs less than the cut. Bodies shorter than it are never scanned.
_SPLICE_MIN = 64 * 1024
# A data URI's header (``data:image/jpeg;base64,``) is short; a longer one is decoded plainly.
_DATA_URI_HEADER = re.compile(rb"data:[ -+\--~]{1,200},")
# The data URIs whose decoded bytes intake takes (``Payloads``): images, as sent.
_IMAGE_URI = b"data:image/"


def decode_request(
    body: bytes,
    decoder: msgspec.json.Decoder[T],
    payloads: Payloads | None = None,
    *,
    bare: bool = False,
) -> tuple[T, list[str]]:
    """Decode ``body`` and return the object with its top-level keys in order.

    With ``payloads``, every large image data URI put back whole is kept there with what
    its base64 decoded to (the splice had to decode it to check it), for intake to take;
    with ``bare`` too, every large bare base64 string (a dialect whose images come as bare
    base64 re-keys them to the data URIs it makes, and drops the rest).

    Raises:
        InvalidJsonError: not JSON, nested too deeply, or a top-level key repeated.
        InvalidRequestError: valid JSON of the wrong shape; ``param`` says where.
    """
    if not body.strip():
        raise InvalidJsonError("The request body is empty; send a JSON object.")
    if len(body) >= _SPLICE_MIN and not _constrains_strings(cast(Hashable, decoder.type)):
        spliced, scanned = _decode_spliced(body, decoder, payloads, bare=bare)
        if spliced is not None:
            return spliced
    else:
        scanned = None
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
    # The splice's scan found the keys already (the body is JSON, so they are right).
    keys = scanned if scanned is not None else top_level_keys(body)
    if len(keys) != len(set(keys)):
        seen: set[str] = set()
        duplicate = next(k for k in keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidJsonError(
            f"The key {quote(duplicate)} appears more than once.", param=duplicate
        )
    return value, keys


class _Cut(NamedTuple):
    token: str
    start: int
    end: int
    header: int
    """The data URI header's length (0 for bare base64): where the base64 starts."""
    data: bytes | None
    """What an image data URI's base64 decoded to; None for any other string."""


def _decode_spliced(
    body: bytes, decoder: msgspec.json.Decoder[T], payloads: Payloads | None, *, bare: bool
) -> tuple[tuple[T, list[str]] | None, list[str] | None]:
    """The body decoded with its large base64 strings cut out and put back, or None when
    there is none, or anything at all is off (the caller then decodes the body as sent);
    and the top-level keys the scan found, when it could scan the body."""
    try:
        keys, cuts = _scan(body, splice=True, keep=payloads is not None, bare=bare)
    except (ValueError, IndexError, AttributeError):  # not JSON: the decoder says how
        return None, None
    if not cuts:
        return None, keys
    parts: list[bytes | memoryview] = []
    view, at = memoryview(body), 0
    for cut in cuts:
        parts += (view[at : cut.start], cut.token.encode())
        at = cut.end
    parts.append(view[at:])
    rest = b"".join(parts)
    if not rest.isascii():
        # The cut strings are ASCII; UTF-8 elsewhere is checked as for any body (and a bad
        # byte named at its place in the body as sent).
        check_utf8(body)
    try:
        value = decoder.decode(rest)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None, keys
    # The cut bytes are ASCII (strict base64, checked): one copy each, straight into a str.
    texts = [str(view[cut.start : cut.end], "ascii") for cut in cuts]
    restored = {cut.token: text for cut, text in zip(cuts, texts, strict=True)}
    found = _restore(value, restored)
    if found is _UNRESTORABLE or restored:  # a token not found where it was put
        return None, keys
    if len(keys) != len(set(keys)):
        return None, keys  # the plain path names the repeated key
    if payloads is not None:
        for cut, text in zip(cuts, texts, strict=True):
            if cut.data is not None:
                payloads.keep(text, cut.header, cut.data)
    return (found, keys), keys


_UNRESTORABLE: Any = object()


@cache
def _constrains_strings(kind: Any) -> bool:
    """Whether ``kind`` limits a string's length or pattern anywhere: a cut-out string's
    stand-in would be checked instead of the string, so such a body is decoded as sent."""
    seen: set[int] = set()

    def walk(info: Any) -> bool:
        if id(info) in seen:
            return False
        seen.add(id(info))
        if isinstance(info, msgspec.inspect.StrType):
            return any(v is not None for v in (info.min_length, info.max_length, info.pattern))
        if isinstance(info, msgspec.inspect.StructType | msgspec.inspect.DataclassType):
            return any(walk(f.type) for f in info.fields)
        children = [getattr(info, a, None) for a in ("item_type", "key_type", "value_type")]
        children += list(getattr(info, "types", None) or ())
        children += list(getattr(info, "item_types", None) or ())
        return any(walk(c) for c in children if c is not None)

    return walk(msgspec.inspect.type_info(kind))


def _restore(value: Any, restored: dict[str, str]) -> Any:
    """``value`` with every cut token replaced by its string; each token is popped when
    found, so one left over (or met twice) shows. A Raw value would hide a token inside
    JSON text: the whole value is then refused."""
    if type(value) is str:
        if len(value) == _TOKEN_CHARS and value in restored:
            return restored.pop(value)
        return value
    if isinstance(value, msgspec.Struct):
        return _restore_items(value, value.__struct_fields__, getattr, _set_field, restored)
    if isinstance(value, list):
        return _restore_items(value, range(len(value)), _get_item, _set_item, restored)
    if isinstance(value, dict):
        return _restore_items(value, list(value), _get_item, _set_item, restored)
    if isinstance(value, tuple):
        items = [_restore(item, restored) for item in value]
        return _UNRESTORABLE if any(i is _UNRESTORABLE for i in items) else tuple(items)
    if isinstance(value, msgspec.Raw):
        return _UNRESTORABLE
    return value


def _restore_items(
    value: Any,
    names: Iterable[Any],
    get: Callable[[Any, Any], Any],
    put: Callable[[Any, Any, Any], None],
    restored: dict[str, str],
) -> Any:
    for name in names:
        item = get(value, name)
        new = _restore(item, restored)
        if new is _UNRESTORABLE:
            return new
        if new is not item:
            put(value, name, new)
    return value


def _get_item(value: Any, key: Any) -> Any:
    return value[key]


def _set_item(value: Any, key: Any, item: Any) -> None:
    value[key] = item


def _set_field(value: Any, name: str, item: Any) -> None:
    msgspec.structs.force_setattr(value, name, item)


# The token that stands in for a cut string: random per request, so a client cannot send one.
_TOKEN_CHARS = 40


def _spliceable(body: bytes, start: int, end: int, *, keep: bool, bare: bool) -> _Cut | None:
    """The cut for the string body[start:end] if it is strict base64, bare or after a data
    URI header (then it holds no escape, quote or control character, and its JSON value is
    its bytes), with its decoded bytes when ``keep`` and it is an image data URI (or, with
    ``bare``, bare base64)."""
    view = memoryview(body)[start:end]
    header = _DATA_URI_HEADER.match(body, start, min(end, start + 256))
    offset = header.end() - start if header is not None else 0
    # Strict base64 holds no backslash (the decode below refuses one): only a header may.
    if body.find(b"\\", start, start + offset) >= 0:
        return None
    try:
        data: bytes = pybase64.b64decode(view[offset:], validate=True)
    except (ValueError, TypeError, binascii.Error):
        return None
    image = keep and (body.startswith(_IMAGE_URI, start) if header is not None else bare)
    token = secrets.token_hex(_TOKEN_CHARS // 2)
    return _Cut(token, start, end, offset, data if image else None)


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
    return _scan(body, splice=False)[0]


def _scan(
    body: bytes, *, splice: bool, keep: bool = False, bare: bool = False
) -> tuple[list[str], list[_Cut]]:
    """The top-level keys and, with ``splice``, the strings to cut out (see _spliceable)."""
    keys: list[str] = []
    cuts: list[_Cut] = []
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
            elif splice and end - pos >= _SPLICE_MIN:
                cut = _spliceable(body, pos, end, keep=keep, bare=bare)
                if cut is not None:
                    cuts.append(cut)
            pos = end + 1
        elif char in b"{[":
            depth += 1
        else:
            depth -= 1
    return keys, cuts


def _string_end(body: bytes, pos: int) -> int:
    while True:
        quote = body.find(b'"', pos)
        if quote < 0:  # only a body that is not JSON (scanned before it is decoded)
            raise ValueError("unterminated string")
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
