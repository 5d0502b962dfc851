"""SQLite, the default backend: one file beside the gateway, WAL, one writer.

``sqlite:///aperture.db`` (relative to the working directory) or ``sqlite:////abs/path.db``.
Readers get a pool of read-only connections; every write goes through a second engine with a
single connection that opens its transactions with ``BEGIN IMMEDIATE``, so writers queue in
the pool instead of failing with "database is locked" when a read transaction upgrades.
"""

from __future__ import annotations

import fcntl
from typing import IO, Any

import anyio
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aperture.storage.base import Database, StorageError
from aperture.storage.sqlengine import SqlDatabase, run_migrations
from aperture.storage.sqlstore import open_migrated

__all__ = ["connect", "engine_url", "migrate", "open_database"]

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers never block the writer, nor it them
    "PRAGMA synchronous=NORMAL",  # durable at checkpoints; WAL keeps the file consistent
    "PRAGMA foreign_keys=ON",
)
# Without a deadline (migrations, tools): how long a lock or a pooled connection is waited for.
_LOCK_TIMEOUT_S = 10.0


def engine_url(url: str) -> sa.URL:
    """``sqlite:///x.db`` as the SQLAlchemy URL of the aiosqlite driver."""
    parsed = sa.make_url(url)
    if parsed.drivername not in ("sqlite", "sqlite+aiosqlite"):
        raise ValueError(f"not a SQLite URL: {parsed.drivername}://")
    if parsed.database in (None, "", ":memory:"):
        # Each pooled connection would see its own empty database.
        raise ValueError("SQLite needs a file (sqlite:///aperture.db); use memory:// instead")
    return parsed.set(drivername="sqlite+aiosqlite")


def _engine(url: sa.URL, *, writer: bool, timeout_s: float | None) -> AsyncEngine:
    engine = create_async_engine(
        url,
        hide_parameters=True,  # error messages must never echo key hashes or audit text
        pool_size=1 if writer else 4,
        max_overflow=0 if writer else 4,
        # Writers queue here for the one writer connection.
        pool_timeout=60 if timeout_s is None else timeout_s,
    )
    # Another process (``aperture keys``, a backup) may hold the lock: wait as long as the
    # deadline allows, then fail as "database is locked" rather than hang.
    busy_ms = round(1000 * (_LOCK_TIMEOUT_S if timeout_s is None else timeout_s))

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module, whose legacy mode skips it for reads and DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _PRAGMAS:
            cursor.execute(pragma)
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        if not writer:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def connect(url: str, *, timeout_s: float | None = None) -> SqlDatabase:
    """Engines for the file at ``url``; nothing is opened until first use.

    ``timeout_s`` bounds the wait for the lock and for a pooled connection. The file is
    local, so SQLite's own wait is deadline enough: no query is cut off mid-way, not even by
    a cancelled caller (aiosqlite would go on running it in its thread).
    """
    address = engine_url(url)
    return SqlDatabase(
        reader=_engine(address, writer=False, timeout_s=timeout_s),
        writer=_engine(address, writer=True, timeout_s=timeout_s),
        uncancellable=True,
    )


async def open_database(url: str, *, migrate: bool, timeout_s: float | None = None) -> Database:
    if migrate:
        await _migrate(url)
    return await open_migrated(connect(url, timeout_s=timeout_s), migrate=False)


async def migrate(url: str) -> None:
    await _migrate(url)


async def _migrate(url: str) -> None:
    # Processes (workers, tasks) starting together take turns: SQLite cannot switch a new
    # file to WAL or create its tables under two writers at once, and fails instead.
    lock_path = f"{engine_url(url).database}.migrate.lock"
    try:
        lock = await anyio.to_thread.run_sync(_lock, lock_path)
    except OSError as exc:
        raise StorageError(f"sqlite failed: cannot use {lock_path}: {exc.strerror}") from exc
    try:
        db = connect(url)
        try:
            await run_migrations(db)
        finally:
            await db.close()
    finally:
        lock.close()


def _lock(path: str) -> IO[bytes]:
    handle = open(path, "ab")  # noqa: SIM115 - held until the migration ends
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle
