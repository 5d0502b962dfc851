"""The audit writer: takes events from the hot path, writes them in batches, never drops one.

    submit() ──► bounded queue ──► run(): batches of ≤ batch_size, or what came in
        │ (full, or not running)          flush_interval_s ──► AuditStore.append
        ▼                                                             │ StorageError
    spool/pending.jsonl ◄──────────────────────────────────────────────┘
        └──► replayed once the database answers again (every retry_interval_s)

``submit`` never awaits: it puts the event on an in-memory queue, or, when the queue is full
or the writer is not running, appends it to the spool file (without fsync: a rare path that
must stay cheap). While the database is failing, batches go straight to the spool (fsynced)
and the writer tries a replay every ``retry_interval_s``; replays are idempotent because the
store ignores request ids it already holds, so each event is stored exactly once.

Run it in a task group owned by the app lifespan::

    async with anyio.create_task_group() as tg:
        await writer.start(tg)          # or: await tg.start(writer.run)
        ...                             # serve
        await writer.stop()             # flush the queue to the database or the spool

The spool directory belongs to one process: two gateways must not share one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aperture.storage.base import AuditStore, StorageError
from aperture.storage.records import AuditEvent
from aperture.storage.spool import AuditSpool

__all__ = ["AuditWriter", "AuditWriterStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AuditWriterStats:
    """Counts since the writer was made (for metrics and tests)."""

    written: int = 0  # new rows stored from the queue
    spooled: int = 0  # events appended to the spool file
    replayed: int = 0  # new rows stored from the spool file
    lost: int = 0  # events even the spool refused (disk full): each one is logged as an error


class AuditWriter:
    def __init__(
        self,
        store: AuditStore,
        spool_dir: Path,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        *,
        queue_size: int = 10_000,
        retry_interval_s: float = 1.0,
        write_timeout_s: float = 10.0,
    ) -> None:
        if batch_size < 1 or queue_size < 1:
            raise ValueError("batch_size and queue_size must be positive")
        self._store = store
        self._spool = AuditSpool(spool_dir)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._queue_size = queue_size
        self._retry_interval_s = retry_interval_s
        self._write_timeout_s = write_timeout_s
        self.stats = AuditWriterStats()
        self._send: MemoryObjectSendStream[AuditEvent] | None = None
        self._done: anyio.Event | None = None
        self._stopping = False
        self._batch: list[AuditEvent] = []  # taken from the queue, not yet stored or spooled
        self._retry_at = -math.inf  # before this loop time, the database is left alone
        self._spool_dirty = False
        self._overflowing = False

    # --- the hot path ----------------------------------------------------------------------

    def submit(self, event: AuditEvent) -> None:
        """Queue an event for writing; never blocks, never raises, never drops it silently."""
        send = self._send
        if send is not None:
            try:
                send.send_nowait(event)
                return
            except anyio.WouldBlock:
                if not self._overflowing:
                    log.warning(
                        "audit queue full, spooling to disk", extra={"queued": self._queue_size}
                    )
                    self._overflowing = True
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass  # stopping: the spool still keeps it for the next start
        self._spool_sync([event], sync=False)

    # --- the lifespan ----------------------------------------------------------------------

    async def start(self, task_group: TaskGroup) -> None:
        """Run the writer in ``task_group``; returns once it accepts events."""
        await task_group.start(self.run)

    async def stop(self) -> None:
        """Stop accepting events, write what is queued (or spool it), and wait until done."""
        if self._send is None or self._done is None:
            return
        self._stopping = True  # a long replay yields to shutdown; it resumes at next start
        self._send.close()
        await self._done.wait()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The writer loop; returns after ``stop()``. Replays what a previous run spooled."""
        if self._send is not None:
            raise RuntimeError("the audit writer is already running")
        send, receive = anyio.create_memory_object_stream[AuditEvent](self._queue_size)
        done = anyio.Event()
        self._send, self._done, self._stopping = send, done, False
        self._spool_dirty = await anyio.to_thread.run_sync(self._spool.has_pending)
        task_status.started()
        try:
            closed = False
            while not closed:
                closed = await self._collect(receive)
                if self._batch:
                    await self._write()
                # Once stopping, only the queue is drained; a replay waits for the next start.
                if self._spool_dirty and not self._in_outage() and not self._stopping:
                    await self._replay()
        finally:
            # Cancelled or crashed: whatever was taken or queued goes to disk, synchronously,
            # since nothing may be awaited here.
            self._send = None
            send.close()
            leftovers, self._batch = self._batch, []
            while True:
                try:
                    leftovers.append(receive.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            receive.close()
            if leftovers:
                self._spool_sync(leftovers, sync=True)
            done.set()

    # --- batching --------------------------------------------------------------------------

    async def _collect(self, receive: MemoryObjectReceiveStream[AuditEvent]) -> bool:
        """Fill ``self._batch``; True once the queue is closed and empty.

        Waits for a first event (only until the next replay is due, if the spool holds
        some), then up to ``flush_interval_s`` for the batch to fill.
        """
        replay_due = self._spool_dirty and not self._stopping
        idle = max(0.0, self._retry_at - anyio.current_time()) if replay_due else math.inf
        with anyio.move_on_after(idle):
            try:
                self._batch.append(await receive.receive())
            except anyio.EndOfStream:
                return True
        if not self._batch:
            return False
        with anyio.move_on_after(self._flush_interval_s):
            while len(self._batch) < self._batch_size:
                # What is queued is taken without a checkpoint per event; only an empty
                # queue is waited on.
                try:
                    while len(self._batch) < self._batch_size:
                        self._batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    pass
                except anyio.EndOfStream:
                    return True
                if len(self._batch) >= self._batch_size:
                    break
                try:
                    self._batch.append(await receive.receive())
                except anyio.EndOfStream:
                    return True
        return False

    async def _write(self) -> None:
        batch = self._batch
        if self._in_outage():
            await self._spool_async(batch)
        else:
            try:
                self.stats.written += await self._append(batch)
                self._overflowing = False
            except Exception as exc:
                self._enter_outage(exc)
                await self._spool_async(batch)
        self._batch = []

    async def _append(self, batch: list[AuditEvent]) -> int:
        # A hung database must not hold shutdown hostage: a timeout counts as a failure.
        with anyio.fail_after(self._write_timeout_s):
            return await self._store.append(batch)

    def _in_outage(self) -> bool:
        return anyio.current_time() < self._retry_at

    def _enter_outage(self, exc: Exception) -> None:
        if not self._in_outage():
            expected = isinstance(exc, StorageError | TimeoutError)
            log.log(
                logging.WARNING if expected else logging.ERROR,
                "audit store failed, spooling events until it answers again",
                exc_info=not expected,
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )
        self._retry_at = anyio.current_time() + self._retry_interval_s
        self._spool_dirty = True

    # --- the spool -------------------------------------------------------------------------

    async def _replay(self) -> None:
        """Write every spooled event, oldest file first; on failure, try again later."""
        try:
            while True:
                self._spool_dirty = False  # an overflow during the replay sets it again
                path = await anyio.to_thread.run_sync(self._spool.claim)
                if path is None:
                    return
                if not await self._replay_file(path):
                    self._spool_dirty = True
                    return
                await anyio.to_thread.run_sync(self._spool.finish, path)
                log.info("audit spool replayed", extra={"replayed": self.stats.replayed})
        except OSError as exc:
            self._enter_outage(exc)

    async def _replay_file(self, path: Path) -> bool:
        """True once every event of ``path`` is stored; False if it failed or stop() came."""
        reader = await anyio.to_thread.run_sync(self._spool.reader, path)
        try:
            while not self._stopping:
                batch = await anyio.to_thread.run_sync(reader.next_batch, self._batch_size)
                if not batch:
                    return True
                try:
                    self.stats.replayed += await self._append(batch)
                except Exception as exc:
                    self._enter_outage(exc)
                    return False
            return False
        finally:
            reader.close()

    async def _spool_async(self, events: list[AuditEvent]) -> None:
        try:
            await anyio.to_thread.run_sync(self._spool.append, events)
        except OSError as exc:
            self._lost(events, exc)
            return
        self.stats.spooled += len(events)
        self._spool_dirty = True

    def _spool_sync(self, events: list[AuditEvent], *, sync: bool) -> None:
        try:
            self._spool.append(events, sync=sync)
        except OSError as exc:
            self._lost(events, exc)
            return
        self.stats.spooled += len(events)
        self._spool_dirty = True

    def _lost(self, events: list[AuditEvent], exc: OSError) -> None:
        self.stats.lost += len(events)
        for event in events:
            log.error(
                "audit event lost: the database and the spool both failed",
                extra={"request_id": event.request_id, "error": str(exc)},
            )
