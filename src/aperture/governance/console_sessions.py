"""Console sign-ins kept in the shared database, so any instance (or worker) honours them.

The cookie carries a random 256-bit id; the store keeps only its SHA-256, the principal's
reference (an admin key's id, never a secret) and the CSRF token. Each use resolves the
reference through the key cache again, so a revoked key ends its sessions on every instance
within the key cache's poll (half a second). A session is read from the database at most
once per ``cache_s`` per instance: a sign-out elsewhere is honoured here within that. While
the database cannot answer, a session this instance has cached keeps working; signing in,
or a session it has not seen, gets 503 (the session may well be valid).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aperture.errors import ServiceUnavailableError
from aperture.governance.keys import KeyRing, Principal
from aperture.storage import ConsoleSession, ConsoleSessionStore, RecordExistsError, StorageError

__all__ = ["ConsoleSessions", "LiveSession", "OpenedSession"]

log = logging.getLogger("aperture.console")

_UNAVAILABLE = "The session store cannot be reached; try again shortly."
_CACHED_MAX = 1000
"""Sessions cached per instance; the least recently used goes first."""
_TOUCH_EVERY_S = 60.0
"""A session's idle end is written at most this often: reads stay reads on the hot path."""


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """A new sign-in: the id for the cookie (kept nowhere else) and its CSRF token."""

    id: str
    csrf: str


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A session in use: who it signs in, and the token its changes must carry."""

    id_hash: bytes
    principal: Principal
    csrf: str


@dataclass(slots=True)
class _Cached:
    record: ConsoleSession
    read_at: float


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class ConsoleSessions:
    """Opens, finds and closes console sessions over a ``ConsoleSessionStore``."""

    def __init__(
        self,
        store: ConsoleSessionStore,
        keys: KeyRing,
        *,
        idle_s: float,
        max_s: float,
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._keys = keys
        self._idle = timedelta(seconds=idle_s)
        self._max = timedelta(seconds=max_s)
        self._cache_s = cache_s
        self._clock = clock
        self._now = now
        self._cached: OrderedDict[bytes, _Cached] = OrderedDict()

    async def open(self, principal: Principal) -> OpenedSession:
        """A new session for ``principal``, already checked to be an admin by the caller.

        Raises:
            ServiceUnavailableError: the store cannot keep it (nothing was signed in).
        """
        session_id = secrets.token_urlsafe(32)
        now = self._now()
        record = ConsoleSession(
            id_hash=_hash(session_id),
            principal=self._keys.reference(principal),
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self._max,
            idle_until=now + min(self._idle, self._max),
        )
        try:
            await self._store.purge(now)  # sign-ins are rare: they tidy what has ended
            await self._store.create(record)
        except (StorageError, RecordExistsError) as exc:
            log.warning("console sign-in not kept: %s", exc)
            raise ServiceUnavailableError(_UNAVAILABLE, headers={"retry-after": "1"}) from exc
        self._remember(record)
        return OpenedSession(session_id, record.csrf)

    async def get(self, session_id: str | None) -> LiveSession | None:
        """The live session ``session_id`` names, or None (unknown, ended, signed out, or its
        key revoked).

        Raises:
            ServiceUnavailableError: a session this instance has not cached, while the store
                (or the key store) cannot answer.
        """
        if not session_id:
            return None
        id_hash = _hash(session_id)
        record = await self._record(id_hash)
        now = self._now()
        if record is None or not record.live_at(now):
            self._cached.pop(id_hash, None)
            return None
        principal = await self._keys.resolve(record.principal)
        if principal is None:
            return None
        await self._touch(record, now)
        return LiveSession(id_hash, principal, record.csrf)

    async def close(self, session: LiveSession) -> None:
        """Sign ``session`` out on every instance (the others within ``cache_s``).

        Raises:
            ServiceUnavailableError: the store cannot answer; the session stays signed in.
        """
        try:
            await self._store.delete(session.id_hash)
        except StorageError as exc:
            raise ServiceUnavailableError(_UNAVAILABLE, headers={"retry-after": "1"}) from exc
        self._cached.pop(session.id_hash, None)

    async def _record(self, id_hash: bytes) -> ConsoleSession | None:
        cached = self._cached.get(id_hash)
        if cached is not None and self._clock() - cached.read_at < self._cache_s:
            self._cached.move_to_end(id_hash)
            return cached.record
        try:
            record = await self._store.get(id_hash, now=self._now())
        except StorageError as exc:
            if cached is not None:  # the store is away: what this instance knew stands
                log.debug("console session served from cache: %s", exc)
                return cached.record
            raise ServiceUnavailableError(_UNAVAILABLE, headers={"retry-after": "1"}) from exc
        if record is None:
            self._cached.pop(id_hash, None)
            return None
        self._remember(record)
        return record

    async def _touch(self, record: ConsoleSession, now: datetime) -> None:
        idle_until = min(now + self._idle, record.expires_at)
        if idle_until - record.idle_until < timedelta(seconds=_TOUCH_EVERY_S):
            return
        try:
            await self._store.touch(record.id_hash, idle_until=idle_until)
        except StorageError as exc:  # the session is valid; its idle end moves next time
            log.debug("console session not touched: %s", exc)
            return
        cached = self._cached.get(record.id_hash)
        if cached is not None:
            cached.record = ConsoleSession(
                id_hash=record.id_hash,
                principal=record.principal,
                csrf=record.csrf,
                created_at=record.created_at,
                expires_at=record.expires_at,
                idle_until=idle_until,
            )

    def _remember(self, record: ConsoleSession) -> None:
        self._cached[record.id_hash] = _Cached(record, self._clock())
        self._cached.move_to_end(record.id_hash)
        while len(self._cached) > _CACHED_MAX:
            self._cached.popitem(last=False)
