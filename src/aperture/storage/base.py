"""Narrow protocols, one per role, the errors they raise, and the ``Storage`` bundle.

    StorageError            the backend failed (driver, connection, disk, timeout): the
                            operation may or may not have happened; retry later
    RecordExistsError       a create met an existing id (or key hash)
    RecordNotFoundError     a replace met no record

The two record errors are deliberately *not* ``StorageError``s: they are answers about the
data (409 and 404 at the admin API), while a ``StorageError`` is an outage (503, or spool).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Literal, Protocol

from aperture.storage.records import (
    Admission,
    ApiKey,
    AuditEvent,
    AuditQuery,
    BudgetCharge,
    BudgetDecision,
    BudgetScope,
    BudgetState,
    ClaimedHold,
    ConsoleSession,
    Document,
    ResponseBlob,
    StoredResponse,
    UsageRow,
    UsageTotals,
    WindowAdmission,
)

__all__ = [
    "AuditStore",
    "ConsoleSessionStore",
    "Counters",
    "Database",
    "DocumentStore",
    "KeyStore",
    "Limits",
    "ModelStore",
    "PutMode",
    "RecordExistsError",
    "RecordNotFoundError",
    "ResponseStore",
    "RouteStore",
    "Storage",
    "StorageError",
    "UsageLedger",
]

PutMode = Literal["upsert", "create", "replace"]
Closer = Callable[[], Awaitable[None]]


class StorageError(Exception):
    """A storage backend failed; the original driver exception is the ``__cause__``."""


class RecordExistsError(Exception):
    """A create met a record with the same id (or, for keys, the same hash)."""


class RecordNotFoundError(LookupError):
    """A replace met no record with that id."""


class KeyStore(Protocol):
    """API key records, looked up by the keyed hash of the presented secret."""

    async def create(self, key: ApiKey) -> None:
        """Store a new key and bump the change counter.

        Raises:
            RecordExistsError: the id or the key hash is already stored.
            StorageError: the backend failed.
        """
        ...

    async def get_by_hash(self, key_hash: bytes) -> ApiKey | None:
        """The key whose hash is ``key_hash`` (revoked and expired ones included), or None.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def list(self, *, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of one tenant if given), oldest first.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def revoke(self, key_id: str, *, at: datetime) -> ApiKey | None:
        """Mark a key revoked at ``at`` (an earlier revocation stands); None if unknown.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def version(self) -> int:
        """The change counter: grows on every create and revoke, so caches poll it cheaply.

        Raises:
            StorageError: the backend failed.
        """
        ...


class DocumentStore(Protocol):
    """JSON documents by id, with a collection-wide change counter for cheap polling."""

    async def get(self, doc_id: str) -> Document | None:
        """The document, or None.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def list(self) -> list[Document]:
        """Every document, by id.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def put(self, doc_id: str, body: bytes, *, mode: PutMode = "upsert") -> Document:
        """Write a JSON object under ``doc_id`` and bump the change counter.

        ``create`` refuses an existing id, ``replace`` a missing one, ``upsert`` neither.

        Raises:
            ValueError: ``body`` is not a JSON object.
            RecordExistsError: ``mode`` is ``create`` and the id exists.
            RecordNotFoundError: ``mode`` is ``replace`` and the id does not exist.
            StorageError: the backend failed.
        """
        ...

    async def delete(self, doc_id: str) -> bool:
        """Delete the document; True if it existed (only then is the counter bumped).

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def version(self) -> int:
        """The change counter: strictly grows with every write, never goes back.

        Raises:
            StorageError: the backend failed.
        """
        ...


class RouteStore(DocumentStore, Protocol):
    """Route definitions (``{"id", "model_pattern", "strategy", "providers"}``)."""


class ModelStore(DocumentStore, Protocol):
    """Model definitions (the config file's ``models`` entries)."""


class AuditStore(Protocol):
    """The audit trail: one event per request id, appended in batches, never updated."""

    async def append(self, events: Sequence[AuditEvent]) -> int:
        """Store the events whose request id is new; return how many were new.

        Idempotent: replaying a batch (after a timeout, from the spool) stores nothing twice.

        Raises:
            StorageError: the backend failed; none, some or all events may be stored.
        """
        ...

    async def query(self, query: AuditQuery) -> list[AuditEvent]:
        """Events matching every given filter, newest first, at most ``query.limit``.

        Raises:
            StorageError: the backend failed.
        """
        ...

    def export(self, query: AuditQuery) -> AsyncIterator[bytes]:
        """Matching events oldest first as JSON lines (each ends in a newline), streamed.

        Raises:
            StorageError: the backend failed (while iterating).
        """
        ...


class UsageLedger(Protocol):
    """The append-only usage and spend ledger: the source of truth for budgets."""

    async def append(self, rows: Sequence[UsageRow]) -> int:
        """Store rows whose ``(request_id, kind)`` is new; return how many were new.

        Raises:
            StorageError: the backend failed; none, some or all rows may be stored.
        """
        ...

    async def for_request(self, request_id: str) -> list[UsageRow]:
        """Every row of one request, in the order they were written.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def totals(
        self,
        *,
        key_id: str | None = None,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageTotals:
        """Sums of the spend kinds (settle, adjust, refund) over ``[since, until)``.

        Raises:
            StorageError: the backend failed.
        """
        ...


class ResponseStore(Protocol):
    """Responses API answers kept for ``previous_response_id``, and the images they need.

    A blob lives exactly as long as some stored response refers to it: deleting or purging
    the last response naming a digest deletes the blob in the same transaction.
    """

    async def get(
        self, response_id: str, *, now: datetime, images: bool = True
    ) -> tuple[StoredResponse, dict[str, ResponseBlob]] | None:
        """The response unless unknown or expired at ``now``, with its image blobs by digest
        (none read when ``images`` is false: reading the answer back needs no image).

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def put(self, response: StoredResponse, blobs: Sequence[ResponseBlob]) -> None:
        """Keep ``response`` and the blobs it names (a blob already kept is not rewritten).

        A response id already kept is left as it was (a retried write changes nothing).

        Raises:
            ValueError: ``response.images`` names a digest neither kept nor in ``blobs``.
            StorageError: the backend failed; nothing or everything is written.
        """
        ...

    async def delete(self, response_id: str) -> bool:
        """Forget the response (and the blobs only it named); True if it existed.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def purge(self, before: datetime) -> int:
        """Forget every response that expired before ``before``, and the blobs only they
        named; returns how many responses went.

        Raises:
            StorageError: the backend failed.
        """
        ...


class ConsoleSessionStore(Protocol):
    """Console sign-ins, by the hash of their id, shared by every instance on the database."""

    async def create(self, session: ConsoleSession) -> None:
        """Keep a new session.

        Raises:
            RecordExistsError: a session with that id hash exists.
            StorageError: the backend failed.
        """
        ...

    async def get(self, id_hash: bytes, *, now: datetime) -> ConsoleSession | None:
        """The session unless unknown, signed out, or past either of its ends at ``now``.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def touch(self, id_hash: bytes, *, idle_until: datetime) -> bool:
        """Move the session's idle end on (capped at its absolute end); True if it exists.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def delete(self, id_hash: bytes) -> bool:
        """Sign the session out; True if it existed.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def purge(self, before: datetime) -> int:
        """Forget every session that ended before ``before``; returns how many went.

        Raises:
            StorageError: the backend failed.
        """
        ...


class Counters(Protocol):
    """Shared integer counters and flags; every key carries a TTL, so nothing lives forever."""

    async def incr(
        self, key: str, amount: int = 1, *, limit: int | None = None, ttl_s: float
    ) -> Admission:
        """Atomically add ``amount`` unless the result would pass ``limit``.

        A new key expires ``ttl_s`` seconds after its first increment (a fixed window); a
        refused increment leaves the counter unchanged. Amounts <= 0 are always admitted.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def get(self, key: str) -> int | None:
        """The current value, or None if absent or expired.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def set(
        self, key: str, value: int, *, ttl_s: float, only_if_absent: bool = False
    ) -> bool:
        """Set the value and its TTL; with ``only_if_absent`` (seeding, markers) only if new.

        Returns whether the value was written.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def delete(self, key: str) -> None:
        """Forget the key.

        Raises:
            StorageError: the backend failed.
        """
        ...


class Limits(Protocol):
    """Rate-limit windows and budget reservations, atomic across every instance sharing them.

    Time is the store's own clock (Redis ``TIME``), never the callers', so instances with
    skewed clocks agree. Every key expires; a retried call is never counted twice. Amounts
    are integers (micro-dollars, tokens), exact below 2**53.
    """

    async def acquire(
        self, key: str, member: str, cost: int, *, limit: int, window_s: float
    ) -> WindowAdmission:
        """Add ``cost`` under ``member`` to the sliding window ``key`` if the costs of the
        last ``window_s`` seconds plus ``cost`` stay within ``limit``.

        Exact (a moving window, not fixed buckets): at most ``limit`` in any ``window_s``.
        A ``member`` already in the window is not added again (idempotent retries).

        Raises:
            ValueError: ``window_s`` is not positive or ``cost`` is negative.
            StorageError: the backend failed.
        """
        ...

    async def adjust(self, key: str, member: str, delta: int, *, window_s: float) -> None:
        """Change the cost ``member`` holds in window ``key`` by ``delta`` (tokens per minute
        admitted on an estimate, corrected by the real usage); a cost never goes below zero,
        and a member no longer in the window is left alone.

        Raises:
            ValueError: ``window_s`` is not positive.
            StorageError: the backend failed.
        """
        ...

    async def seed(self, scope: BudgetScope, spent: BudgetCharge) -> bool:
        """Set a budget window's spent counter (from the ledger) unless it already has one;
        never additive, so instances seeding together cannot inflate it. True if written.

        Raises:
            ValueError: ``scope.ttl_s`` is not positive.
            StorageError: the backend failed.
        """
        ...

    async def reserve(
        self,
        request_id: str,
        scopes: Sequence[BudgetScope],
        estimate: BudgetCharge,
        *,
        hold_s: float,
        owner: str | None = None,
        note: bytes = b"",
    ) -> BudgetDecision:
        """Hold ``estimate`` in every scope at once, or in none.

        A scope admits when spent + reserved + estimate stays within each of its limits. The
        hold lapses after ``hold_s`` (a crashed instance cannot leak it for ever). A request id
        that holds a reservation, or was settled in the last day, is a ``duplicate``, and
        nothing changes: a reserve retried after a lost reply never holds twice. Each scope
        written to expires ``scope.ttl_s`` after this call.

        With ``owner`` (the reserving instance's id), the hold is indexed under that instance
        with ``note``, in the same atomic step, so that if the instance is lost a survivor
        can ``claim`` it and settle it.

        Raises:
            ValueError: ``hold_s`` or a ``ttl_s`` is not positive, the estimate is negative,
                or two scopes share a key.
            StorageError: the backend failed; the hold may or may not have been taken (retry
                with the same request id, or settle it, to know it is not left behind).
        """
        ...

    async def settle(
        self,
        request_id: str,
        scopes: Sequence[BudgetScope],
        actual: BudgetCharge,
        *,
        owner: str | None = None,
    ) -> bool:
        """Release the request's hold in each scope and add ``actual`` to each seeded scope's
        spent counter; ``actual`` of zero is a plain release.

        Idempotent per request id (for a day): a second settle is a no-op. Returns whether
        this call applied it. A hold that already lapsed is fine: the spend is still added.
        Unseeded scopes are left unseeded (their spend is in the ledger, where seeding reads).
        With ``owner``, the hold is also dropped from that instance's index (even when the
        settle itself was already applied).

        Raises:
            ValueError: ``actual`` is negative, a ``ttl_s`` is not positive, or two scopes
                share a key.
            StorageError: the backend failed; the settle may or may not have been applied
                (retrying it is safe).
        """
        ...

    async def beat(self, instance: str, *, ttl_s: float) -> None:
        """The heartbeat of ``instance``: it counts as alive for the next ``ttl_s`` seconds.

        Raises:
            ValueError: ``ttl_s`` is not positive.
            StorageError: the backend failed.
        """
        ...

    async def lost(self) -> list[str]:
        """Instances whose heartbeat lapsed and whose holds have not all been claimed yet.

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def claim(self, instance: str, *, lease_s: float, limit: int) -> list[ClaimedHold]:
        """Up to ``limit`` holds of a lost ``instance`` that nobody claimed in the last
        ``lease_s`` seconds; each is leased to the caller for ``lease_s``, so two survivors
        never work on the same hold at once, and one that dies mid-way leaves it to the next.

        A claimed hold stays indexed until it is settled with ``owner=instance``. Empty if
        ``instance`` is alive (its heartbeat came back); once it has no holds left, it is
        forgotten and leaves ``lost()``.

        Raises:
            ValueError: ``lease_s`` or ``limit`` is not positive.
            StorageError: the backend failed.
        """
        ...

    async def retire(self, instance: str) -> None:
        """``instance`` is stopping: it counts as lost from now on, so whatever it still
        holds is claimed by the survivors at once (and it is forgotten if it holds nothing).

        Raises:
            StorageError: the backend failed.
        """
        ...

    async def state(self, scope: str) -> BudgetState | None:
        """The window's counters (lapsed holds dropped), or None if it was never seeded.

        Raises:
            StorageError: the backend failed.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Database:
    """What a database backend opens: every role but counters and limits, and how to close them."""

    keys: KeyStore
    routes: RouteStore
    models: ModelStore
    audit: AuditStore
    ledger: UsageLedger
    responses: ResponseStore
    sessions: ConsoleSessionStore
    close: Closer


@dataclass(frozen=True, slots=True, kw_only=True)
class Storage:
    """Every store the gateway uses, opened by ``open_storage``; close it once, at shutdown."""

    keys: KeyStore
    routes: RouteStore
    models: ModelStore
    audit: AuditStore
    ledger: UsageLedger
    responses: ResponseStore
    sessions: ConsoleSessionStore
    counters: Counters
    limits: Limits
    closers: tuple[Closer, ...] = ()

    async def close(self) -> None:
        """Release connections and pools; every closer runs even if one fails."""
        errors: list[Exception] = []
        for closer in self.closers:
            try:
                await closer()
            except Exception as exc:  # one failing pool must not leak the others
                errors.append(exc)
        if errors:
            raise StorageError("closing storage failed") from errors[0]

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
