"""The audit writer: batches off the hot path, and no event lost or doubled across an outage.

Outages are faked by stores implementing the ``AuditStore`` protocol over a real memory store,
and made real on SQLite and PostgreSQL by taking the audit table away underneath the writer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import msgspec
import pytest
import sqlalchemy as sa

from aperture.storage import AuditEvent, AuditQuery, StorageError, audit_time, open_storage
from aperture.storage.audit_writer import AuditWriter
from aperture.storage.memory import MemoryAuditStore
from aperture.storage.sqlengine import SqlDatabase

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def event(n: int) -> AuditEvent:
    return AuditEvent(
        request_id=f"req-{n:04d}",
        time=audit_time(T0 + timedelta(milliseconds=n)),
        endpoint="/v1/chat/completions",
        model="gpt-4o",
        attempts=1,
        status=200,
        latency_ms=3.0,
        text=(f"message {n}",),
    )


class FlakyStore:
    """A memory audit store that fails with ``StorageError`` while ``down`` is set.

    ``fail_after`` takes it down by itself after that many more successful appends: a
    database that dies again in the middle of a replay.
    """

    def __init__(self) -> None:
        self.inner = MemoryAuditStore()
        self.down = False
        self.fail_after: int | None = None
        self.batches: list[int] = []
        self.attempts = 0

    async def append(self, events: Sequence[AuditEvent]) -> int:
        self.attempts += 1
        if self.fail_after == 0:
            self.down, self.fail_after = True, None
        if self.down:
            raise StorageError("the database is down")
        if self.fail_after is not None:
            self.fail_after -= 1
        self.batches.append(len(events))
        return await self.inner.append(events)

    async def query(self, query: AuditQuery) -> list[AuditEvent]:
        return await self.inner.query(query)

    def export(self, query: AuditQuery) -> AsyncIterator[bytes]:
        return self.inner.export(query)

    async def ids(self) -> list[str]:
        return sorted(e.request_id for e in await self.inner.query(AuditQuery(limit=None)))


class GatedStore(FlakyStore):
    """After ``free`` appends, appends wait until ``gate`` is set: a database that hangs."""

    def __init__(self, free: int = 0) -> None:
        super().__init__()
        self.gate = anyio.Event()
        self.free = free
        self.waiting = 0

    async def append(self, events: Sequence[AuditEvent]) -> int:
        if self.free:
            self.free -= 1
        else:
            self.waiting += 1
            await self.gate.wait()
        return await super().append(events)


async def eventually(check: Callable[[], object]) -> None:
    """Wait until ``check()`` holds; the writer offers no event for its counters, so poll."""
    with anyio.fail_after(10):
        while not check():  # noqa: ASYNC110  # nothing to wait on but the counters themselves
            await anyio.sleep(0.01)


def spooled_lines(spool: Path) -> int:
    """Lines waiting in the spool, read while the writer may be renaming its files.

    Pending is read before replaying: a claim moves pending to replaying, so in this order a
    claim in between can be counted twice but never missed (no false "empty").
    """
    total = 0
    for name in ("pending.jsonl", "replaying.jsonl"):
        with contextlib.suppress(FileNotFoundError):
            total += (spool / name).read_bytes().count(b"\n")
    return total


def ids(n: int, start: int = 0) -> list[str]:
    return [f"req-{i:04d}" for i in range(start, start + n)]


async def test_batches_are_cut_at_batch_size_and_the_rest_at_stop(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = AuditWriter(store, tmp_path, batch_size=100, flush_interval_s=30)
    async with anyio.create_task_group() as tg:
        await writer.start(tg)
        for n in range(250):
            writer.submit(event(n))
        await eventually(lambda: len(store.batches) == 2)
        assert store.batches == [100, 100]
        await writer.stop()

    assert store.batches == [100, 100, 50]
    assert await store.ids() == ids(250)
    assert writer.stats.written == 250


async def test_a_partial_batch_is_written_after_the_flush_interval(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = AuditWriter(store, tmp_path, batch_size=100, flush_interval_s=0.05)
    async with anyio.create_task_group() as tg:
        await writer.start(tg)
        for n in range(3):
            writer.submit(event(n))
        await eventually(lambda: store.batches == [3])
        await writer.stop()
    assert await store.ids() == ids(3)


async def test_stop_writes_everything_still_queued(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = AuditWriter(store, tmp_path, batch_size=7, flush_interval_s=30)
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        for n in range(50):
            writer.submit(event(n))
        await writer.stop()
    assert await store.ids() == ids(50)
    assert spooled_lines(tmp_path) == 0


async def test_an_outage_spools_events_and_the_replay_stores_each_once(tmp_path: Path) -> None:
    store = FlakyStore()
    store.down = True
    retry = 0.05  # short, so the test does not wait a second between replays
    writer = AuditWriter(store, tmp_path, 10, 0.01, retry_interval_s=retry)
    async with anyio.create_task_group() as tg:
        await writer.start(tg)
        for n in range(30):
            writer.submit(event(n))
        await eventually(lambda: writer.stats.spooled == 30)
        assert await store.ids() == []
        assert spooled_lines(tmp_path) == 30

        store.down = False
        await eventually(lambda: spooled_lines(tmp_path) == 0)
        assert writer.stats.replayed == 30
        attempts = store.attempts
        await anyio.sleep(retry * 5)
        assert store.attempts == attempts  # nothing is replayed a second time
        await writer.stop()

    assert await store.ids() == ids(30)
    assert writer.stats.written == 0


async def test_stop_during_an_outage_leaves_everything_in_the_spool(tmp_path: Path) -> None:
    store = FlakyStore()
    store.down = True
    writer = AuditWriter(store, tmp_path, batch_size=10, flush_interval_s=30)
    async with anyio.create_task_group() as tg:
        await writer.start(tg)
        for n in range(25):
            writer.submit(event(n))
        await writer.stop()
    assert await store.ids() == []
    assert spooled_lines(tmp_path) == 25
    assert writer.stats.spooled == 25
    assert store.attempts == 1  # after the first failure, no batch waits on the database


async def test_a_replay_cut_short_resumes_without_storing_anything_twice(tmp_path: Path) -> None:
    store = FlakyStore()
    store.down = True
    writer = AuditWriter(store, tmp_path, 10, 0.01, retry_interval_s=0.05)
    async with anyio.create_task_group() as tg:
        await writer.start(tg)
        for n in range(40):
            writer.submit(event(n))
        await eventually(lambda: writer.stats.spooled == 40)

        store.down, store.fail_after = False, 2  # two replay batches land, then it dies
        await eventually(lambda: writer.stats.replayed == 20 and store.down)
        assert (tmp_path / "replaying.jsonl").exists()
        store.down = False
        await eventually(lambda: spooled_lines(tmp_path) == 0)
        await writer.stop()

    assert await store.ids() == ids(40)
    assert writer.stats.replayed == 40  # new rows only: the re-sent first 20 stored nothing


async def test_a_full_queue_spills_to_the_spool_instead_of_dropping(tmp_path: Path) -> None:
    store = GatedStore()
    writer = AuditWriter(store, tmp_path, batch_size=5, flush_interval_s=0.01, queue_size=5)
    async with anyio.create_task_group() as tg:
        await writer.start(tg)
        for n in range(60):
            writer.submit(event(n))  # returns at once even though the store hangs
        assert writer.stats.spooled >= 45
        store.gate.set()
        await eventually(lambda: writer.stats.written + writer.stats.replayed == 60)
        await writer.stop()
    assert await store.ids() == ids(60)


async def test_events_submitted_while_stopped_wait_for_the_next_run(tmp_path: Path) -> None:
    store = FlakyStore()
    early = AuditWriter(store, tmp_path)
    for n in range(5):
        early.submit(event(n))  # never started
    assert spooled_lines(tmp_path) == 5

    writer = AuditWriter(store, tmp_path, flush_interval_s=0.01)
    async with anyio.create_task_group() as tg:
        await writer.start(tg)
        await eventually(lambda: spooled_lines(tmp_path) == 0)
        await writer.stop()
    assert writer.stats.replayed == 5
    writer.submit(event(5))  # after stop
    assert spooled_lines(tmp_path) == 1

    async with anyio.create_task_group() as tg:
        await writer.start(tg)  # a writer runs again after a stop
        await eventually(lambda: spooled_lines(tmp_path) == 0)
        await writer.stop()
    assert writer.stats.replayed == 6
    assert await store.ids() == ids(6)


async def test_cancellation_spools_the_queue_and_the_batch_in_flight(tmp_path: Path) -> None:
    hung = GatedStore()
    writer = AuditWriter(hung, tmp_path, batch_size=5, flush_interval_s=0.01)
    async with anyio.create_task_group() as tg:
        await writer.start(tg)
        for n in range(20):
            writer.submit(event(n))
        await eventually(lambda: hung.waiting == 1)  # the first batch hangs inside append
        tg.cancel_scope.cancel()
    assert spooled_lines(tmp_path) == 20

    store = FlakyStore()
    again = AuditWriter(store, tmp_path, flush_interval_s=0.01)
    async with anyio.create_task_group() as tg:
        await again.start(tg)
        await eventually(lambda: again.stats.replayed == 20)
        await again.stop()
    assert await store.ids() == ids(20)


async def test_stop_cuts_a_long_replay_short_and_the_next_start_finishes_it(
    tmp_path: Path,
) -> None:
    idle = AuditWriter(FlakyStore(), tmp_path)
    for n in range(30):
        idle.submit(event(n))  # spooled: nothing runs yet

    store = GatedStore(free=1)
    writer = AuditWriter(store, tmp_path, batch_size=10, flush_interval_s=0.01)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await writer.start(tg)
            await eventually(lambda: store.waiting == 1)  # the replay's second batch hangs
            tg.start_soon(writer.stop)
            await anyio.sleep(0.05)
            store.gate.set()
    assert writer.stats.replayed == 20  # the batch in flight landed, then the replay stopped

    again = AuditWriter(store, tmp_path, flush_interval_s=0.01)
    async with anyio.create_task_group() as tg:
        await again.start(tg)
        await eventually(lambda: spooled_lines(tmp_path) == 0)
        await again.stop()
    assert again.stats.replayed == 10
    assert await store.ids() == ids(30)


async def test_torn_and_repeated_spool_lines_are_skipped_or_stored_once(tmp_path: Path) -> None:
    lines = [msgspec.json.encode(event(n)) for n in (0, 1, 2, 1)]
    (tmp_path / "pending.jsonl").write_bytes(b"\n".join(lines) + b'\n{"event":"GATEWAY_RESP')

    store = FlakyStore()
    writer = AuditWriter(store, tmp_path, flush_interval_s=0.01)
    writer.submit(event(3))  # appended after the torn tail, on a line of its own
    async with anyio.create_task_group() as tg:
        await writer.start(tg)
        await eventually(lambda: spooled_lines(tmp_path) == 0)
        await writer.stop()

    assert await store.ids() == ids(4)
    assert writer.stats.replayed == 4


# --- a real database going away ------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aperture.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def sql(url: str) -> SqlDatabase:
    from aperture.storage import postgres, sqlite

    return sqlite.connect(url) if url.startswith("sqlite") else postgres.connect(url)


async def rename_table(url: str, old: str, new: str) -> None:
    """Another client takes the audit table away (or gives it back) under the gateway."""
    db = sql(url)
    try:
        async with db.write() as conn:
            await conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))
    finally:
        await db.close()


async def test_a_real_outage_loses_nothing_and_doubles_nothing(
    database_url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    async with await open_storage(database_url, None, migrate=True) as storage:
        writer = AuditWriter(storage.audit, spool, 10, 0.01, retry_interval_s=0.05)
        async with anyio.create_task_group() as tg:
            await writer.start(tg)
            for n in range(10):
                writer.submit(event(n))
            await eventually(lambda: writer.stats.written == 10)

            await rename_table(database_url, "audit_events", "audit_events_offline")
            for n in range(10, 35):
                writer.submit(event(n))
            await eventually(lambda: writer.stats.spooled == 25)

            await rename_table(database_url, "audit_events_offline", "audit_events")
            await eventually(lambda: spooled_lines(spool) == 0)
            assert writer.stats.replayed == 25
            await writer.stop()

        stored = await storage.audit.query(AuditQuery(limit=None))
    assert sorted(e.request_id for e in stored) == ids(35)
    assert spooled_lines(spool) == 0
