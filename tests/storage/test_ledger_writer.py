"""The durable ledger: rows the database cannot take are spooled and stored exactly once.

The outage is real: PostgreSQL behind a ``FaultProxy`` that goes down, blackholes, or loses
the database's replies after the rows committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest

from aperture.storage import StorageError, UsageRow, open_storage
from aperture.storage.base import Storage
from aperture.storage.ledger_writer import LedgerWriter
from tests.faultproxy import FaultProxy, proxied_url

pytestmark = pytest.mark.anyio


def row(n: int) -> UsageRow:
    return UsageRow(
        request_id=f"req-{n:04d}",
        kind="settle",
        created_at=datetime.now(UTC),
        key_id="k1",
        amount_micros=10,
        prompt_tokens=2,
        completion_tokens=1,
    )


@pytest.fixture
async def proxied(fresh_postgres_url: str) -> AsyncIterator[tuple[FaultProxy, Storage, Storage]]:
    """(proxy, storage through it, storage direct) on one fresh, migrated schema."""
    parts = urlsplit(fresh_postgres_url)
    with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        direct = await open_storage(fresh_postgres_url, None, migrate=True)
        async with direct, await open_storage(proxied_url(fresh_postgres_url, proxy)) as faulty:
            yield proxy, faulty, direct


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 20) -> None:
    """Poll ``check`` until it holds; fail after ``within_s`` (a bound, not a timing)."""
    for _ in range(round(within_s / 0.05)):
        if await check():
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"not true within {within_s} s")


@pytest.mark.parametrize("fault", ["down", "blackhole", "drop_replies"])
async def test_rows_written_during_an_outage_are_stored_exactly_once_after_it(
    proxied: tuple[FaultProxy, Storage, Storage], tmp_path: Path, fault: str
) -> None:
    proxy, faulty, direct = proxied
    writer = LedgerWriter(faulty.ledger, tmp_path, write_timeout_s=0.5, retry_interval_s=0.2)
    async with anyio.create_task_group() as group:
        await writer.start(group)
        await writer.append([row(0)])
        getattr(proxy, fault)()
        with anyio.fail_after(10):  # bounded: the write deadline, not the database's
            for n in range(1, 6):
                assert await writer.append([row(n)]) == 1
        assert writer.stats.spooled >= 4
        with pytest.raises(StorageError):
            await writer.totals(key_id="k1")  # reads fail while the database is away
        proxy.heal()

        async def all_stored() -> bool:
            return (await direct.ledger.totals(key_id="k1")).amount_micros == 60

        await eventually(all_stored)
        await writer.stop()
    for n in range(6):
        assert len(await direct.ledger.for_request(f"req-{n:04d}")) == 1
    assert (await writer.totals(key_id="k1")).amount_micros == 60


async def test_reads_replay_the_spool_first_so_a_seed_never_misses_spooled_spend(
    proxied: tuple[FaultProxy, Storage, Storage], tmp_path: Path
) -> None:
    proxy, faulty, direct = proxied
    # No run(): only a read can replay here.
    writer = LedgerWriter(faulty.ledger, tmp_path, write_timeout_s=0.5, retry_interval_s=0.1)
    proxy.down()
    await writer.append([row(1), row(2)])
    proxy.heal()
    await anyio.sleep(0.2)  # past the outage's retry interval
    totals = await writer.totals(key_id="k1")
    assert totals.amount_micros == 20
    assert len(await direct.ledger.for_request("req-0001")) == 1


async def test_what_a_stopped_writer_left_spooled_is_replayed_at_the_next_start(
    proxied: tuple[FaultProxy, Storage, Storage], tmp_path: Path
) -> None:
    proxy, faulty, direct = proxied
    first = LedgerWriter(faulty.ledger, tmp_path, write_timeout_s=0.5, retry_interval_s=5)
    proxy.down()
    async with anyio.create_task_group() as group:
        await first.start(group)
        await first.append([row(7)])
        await first.stop()
    proxy.heal()
    second = LedgerWriter(faulty.ledger, tmp_path, write_timeout_s=0.5, retry_interval_s=0.1)
    async with anyio.create_task_group() as group:
        await second.start(group)

        async def replayed() -> bool:
            return bool(await direct.ledger.for_request("req-0007"))

        await eventually(replayed)
        await second.stop()
    assert second.stats.replayed == 1
