"""Spools: JSON-lines files that hold records (audit events, ledger rows) while the database
cannot.

Two files in the spool directory, which belongs to one gateway process:

    pending.jsonl     records are appended here (failed batches, queue overflow)
    replaying.jsonl   ``claim()`` renames pending to this, atomically, before a replay

A replay that fails half-way keeps ``replaying.jsonl`` and starts it over later; the records it
already wrote are ignored the second time (both stores are idempotent: the audit by request
id, the ledger by request id and kind), so every record reaches the database exactly once.
The same holds after a crash mid-replay.

Methods are synchronous and thread-safe: the writer calls them through a worker thread, the
hot path's overflow calls ``append`` directly.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Generic, TypeVar

import msgspec

from aperture.storage.records import AuditEvent

__all__ = ["AuditSpool", "Spool", "SpoolReader"]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=msgspec.Struct)

_ENCODER = msgspec.json.Encoder()


class Spool(Generic[T]):
    """The spool of one record type in ``directory``."""

    def __init__(self, directory: Path, record: type[T]) -> None:
        self.directory = directory
        self.pending = directory / "pending.jsonl"
        self.replaying = directory / "replaying.jsonl"
        self._decoder = msgspec.json.Decoder(record)
        self._lock = threading.Lock()

    def reader(self, path: Path) -> SpoolReader[T]:
        return SpoolReader(path, self._decoder)

    def append(self, events: Sequence[T], *, sync: bool = True) -> None:
        """Append events as JSON lines; with ``sync``, fsync before returning.

        Raises:
            OSError: the directory or the disk refused the write.
        """
        lines = b"".join(_ENCODER.encode(event) + b"\n" for event in events)
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self.pending.open("a+b") as file:
                # A crash mid-line leaves a torn tail; start on a fresh line so it costs only
                # the torn event, not the next one too.
                if file.seek(0, os.SEEK_END) > 0:
                    file.seek(-1, os.SEEK_END)
                    if file.read(1) != b"\n":
                        lines = b"\n" + lines
                file.write(lines)
                file.flush()
                if sync:
                    os.fsync(file.fileno())

    def has_pending(self) -> bool:
        with self._lock:
            return self.replaying.exists() or _nonempty(self.pending)

    def claim(self) -> Path | None:
        """The file to replay next (an unfinished replay first), or None if nothing waits."""
        with self._lock:
            if self.replaying.exists():
                return self.replaying
            if _nonempty(self.pending):
                os.replace(self.pending, self.replaying)
                return self.replaying
            return None

    def finish(self, path: Path) -> None:
        """Forget a file whose every event is in the database."""
        with self._lock:
            path.unlink(missing_ok=True)


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


class AuditSpool(Spool[AuditEvent]):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory, AuditEvent)


class SpoolReader(Generic[T]):
    """Reads a claimed spool file back in batches, skipping lines that do not decode."""

    def __init__(self, path: Path, decoder: msgspec.json.Decoder[T]) -> None:
        self._path = path
        self._decoder = decoder
        self._file: BinaryIO = path.open("rb")
        self.skipped = 0

    def next_batch(self, size: int) -> list[T]:
        """Up to ``size`` records; an empty list at the end of the file."""
        batch: list[T] = []
        while len(batch) < size:
            line = self._file.readline()
            if not line:
                break
            if not line.strip():
                continue
            try:
                batch.append(self._decoder.decode(line))
            except (msgspec.DecodeError, ValueError):
                # A torn line from a crash; keeping it would block the replay forever.
                self.skipped += 1
                log.error("spool line unreadable, skipped", extra={"spool": str(self._path)})
        return batch

    def close(self) -> None:
        self._file.close()
