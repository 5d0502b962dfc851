"""Budget holds of lost instances, found and settled by the instances that survive.

Every instance has an id and beats (``Limits.beat``) every ``heartbeat_s``, counting as alive
for ``instance_ttl_s``; ``BudgetBook`` indexes each hold it takes under that id, with a
``HoldNote``. On the same tick, each instance looks for instances whose heartbeat lapsed
(SIGKILL, OOM, a lost host) and claims their holds (``Limits.claim``: a lease, so two
survivors never work on one hold at once), settling each as its own instance would have,
knowing only the admission estimate::

    claim ──► ledger: one ``settle`` row at the estimate, source ``abandoned``
          │           (a settle row the lost instance managed to write stands instead)
          ├─► audit:  one event, status 500, error code ``instance_lost``
          └─► Limits.settle(owner=lost): hold released, counters charged, unindexed

Every step is idempotent per request id and the index entry is dropped last, so a survivor
that dies mid-way leaves the hold to the next one once its lease lapses. Without Redis there
is one process and nothing to reclaim: its holds die with it, and this does not run.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
import msgspec

from aperture.governance.budgets import BudgetBook, HoldNote
from aperture.storage import (
    AuditEvent,
    AuditStore,
    AuditUsage,
    ClaimedHold,
    Limits,
    StorageError,
    UsageLedger,
    UsageRow,
    audit_time,
)
from aperture.storage.records import BudgetCharge

__all__ = ["INSTANCE_LOST", "Reclaimer", "new_instance_id"]

log = logging.getLogger(__name__)

INSTANCE_LOST = "instance_lost"
"""The audit ``error_code`` of a request whose instance was lost while it was in flight."""
_LOST_STATUS = 500  # the gateway failed the request; the client saw its connection drop

# How long a survivor has to settle a hold it claimed before another may take it over.
_LEASE_S = 30.0
_BATCH = 100
_NOTES = msgspec.json.Decoder(HoldNote)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def new_instance_id() -> str:
    """A fresh id for this process: readable (host and pid), and never reused."""
    host = _UNSAFE.sub("_", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


class Reclaimer:
    """This instance's heartbeat, and the settling of lost instances' holds."""

    def __init__(
        self,
        limits: Limits,
        ledger: UsageLedger,
        audit: AuditStore,
        book: BudgetBook,
        *,
        instance: str,
        heartbeat_s: float,
        ttl_s: float,
        lease_s: float = _LEASE_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._limits = limits
        self._ledger = ledger
        self._audit = audit
        self._book = book
        self._instance = instance
        self._heartbeat_s = heartbeat_s
        self._ttl_s = ttl_s
        self._lease_s = lease_s
        self._clock = clock
        self._retired = False

    @property
    def instance(self) -> str:
        return self._instance

    async def run(self) -> None:
        """Tick every ``heartbeat_s`` until cancelled (a lifespan poller)."""
        while True:
            await self.tick()
            await anyio.sleep(self._heartbeat_s)

    async def tick(self) -> int:
        """Beat, retry deferred settles, and settle what lost instances held; returns how
        many holds this call settled. Store failures are logged; the next tick tries again."""
        if not self._retired:
            try:
                await self._limits.beat(self._instance, ttl_s=self._ttl_s)
            except StorageError as exc:
                log.warning("heartbeat of %s failed: %s", self._instance, exc)
        await self._book.flush()
        try:
            lost = await self._limits.lost()
        except StorageError as exc:
            log.warning("looking for lost instances failed: %s", exc)
            return 0
        settled = 0
        for instance in lost:
            if instance != self._instance:  # a stalled self beats again instead
                settled += await self._reclaim(instance)
        return settled

    async def retire(self) -> None:
        """Stop beating and say so, so survivors settle at once whatever is still held."""
        self._retired = True
        try:
            await self._limits.retire(self._instance)
        except StorageError as exc:
            log.warning(
                "retiring %s failed (its heartbeat lapses instead): %s", self._instance, exc
            )

    async def _reclaim(self, instance: str) -> int:
        settled = 0
        while True:
            try:
                claims = await self._limits.claim(instance, lease_s=self._lease_s, limit=_BATCH)
            except StorageError as exc:
                log.warning("claiming the holds of lost instance %s failed: %s", instance, exc)
                return settled
            if not claims:
                return settled
            for claim in claims:
                with anyio.CancelScope(shield=True):  # a half-settled hold waits for its lease
                    settled += await self._settle(claim)

    async def _settle(self, claim: ClaimedHold) -> int:
        try:
            note = _NOTES.decode(claim.note)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("hold %s of %s has no usable note: %s", claim.request_id, claim.instance, exc)
            note = None
        try:
            if note is None:
                # Unindexed and marked settled; what it reserved lapses with the hold.
                await self._limits.settle(
                    claim.request_id, (), BudgetCharge(), owner=claim.instance
                )
                return 0
            charge = await self._charge(claim, note)
            await self._audit.append([self._event(claim, note, charge)])
            await self._limits.settle(claim.request_id, note.scopes, charge, owner=claim.instance)
        except StorageError as exc:
            log.warning(
                "settling hold %s of lost instance %s failed (retried when the claim lapses): %s",
                claim.request_id,
                claim.instance,
                exc,
            )
            return 0
        log.warning(
            "settled hold %s of lost instance %s: %d micro-dollars, %d tokens",
            claim.request_id,
            claim.instance,
            charge.micros,
            charge.tokens,
        )
        return 1

    async def _charge(self, claim: ClaimedHold, note: HoldNote) -> BudgetCharge:
        """The ledger's settle row for the request, written at the estimate if missing."""
        for row in await self._ledger.for_request(claim.request_id):
            if row.kind == "settle":  # the lost instance got that far: its numbers stand
                return BudgetCharge(row.amount_micros, row.prompt_tokens + row.completion_tokens)
        await self._ledger.append(
            [
                UsageRow(
                    request_id=claim.request_id,
                    kind="settle",
                    created_at=self._clock(),
                    key_id=note.key_id,
                    tenant=note.tenant,
                    model=note.model,
                    amount_micros=note.micros,
                    prompt_tokens=note.prompt_tokens,
                    completion_tokens=note.completion_tokens,
                    source="abandoned",
                )
            ]
        )
        return BudgetCharge(note.micros, note.prompt_tokens + note.completion_tokens)

    def _event(self, claim: ClaimedHold, note: HoldNote, charge: BudgetCharge) -> AuditEvent:
        now = self._clock()
        return AuditEvent(
            request_id=claim.request_id,
            time=audit_time(now),
            key_id=note.key_id,
            tenant=note.tenant,
            endpoint=note.endpoint,
            model=note.model,
            attempts=0,  # unknown: the instance that made them is gone
            status=_LOST_STATUS,
            error_code=INSTANCE_LOST,
            usage=AuditUsage(
                prompt_tokens=note.prompt_tokens,
                completion_tokens=max(0, charge.tokens - note.prompt_tokens),
            ),
            latency_ms=round(max(0.0, (now - note.started).total_seconds()) * 1000, 2),
        )
