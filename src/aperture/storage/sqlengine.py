"""The SQL engines, and the one place driver exceptions become ``StorageError``."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aperture.storage.base import StorageError
from aperture.storage.schema_version import HEAD_REVISION

__all__ = ["SqlDatabase", "run_migrations"]

# Both dialects spell ON CONFLICT the same way, on their own Insert classes. Only the
# dialect in use is imported: PostgreSQL's costs a SQLite gateway ~30 ms of cold start.
_DIALECTS = {"sqlite": "sqlalchemy.dialects.sqlite", "postgresql": "sqlalchemy.dialects.postgresql"}


class SqlDatabase:
    """The engines, and the one place driver exceptions become ``StorageError``.

    SQLite gets a separate single-connection writer engine (one writer, by construction);
    PostgreSQL passes the same engine twice. With ``deadline_s`` every ``read`` or ``write``
    block, from taking a pooled connection to the last reply, ends within it (a server that
    stopped answering is cut off, and its connection dropped): the driver's own timeouts each
    bound one step, and a checkout may take several (pre-ping, reconnect, query).

    With ``uncancellable`` a block once begun runs to its end even if its caller is cancelled
    (the cancellation lands as it ends), for a driver that cannot be cut off mid-query: a
    cancelled aiosqlite call makes SQLAlchemy close the connection twice at once, which can
    leave a task waiting forever on a thread that already stopped, and the event loop then
    never closes (the app's shutdown hangs). The driver's own timeouts must then bound it.
    """

    def __init__(
        self,
        *,
        reader: AsyncEngine,
        writer: AsyncEngine,
        deadline_s: float | None = None,
        uncancellable: bool = False,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.dialect = writer.dialect.name
        self._insert: Callable[[sa.Table], Any] = importlib.import_module(
            _DIALECTS[self.dialect]
        ).insert
        self._deadline_s = deadline_s
        self._uncancellable = uncancellable
        # OSError: asyncpg raises refused connections and connect timeouts unwrapped.
        self._errors = (SQLAlchemyError, OSError)

    def _failed(self, exc: Exception) -> StorageError:
        detail = exc.orig if isinstance(exc, DBAPIError) else exc
        return StorageError(f"{self.dialect} failed: {type(detail).__name__}: {detail}")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            with anyio.fail_after(self._deadline_s), self._whole():
                async with self.reader.connect() as conn:
                    yield conn
        except TimeoutError as exc:  # ours, or the driver's command timeout
            raise self._late() from exc
        except self._errors as exc:
            raise self._failed(exc) from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            with anyio.fail_after(self._deadline_s), self._whole():
                async with self.writer.begin() as conn:
                    yield conn
        except TimeoutError as exc:  # ours, or the driver's command timeout
            raise self._late() from exc
        except self._errors as exc:
            raise self._failed(exc) from exc

    def _whole(self) -> anyio.CancelScope:
        return anyio.CancelScope(shield=self._uncancellable)

    def _late(self) -> StorageError:
        within = f" within {self._deadline_s:g}s" if self._deadline_s is not None else " in time"
        return StorageError(f"{self.dialect} did not answer{within}")

    def insert_ignoring(self, table: sa.Table) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING``: how every idempotent append is written."""
        return self._insert(table).on_conflict_do_nothing()

    def upsert(self, table: sa.Table, key: str, values: dict[str, Any]) -> Any:
        insert = self._insert(table).values(values)
        update = {k: v for k, v in values.items() if k != key}
        return insert.on_conflict_do_update(index_elements=[key], set_=update)

    async def close(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


async def run_migrations(db: SqlDatabase, *prelude: sa.Executable) -> None:
    """Upgrade the schema in one transaction on the writer, after the backend's ``prelude``.

    A database already at the head revision is recognised with one query, so a normal start
    never loads Alembic (a second of cold start on a small machine).
    """
    async with db.write() as conn:
        for statement in prelude:
            await conn.execute(statement)
        if await _at_head(conn):
            return
        from aperture.storage import migrations  # Alembic loads only for a migration

        await conn.run_sync(migrations.upgrade)


async def _at_head(conn: AsyncConnection) -> bool:
    try:
        async with conn.begin_nested():
            found = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
    except SQLAlchemyError:
        return False  # no version table yet: a new database
    return bool(found == HEAD_REVISION)
