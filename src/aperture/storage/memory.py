"""The in-process backend for every role: tests, demos and a single instance without Redis.

Each method runs without an ``await`` between its read and its write, so on one event loop
every operation is atomic, which is exactly the guarantee the SQL and Redis backends give.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import msgspec

from aperture.storage.base import Database, PutMode, RecordExistsError, RecordNotFoundError
from aperture.storage.records import (
    SPEND_KINDS,
    Admission,
    ApiKey,
    AuditEvent,
    AuditQuery,
    ConsoleSession,
    Document,
    ResponseBlob,
    StoredResponse,
    UsageRow,
    UsageTotals,
    check_json_object,
)

__all__ = [
    "MemoryAuditStore",
    "MemoryConsoleSessions",
    "MemoryCounters",
    "MemoryDocumentStore",
    "MemoryKeyStore",
    "MemoryResponseStore",
    "MemoryUsageLedger",
    "migrate",
    "open_database",
]


class MemoryKeyStore:
    def __init__(self) -> None:
        self._by_id: dict[str, ApiKey] = {}
        self._by_hash: dict[bytes, str] = {}
        self._version = 0

    async def create(self, key: ApiKey) -> None:
        if key.id in self._by_id or key.key_hash in self._by_hash:
            raise RecordExistsError(f"key {key.id!r} already exists")
        self._by_id[key.id] = key
        self._by_hash[key.key_hash] = key.id
        self._version += 1

    async def get_by_hash(self, key_hash: bytes) -> ApiKey | None:
        key_id = self._by_hash.get(key_hash)
        return None if key_id is None else self._by_id[key_id]

    async def list(self, *, tenant: str | None = None) -> builtins.list[ApiKey]:
        keys = (k for k in self._by_id.values() if tenant is None or k.tenant == tenant)
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def revoke(self, key_id: str, *, at: datetime) -> ApiKey | None:
        key = self._by_id.get(key_id)
        if key is None:
            return None
        if key.revoked_at is None:
            key = msgspec.structs.replace(key, revoked_at=at)
            self._by_id[key_id] = key
            self._version += 1
        return key

    async def version(self) -> int:
        return self._version


class MemoryDocumentStore:
    """Routes or models: the two stores share this shape."""

    def __init__(self) -> None:
        self._docs: dict[str, Document] = {}
        self._version = 0

    async def get(self, doc_id: str) -> Document | None:
        return self._docs.get(doc_id)

    async def list(self) -> builtins.list[Document]:
        return [self._docs[k] for k in sorted(self._docs)]

    async def put(self, doc_id: str, body: bytes, *, mode: PutMode = "upsert") -> Document:
        check_json_object(body)
        exists = doc_id in self._docs
        if mode == "create" and exists:
            raise RecordExistsError(f"{doc_id!r} already exists")
        if mode == "replace" and not exists:
            raise RecordNotFoundError(f"{doc_id!r} does not exist")
        self._version += 1
        doc = Document(id=doc_id, body=body, version=self._version, updated_at=datetime.now(UTC))
        self._docs[doc_id] = doc
        return doc

    async def delete(self, doc_id: str) -> bool:
        if self._docs.pop(doc_id, None) is None:
            return False
        self._version += 1
        return True

    async def version(self) -> int:
        return self._version


def matches(event: AuditEvent, query: AuditQuery) -> bool:
    """Whether ``event`` passes every filter of ``query`` (limit aside)."""
    checks = (
        (query.request_id, event.request_id),
        (query.key_id, event.key_id),
        (query.tenant, event.tenant),
        (query.model, event.model),
        (query.status, event.status),
        (query.error_code, event.error_code),
    )
    if any(wanted is not None and wanted != actual for wanted, actual in checks):
        return False
    ms = event.timestamp_ms
    if query.since is not None and ms < int(query.since.timestamp() * 1000):
        return False
    return query.until is None or ms < int(query.until.timestamp() * 1000)


class MemoryAuditStore:
    def __init__(self) -> None:
        self._events: dict[str, AuditEvent] = {}

    async def append(self, events: Sequence[AuditEvent]) -> int:
        added = 0
        for event in events:
            if event.request_id not in self._events:
                self._events[event.request_id] = event
                added += 1
        return added

    def _ordered(self, query: AuditQuery) -> builtins.list[AuditEvent]:
        found = [e for e in self._events.values() if matches(e, query)]
        return sorted(found, key=lambda e: (e.timestamp_ms, e.request_id))

    async def query(self, query: AuditQuery) -> builtins.list[AuditEvent]:
        found = self._ordered(query)[::-1]
        return found if query.limit is None else found[: query.limit]

    async def export(self, query: AuditQuery) -> AsyncIterator[bytes]:
        found = self._ordered(query)
        for event in found if query.limit is None else found[: query.limit]:
            yield msgspec.json.encode(event) + b"\n"


class MemoryUsageLedger:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], UsageRow] = {}

    async def append(self, rows: Sequence[UsageRow]) -> int:
        added = 0
        for row in rows:
            if (row.request_id, row.kind) not in self._rows:
                self._rows[row.request_id, row.kind] = row
                added += 1
        return added

    async def for_request(self, request_id: str) -> builtins.list[UsageRow]:
        return [r for (rid, _), r in self._rows.items() if rid == request_id]

    async def totals(
        self,
        *,
        key_id: str | None = None,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageTotals:
        rows = [
            r
            for r in self._rows.values()
            if r.kind in SPEND_KINDS
            and (key_id is None or r.key_id == key_id)
            and (tenant is None or r.tenant == tenant)
            and (since is None or r.created_at >= since)
            and (until is None or r.created_at < until)
        ]
        return UsageTotals(
            amount_micros=sum(r.amount_micros for r in rows),
            prompt_tokens=sum(r.prompt_tokens for r in rows),
            completion_tokens=sum(r.completion_tokens for r in rows),
        )


class MemoryResponseStore:
    def __init__(self) -> None:
        self._responses: dict[str, StoredResponse] = {}
        self._blobs: dict[str, ResponseBlob] = {}

    async def get(
        self, response_id: str, *, now: datetime, images: bool = True
    ) -> tuple[StoredResponse, dict[str, ResponseBlob]] | None:
        found = self._responses.get(response_id)
        if found is None or found.expires_at <= now:
            return None
        return found, {d: self._blobs[d] for d in found.images} if images else {}

    async def put(self, response: StoredResponse, blobs: Sequence[ResponseBlob]) -> None:
        if response.id in self._responses:
            return
        given = {b.sha256: b for b in blobs}
        missing = [d for d in response.images if d not in self._blobs and d not in given]
        if missing:
            raise ValueError(f"no blob for images {sorted(missing)}")
        for digest in response.images:
            self._blobs.setdefault(digest, given.get(digest) or self._blobs[digest])
        self._responses[response.id] = msgspec.structs.replace(
            response, images=tuple(sorted(set(response.images)))
        )

    async def delete(self, response_id: str) -> bool:
        gone = self._responses.pop(response_id, None)
        if gone is not None:
            self._drop_unreferenced(gone.images)
        return gone is not None

    async def purge(self, before: datetime) -> int:
        expired = [r for r in self._responses.values() if r.expires_at < before]
        for response in expired:
            del self._responses[response.id]
        self._drop_unreferenced([d for r in expired for d in r.images])
        return len(expired)

    def _drop_unreferenced(self, digests: Sequence[str]) -> None:
        named = {d for r in self._responses.values() for d in r.images}
        for digest in set(digests) - named:
            self._blobs.pop(digest, None)


class MemoryConsoleSessions:
    def __init__(self) -> None:
        self._by_hash: dict[bytes, ConsoleSession] = {}

    async def create(self, session: ConsoleSession) -> None:
        if session.id_hash in self._by_hash:
            raise RecordExistsError("a console session with that id already exists")
        self._by_hash[session.id_hash] = session

    async def get(self, id_hash: bytes, *, now: datetime) -> ConsoleSession | None:
        session = self._by_hash.get(id_hash)
        return session if session is not None and session.live_at(now) else None

    async def touch(self, id_hash: bytes, *, idle_until: datetime) -> bool:
        session = self._by_hash.get(id_hash)
        if session is None:
            return False
        until = min(idle_until, session.expires_at)
        self._by_hash[id_hash] = msgspec.structs.replace(session, idle_until=until)
        return True

    async def delete(self, id_hash: bytes) -> bool:
        return self._by_hash.pop(id_hash, None) is not None

    async def purge(self, before: datetime) -> int:
        ended = [h for h, s in self._by_hash.items() if not s.live_at(before)]
        for id_hash in ended:
            del self._by_hash[id_hash]
        return len(ended)


class MemoryCounters:
    """Counters for one process; ``clock`` is injectable so expiry is testable without sleeping."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[int, float]] = {}
        self._writes = 0

    def _store(self, key: str, value: int, expires: float) -> None:
        self._values[key] = (value, expires)
        self._writes += 1
        if self._writes % 1024 == 0:
            # Keys nobody reads again would otherwise outlive their TTL in memory forever.
            now = self._clock()
            for stale in [k for k, (_, at) in self._values.items() if at <= now]:
                del self._values[stale]

    def _live(self, key: str) -> tuple[int, float] | None:
        entry = self._values.get(key)
        if entry is not None and entry[1] <= self._clock():
            del self._values[key]
            return None
        return entry

    async def incr(
        self, key: str, amount: int = 1, *, limit: int | None = None, ttl_s: float
    ) -> Admission:
        if not ttl_s > 0:
            raise ValueError("ttl_s must be positive: every counter expires")
        value, expires = self._live(key) or (0, self._clock() + ttl_s)
        if amount > 0 and limit is not None and value + amount > limit:
            return Admission(False, value)
        self._store(key, value + amount, expires)
        return Admission(True, value + amount)

    async def get(self, key: str) -> int | None:
        entry = self._live(key)
        return None if entry is None else entry[0]

    async def set(
        self, key: str, value: int, *, ttl_s: float, only_if_absent: bool = False
    ) -> bool:
        if not ttl_s > 0:
            raise ValueError("ttl_s must be positive: every counter expires")
        if only_if_absent and self._live(key) is not None:
            return False
        self._store(key, value, self._clock() + ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    def ttl(self, key: str) -> float | None:
        """Seconds left before the key expires, or None if absent (for tests and debugging)."""
        entry = self._live(key)
        return None if entry is None else entry[1] - self._clock()


async def _close() -> None:
    return None


async def open_database(
    url: str = "memory://", *, migrate: bool = False, timeout_s: float | None = None
) -> Database:
    """Fresh, empty stores for every database role (``memory://``; nothing to migrate)."""
    return Database(
        keys=MemoryKeyStore(),
        routes=MemoryDocumentStore(),
        models=MemoryDocumentStore(),
        audit=MemoryAuditStore(),
        ledger=MemoryUsageLedger(),
        responses=MemoryResponseStore(),
        sessions=MemoryConsoleSessions(),
        close=_close,
    )


async def migrate(url: str) -> None:
    """Nothing to do: memory stores start with the current shape."""
