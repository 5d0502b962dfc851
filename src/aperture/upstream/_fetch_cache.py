"""The image fetcher's memory: an LRU bounded by total bytes, with a lifetime per entry.

Owns how long a fetched image may be reused (from the origin's ``Cache-Control``) and which
entries go first when the byte budget is spent. Retries and failover within one request then
never fetch the same URL twice.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

__all__ = ["ExpiringLru", "cache_ttl"]

V = TypeVar("V")


def cache_ttl(cache_control: str, default_s: float) -> float | None:
    """Seconds a response may be reused, or None if it must not be stored.

    ``no-store`` and ``no-cache`` (we cannot revalidate) forbid storing; ``max-age=N`` sets the
    lifetime, and a malformed or zero one counts as already stale (RFC 9111 §4.2.1). ``private``
    is deliberately ignored: we send no cookies or credentials, so the origin answers every
    holder of the URL alike and sharing the bytes between callers reveals nothing.
    """
    max_age: float | None = None
    for directive in cache_control.split(","):
        name, _, value = directive.partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return None
        if name == "max-age" and max_age is None:
            digits = value.strip().strip('"')
            if not digits.isascii() or not digits.isdigit():
                return None
            max_age = float(int(digits))
    if max_age is None:
        return default_s
    return max_age if max_age > 0 else None


class _Entry(NamedTuple, Generic[V]):
    value: V
    size: int
    expires_at: float


class ExpiringLru(Generic[V]):
    """Values by key, dropped when they expire or when the byte budget needs the room."""

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._bytes = 0

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: str, value: V, *, size: int, ttl_s: float) -> None:
        """Store ``value``; one larger than the whole budget is not stored at all."""
        if key in self._entries:
            self._drop(key)
        if size > self._max_bytes or ttl_s <= 0:
            return
        while self._bytes + size > self._max_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[key] = _Entry(value, size, self._clock() + ttl_s)
        self._bytes += size

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        self._bytes -= self._entries.pop(key).size
