"""The usage ledger, made as durable as the audit trail: no row is lost to a database outage.

    append(rows) ──► UsageLedger.append (within write_timeout_s)
        │ StorageError, timeout, or an outage in progress
        ▼
    ledger/pending.jsonl (fsynced before append returns) ──► replayed when the database
        answers again: every retry_interval_s by run(), and before any read

``append`` returns once each row is in the database or fsynced in the spool, so the caller
(settling a budget) may go on as if the row were stored. Replays are idempotent, the ledger
being unique on ``(request_id, kind)``: a row whose write timed out after it committed is
ignored the second time, and every row is stored exactly once. Reads (``totals``,
``for_request``) first replay what waits in the spool, so a budget seeded from the ledger
never misses spooled spend; while the database is down they fail (budgets then fail closed).

Run it in a task group owned by the app lifespan, like the audit writer::

    await ledger.start(task_group)
    ...
    await ledger.stop()        # what is still spooled is replayed at the next start

The spool directory belongs to one process: two gateways must not share one.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
from anyio.abc import TaskGroup, TaskStatus

from aperture.storage.base import StorageError, UsageLedger
from aperture.storage.records import UsageRow, UsageTotals
from aperture.storage.spool import Spool

__all__ = ["LedgerWriter", "LedgerWriterStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LedgerWriterStats:
    """Counts since the writer was made (for metrics and tests)."""

    written: int = 0  # new rows stored directly
    spooled: int = 0  # rows fsynced to the spool instead
    replayed: int = 0  # new rows stored from the spool


class LedgerWriter:
    """A ``UsageLedger`` over ``ledger`` whose ``append`` survives the database being away."""

    def __init__(
        self,
        ledger: UsageLedger,
        spool_dir: Path,
        *,
        write_timeout_s: float = 5.0,
        retry_interval_s: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        if not (write_timeout_s > 0 and retry_interval_s > 0 and batch_size > 0):
            raise ValueError("write_timeout_s, retry_interval_s and batch_size must be positive")
        self._ledger = ledger
        self._spool = Spool(spool_dir, UsageRow)
        self._write_timeout_s = write_timeout_s
        self._retry_interval_s = retry_interval_s
        self._batch_size = batch_size
        self.stats = LedgerWriterStats()
        self._retry_at = -math.inf  # before this loop time, the database is left alone
        self._dirty = True  # the spool may hold rows (checked for real at the first replay)
        self._replaying = anyio.Lock()
        self._stop: anyio.Event | None = None
        self._done: anyio.Event | None = None

    @property
    def inner(self) -> UsageLedger:
        return self._ledger

    # --- UsageLedger -----------------------------------------------------------------------

    async def append(self, rows: Sequence[UsageRow]) -> int:
        """Store ``rows``, or spool them durably; returns how many the database took as new,
        counting spooled rows as new (a replay stores each at most once).

        Raises:
            StorageError: neither the database nor the spool could take them (disk full).
        """
        if not rows:
            return 0
        if not self._in_outage():
            try:
                written = await self._write(rows)
            except (StorageError, TimeoutError) as exc:
                self._enter_outage(exc)
            else:
                self.stats.written += written
                return written
        await self._spool_rows(rows)
        return len(rows)

    async def for_request(self, request_id: str) -> list[UsageRow]:
        await self.flush()
        return await self._ledger.for_request(request_id)

    async def totals(
        self,
        *,
        key_id: str | None = None,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageTotals:
        await self.flush()
        return await self._ledger.totals(key_id=key_id, tenant=tenant, since=since, until=until)

    # --- the spool -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write every spooled row to the database.

        Raises:
            StorageError: the database (or the spool file) failed; the rows stay spooled.
        """
        if not self._dirty:
            return
        async with self._replaying:
            while True:
                self._dirty = False  # an append during the replay sets it again
                try:
                    path = await anyio.to_thread.run_sync(self._spool.claim)
                except OSError as exc:
                    self._dirty = True
                    raise StorageError(f"ledger spool unreadable: {exc}") from exc
                if path is None:
                    return
                try:
                    await self._replay_file(path)
                except (StorageError, TimeoutError, OSError) as exc:
                    self._dirty = True
                    self._enter_outage(exc)
                    raise StorageError(f"ledger spool not replayed yet: {exc}") from exc
                await anyio.to_thread.run_sync(self._spool.finish, path)
                log.warning("ledger spool replayed", extra={"replayed": self.stats.replayed})

    async def _replay_file(self, path: Path) -> None:
        reader = await anyio.to_thread.run_sync(self._spool.reader, path)
        try:
            while batch := await anyio.to_thread.run_sync(reader.next_batch, self._batch_size):
                self.stats.replayed += await self._write(batch)
        finally:
            reader.close()

    async def _write(self, rows: Sequence[UsageRow]) -> int:
        # A hung database must not hold a request's settlement: past the deadline, spool.
        with anyio.fail_after(self._write_timeout_s):
            return await self._ledger.append(rows)

    async def _spool_rows(self, rows: Sequence[UsageRow]) -> None:
        try:
            await anyio.to_thread.run_sync(self._spool.append, rows)
        except OSError as exc:
            raise StorageError(f"ledger spool refused the rows: {exc}") from exc
        self._dirty = True
        self.stats.spooled += len(rows)

    def _in_outage(self) -> bool:
        return anyio.current_time() < self._retry_at

    def _enter_outage(self, exc: BaseException) -> None:
        if not self._in_outage():
            log.warning(
                "ledger store failed, spooling rows until it answers again",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )
        self._retry_at = anyio.current_time() + self._retry_interval_s
        self._dirty = True

    # --- the lifespan ----------------------------------------------------------------------

    async def start(self, task_group: TaskGroup) -> None:
        await task_group.start(self.run)

    async def stop(self) -> None:
        """Stop replaying; rows still spooled wait for the next start."""
        if self._stop is None or self._done is None:
            return
        self._stop.set()
        await self._done.wait()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Replay the spool whenever it holds rows and the database may answer."""
        if self._stop is not None:
            raise RuntimeError("the ledger writer is already running")
        stop, done = anyio.Event(), anyio.Event()
        self._stop, self._done = stop, done
        task_status.started()
        try:
            while not stop.is_set():
                if self._dirty and not self._in_outage():
                    # A failure was logged on entering the outage; tried after the interval.
                    with contextlib.suppress(StorageError):
                        await self.flush()
                with anyio.move_on_after(self._retry_interval_s):
                    await stop.wait()
        finally:
            self._stop = None
            done.set()
