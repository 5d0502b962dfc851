"""Backends chosen by URL scheme, imported only when a URL asks for them.

    database   sqlite:///aperture.db   postgresql://user@host/db[?schema=s]   memory://
    counters   redis://host:6379/0     rediss://...                          memory:// (or None)
    and limits (the same URL; with Redis, both share one connection pool)

With no Redis, counters and limits live in the process: right for one instance, per-instance
limits for several (each instance then enforces the whole limit on its own traffic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aperture.storage.base import Closer, Counters, Database, Limits, Storage

__all__ = ["RedisOptions", "migrate", "open_storage"]


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """How the Redis stores treat a slow or absent Redis (``storage.redis_*`` settings)."""

    timeout_s: float = 2.0
    """Longest wait for a connection, a connect, or one command's reply."""
    retry_s: float = 1.0
    """After Redis stops answering, calls fail at once for this long, then one tries again."""
    prefix: str = "aperture:"
    """Prefix of every key, one per deployment sharing a Redis."""


class _DatabaseBackend(Protocol):
    """The shape of a database backend module."""

    async def open_database(
        self, url: str, *, migrate: bool, timeout_s: float | None = None
    ) -> Database: ...

    async def migrate(self, url: str) -> None: ...


def _sqlite() -> _DatabaseBackend:
    from aperture.storage import sqlite

    return sqlite


def _postgres() -> _DatabaseBackend:
    from aperture.storage import postgres

    return postgres


def _memory() -> _DatabaseBackend:
    from aperture.storage import memory

    return memory


def _redis_counters(url: str, options: RedisOptions) -> tuple[Counters, Limits, Closer]:
    from aperture.storage.redis_counters import RedisCounters
    from aperture.storage.redis_limits import RedisLimits

    counters = RedisCounters.from_url(
        url, prefix=options.prefix, timeout_s=options.timeout_s, retry_s=options.retry_s
    )
    return counters, RedisLimits(counters.link, prefix=counters.prefix), counters.close


def _memory_counters(url: str, options: RedisOptions) -> tuple[Counters, Limits, Closer]:
    from aperture.storage.memory import MemoryCounters
    from aperture.storage.memory_limits import MemoryLimits

    async def close() -> None:
        return None

    return MemoryCounters(), MemoryLimits(), close


_DATABASES: dict[str, Callable[[], _DatabaseBackend]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
    "memory": _memory,
}
_COUNTERS: dict[str, Callable[[str, RedisOptions], tuple[Counters, Limits, Closer]]] = {
    "redis": _redis_counters,
    "rediss": _redis_counters,
    "memory": _memory_counters,
}


def _scheme(url: str, known: dict[str, object], what: str) -> str:
    scheme, sep, _ = url.partition("://")
    scheme = scheme.partition("+")[0].lower()
    if not sep or scheme not in known:
        schemes = ", ".join(f"{s}://" for s in known)
        raise ValueError(f"unsupported {what} URL {url.partition(':')[0]!r}: use {schemes}")
    return scheme


def _database(url: str) -> _DatabaseBackend:
    return _DATABASES[_scheme(url, dict(_DATABASES), "storage.database")]()


async def open_storage(
    database_url: str,
    redis_url: str | None = None,
    *,
    migrate: bool = False,
    redis: RedisOptions | None = None,
    database_timeout_s: float | None = 5.0,
) -> Storage:
    """Open every store; with ``migrate`` first bring the schema up to date.

    ``redis`` sets how long a Redis call may take, and how long an unanswering Redis is left
    alone before it is tried again (both 1 s by default). ``database_timeout_s`` bounds each
    database operation (``StorageError`` past it); the migration is exempt.

    Opening does no I/O besides the migration: an unreachable server shows up as a
    ``StorageError`` from the first operation. Close the result with ``await storage.close()``.

    Raises:
        ValueError: a URL names no known backend, or is malformed.
        StorageError: the migration failed.
    """
    backend = _database(database_url)
    counters_url = redis_url or "memory://"
    shared = _COUNTERS[_scheme(counters_url, dict(_COUNTERS), "storage.redis")]
    counters, limits, close_counters = shared(counters_url, redis or RedisOptions())
    try:
        database = await backend.open_database(
            database_url, migrate=migrate, timeout_s=database_timeout_s
        )
    except BaseException:
        await close_counters()
        raise
    return Storage(
        keys=database.keys,
        routes=database.routes,
        models=database.models,
        audit=database.audit,
        ledger=database.ledger,
        responses=database.responses,
        sessions=database.sessions,
        counters=counters,
        limits=limits,
        closers=(database.close, close_counters),
    )


async def migrate(database_url: str) -> None:
    """Bring the database's schema to the newest revision (``aperture migrate``); idempotent.

    Raises:
        ValueError: the URL names no known backend, or is malformed.
        StorageError: the database failed.
    """
    await _database(database_url).migrate(database_url)
