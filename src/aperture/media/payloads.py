"""Image data the request decoder already decoded, handed on to intake by identity.

To put a large base64 string back into a decoded body as it was sent, the decoder first
proves it is strict base64, by decoding it. Intake would decode it again (after copying the
payload out of its data URI to do so): the second decode and the copy cost as much as the
first. The decoder keeps what it decoded here instead, per request, and intake takes it.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Payload", "Payloads"]


class Payload(NamedTuple):
    offset: int
    """Where the base64 starts in the string (after the data URI's comma)."""
    data: bytes
    """What it decodes to, strictly (``pybase64.b64decode(..., validate=True)``)."""


class Payloads:
    """One request's decoded image data URIs, by the identity of the string decoded.

    Only the very string object the decoder made is matched (each entry holds it, so its id
    cannot be reused while the entry lives); a copy or an equal string is decoded as usual.
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[int, tuple[str, Payload]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def keep(self, text: str, offset: int, data: bytes) -> None:
        self._items[id(text)] = (text, Payload(offset, data))

    def take(self, text: str) -> Payload | None:
        """The decoded data of ``text`` if the decoder made this very string; once."""
        item = self._items.pop(id(text), None)
        if item is None or item[0] is not text:
            return None
        return item[1]

    def rekey(self, text: str, made: str) -> None:
        """Move what ``text`` decoded to ``made``, a string that ends with it (a data URI a
        dialect built around bare base64), so intake finds it there."""
        item = self._items.pop(id(text), None)
        if item is None or item[0] is not text:
            return
        offset, data = item[1]
        self.keep(made, len(made) - len(text) + offset, data)

    def drop(self, text: str) -> None:
        """Forget what ``text`` decoded to: no image, nothing will take it."""
        self.take(text)

    def clear(self) -> None:
        self._items.clear()
