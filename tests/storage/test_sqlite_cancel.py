"""A SQLite call cancelled mid-way (a poller stopped at shutdown) finishes, and leaves nothing
behind that would keep the event loop from closing."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from aperture.storage import sqlite
from aperture.storage.sqlengine import SqlDatabase

pytestmark = pytest.mark.anyio


def _blocking(db: SqlDatabase, entered: threading.Event, release: threading.Event) -> None:
    """``SELECT block()`` on the writer holds aiosqlite's thread until ``release``."""

    def block() -> int:
        entered.set()
        release.wait()
        return 1

    @event.listens_for(db.writer.sync_engine, "connect")
    def _register(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("block", 0, block)


def _pending_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if not task.done()}


async def test_a_write_cancelled_mid_call_runs_to_its_end_and_the_loop_can_close(
    tmp_path: Path,
) -> None:
    already = _pending_tasks()  # the test's own, and its runner's
    url = f"sqlite:///{tmp_path}/aperture.db"
    await sqlite.migrate(url)
    db = sqlite.connect(url, timeout_s=5)
    entered, release = threading.Event(), threading.Event()
    _blocking(db, entered, release)

    scope = anyio.CancelScope()

    async def poll() -> None:
        with scope:
            async with db.write() as conn:
                await conn.execute(sa.text("SELECT block()"))
                await conn.execute(sa.text("CREATE TABLE finished (x INTEGER)"))

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(poll)
            await anyio.to_thread.run_sync(entered.wait)
            scope.cancel()  # as the app's shutdown stops its pollers
            for _ in range(10):  # the cancelled task reacts before its call returns
                await anyio.lowlevel.checkpoint()
            release.set()
    finally:
        release.set()
        await db.close()
    # Every task has ended: a task left waiting on aiosqlite's stopped thread would keep
    # asyncio.run (uvicorn's, the test client's) from ever returning.
    assert _pending_tasks() - already == set()
    reader = sqlite.connect(url)
    try:
        async with reader.read() as conn:  # the block ran to its end and committed
            assert await conn.scalar(sa.text("SELECT count(*) FROM finished")) == 0
    finally:
        await reader.close()
