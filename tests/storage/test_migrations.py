"""Migrations: the same Alembic scripts build the same schema on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from aperture.storage import StorageError, UsageRow, migrate, open_storage
from aperture.storage.migrations import current_revision, head_revision
from aperture.storage.schema_version import HEAD_REVISION
from aperture.storage.sqlengine import SqlDatabase
from aperture.storage.tables import metadata, usage_ledger

pytestmark = pytest.mark.anyio

TABLES = {
    "alembic_version",
    "api_keys",
    "audit_events",
    "changes",
    "console_sessions",
    "models",
    "response_blobs",
    "response_images",
    "routes",
    "stored_responses",
    "usage_ledger",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database nobody has migrated yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def sql(url: str) -> SqlDatabase:
    from aperture.storage import postgres, sqlite

    return sqlite.connect(url) if url.startswith("sqlite") else postgres.connect(url)


def snapshot(conn: sa.Connection) -> dict[str, Any]:
    """Tables, columns, indexes, constraints and the revision, for before/after comparisons."""
    inspector = sa.inspect(conn)
    return {
        "revision": current_revision(conn),
        "tables": {
            name: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
                sorted(i["name"] or "" for i in inspector.get_indexes(name)),
                sorted(u["name"] or "" for u in inspector.get_unique_constraints(name)),
            )
            for name in sorted(inspector.get_table_names())
        },
        "changes": sorted(conn.execute(sa.text("SELECT collection, version FROM changes")).all()),
    }


async def test_migrating_twice_is_a_no_op(fresh_url: str) -> None:
    await migrate(fresh_url)
    async with await open_storage(fresh_url, None) as storage:
        await storage.routes.put("r", b"{}")  # data and counters must survive a re-run
    db = sql(fresh_url)
    try:
        async with db.read() as conn:
            before = await conn.run_sync(snapshot)
        await migrate(fresh_url)
        async with db.read() as conn:
            after = await conn.run_sync(snapshot)
    finally:
        await db.close()

    assert set(before["tables"]) == TABLES
    assert before["revision"] == head_revision() == HEAD_REVISION
    assert ("routes", 1) in before["changes"]
    assert after == before


async def test_the_migrated_schema_matches_the_tables_the_code_uses(fresh_url: str) -> None:
    await migrate(fresh_url)
    db = sql(fresh_url)

    def differences(conn: sa.Connection) -> list[Any]:
        return compare_metadata(MigrationContext.configure(conn), metadata)

    try:
        async with db.read() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await db.close()


async def test_instances_starting_together_migrate_once(fresh_url: str) -> None:
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(migrate, fresh_url)
    async with await open_storage(fresh_url, None) as storage:
        assert await storage.routes.version() == 0


async def test_servers_opening_a_new_database_together_take_turns(fresh_url: str) -> None:
    # What every worker of ``serve --workers N`` does at start, on a file nobody made yet.
    async def open_and_use() -> None:
        async with await open_storage(fresh_url, None, migrate=True) as storage:
            assert await storage.routes.version() == 0

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(open_and_use)


async def test_the_ledger_refuses_updates_and_deletes(fresh_url: str) -> None:
    async with await open_storage(fresh_url, None, migrate=True) as storage:
        row = UsageRow(request_id="r", kind="settle", created_at=datetime.now(UTC), amount_micros=9)
        await storage.ledger.append([row])
    db = sql(fresh_url)
    try:
        for statement in (
            sa.update(usage_ledger).values(amount_micros=0),
            sa.delete(usage_ledger),
        ):
            with pytest.raises(StorageError, match="append-only"):
                async with db.write() as conn:
                    await conn.execute(statement)
    finally:
        await db.close()


async def test_without_migrating_the_first_use_reports_a_storage_error(tmp_path: Path) -> None:
    async with await open_storage(f"sqlite:///{tmp_path / 'empty.db'}", None) as storage:
        with pytest.raises(StorageError, match="no such table"):
            await storage.keys.version()


async def test_memory_needs_no_migration() -> None:
    await migrate("memory://")


def test_the_head_revision_constant_matches_the_newest_script() -> None:
    from aperture.storage.migrations import head_revision
    from aperture.storage.schema_version import HEAD_REVISION

    assert head_revision() == HEAD_REVISION
