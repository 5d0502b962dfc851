"""PostgreSQL through asyncpg: the backend for several gateway instances sharing state.

``postgresql://user@host:5432/db`` (or ``postgres://``). An optional ``?schema=name`` keeps
Aperture's tables in their own schema, created on migration; several deployments (or test
runs) can then share one database without seeing each other's rows.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from aperture.storage.base import Database
from aperture.storage.sqlengine import SqlDatabase, run_migrations
from aperture.storage.sqlstore import open_migrated

__all__ = ["connect", "engine_url", "migrate", "open_database"]

_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Any constant works; instances starting together take turns migrating on this lock.
_MIGRATION_LOCK = 0x41504552  # "APER"
# Without a deadline (migrations, tools): how long one command may go unanswered.
_COMMAND_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 5.0


def engine_url(url: str) -> tuple[sa.URL, str | None]:
    """The asyncpg URL for ``url``, and the schema its ``?schema=`` names, if any."""
    parsed = sa.make_url(url)
    if parsed.drivername not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError(f"not a PostgreSQL URL: {parsed.drivername}://")
    schema = parsed.query.get("schema")
    if schema is not None and (not isinstance(schema, str) or not _SCHEMA.fullmatch(schema)):
        raise ValueError("?schema= must be one plain SQL identifier")
    parsed = parsed.difference_update_query(["schema"]).set(drivername="postgresql+asyncpg")
    return parsed, schema


def connect(url: str, *, timeout_s: float | None = None) -> SqlDatabase:
    """A pooled engine for ``url``; nothing is opened until first use.

    ``timeout_s`` bounds each operation as a whole (checkout, reconnect, every command); a
    server that stops answering mid-command costs no more. Without it (migrations), each
    command may take ``_COMMAND_TIMEOUT_S``.
    """
    address, schema = engine_url(url)
    command_timeout = _COMMAND_TIMEOUT_S if timeout_s is None else timeout_s
    server_settings = {"application_name": "aperture"}
    if schema is not None:
        server_settings["search_path"] = schema
    engine = create_async_engine(
        address,
        hide_parameters=True,  # error messages must never echo key hashes or audit text
        pool_pre_ping=True,  # after a database restart, pooled connections are dead
        pool_timeout=10 if timeout_s is None else timeout_s,
        connect_args={
            # An unreachable server is an outage to report, not to wait out.
            "timeout": min(_CONNECT_TIMEOUT_S, command_timeout),
            "command_timeout": command_timeout,
            "server_settings": server_settings,
        },
    )
    return SqlDatabase(reader=engine, writer=engine, deadline_s=timeout_s)


def _prelude(url: str) -> list[sa.Executable]:
    statements: list[sa.Executable] = [
        sa.text("SELECT pg_advisory_xact_lock(:lock)").bindparams(lock=_MIGRATION_LOCK)
    ]
    _, schema = engine_url(url)
    if schema is not None:  # a validated identifier: quoting it is enough
        statements.append(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return statements


async def open_database(url: str, *, migrate: bool, timeout_s: float | None = None) -> Database:
    if migrate:
        # On engines of its own: a migration may rightly outlast the serving deadline.
        await _migrate(url)
    return await open_migrated(connect(url, timeout_s=timeout_s), migrate=False)


async def migrate(url: str) -> None:
    await _migrate(url)


async def _migrate(url: str) -> None:
    db = connect(url)
    try:
        await run_migrations(db, *_prelude(url))
    finally:
        await db.close()
