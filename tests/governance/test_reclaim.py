"""Reclaiming a lost instance's holds: one ledger row and one audit event per hold, the
counters released, a settle row the lost instance managed to write standing, and nothing
done twice however many ticks (or survivors) run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from aperture.errors import ServiceUnavailableError
from aperture.governance.budgets import BudgetBook
from aperture.governance.reclaim import INSTANCE_LOST, Reclaimer, new_instance_id
from aperture.storage import AuditQuery, StorageError, UsageRow
from aperture.storage.memory import MemoryAuditStore, MemoryUsageLedger
from aperture.storage.memory_limits import MemoryLimits
from aperture.storage.records import BudgetCharge, BudgetDecision, BudgetScope, BudgetState
from tests.governance.fakes import principal

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_lost_instance_is_settled_once_by_the_survivors() -> None:
    clock = Clock()
    limits, ledger, audit = MemoryLimits(clock), MemoryUsageLedger(), MemoryAuditStore()

    def survivor(name: str) -> Reclaimer:
        book = BudgetBook(limits, ledger, {}, clock=lambda: NOW, instance=name)
        return Reclaimer(
            limits, ledger, audit, book, instance=name, heartbeat_s=1, ttl_s=5, clock=lambda: NOW
        )

    lost = BudgetBook(limits, ledger, {}, clock=lambda: NOW, instance="lost")
    await limits.beat("lost", ttl_s=5)
    who = principal(budget_tokens=10_000)
    for request_id in ("cut", "finished"):
        await lost.reserve(
            request_id,
            who,
            BudgetCharge(700, 700),
            prompt_tokens=200,
            model="m",
            endpoint="/v1/chat/completions",
        )
    # "finished" got its ledger row written before the process died, not its counters.
    await ledger.append(
        [
            UsageRow(
                request_id="finished",
                kind="settle",
                created_at=NOW,
                key_id="k1",
                amount_micros=90,
                prompt_tokens=200,
                completion_tokens=40,
            )
        ]
    )
    first, second = survivor("b"), survivor("c")
    assert await first.tick() == 0  # still alive
    clock.now += 6
    assert await first.tick() + await second.tick() == 2
    assert await second.tick() == 0 and await first.tick() == 0

    rows = {row.request_id: row for row in await ledger.for_request("cut")}
    assert [
        (r.kind, r.source, r.amount_micros, r.prompt_tokens, r.completion_tokens)
        for r in rows.values()
    ] == [("settle", "abandoned", 700, 200, 500)]
    assert [row.source for row in await ledger.for_request("finished")] == ["provider"]
    events = await audit.query(AuditQuery())
    assert sorted((e.request_id, e.status, e.error_code) for e in events) == [
        ("cut", 500, INSTANCE_LOST),
        ("finished", 500, INSTANCE_LOST),
    ]
    (line,) = lost.lines(who)
    assert await limits.state(line.key.key) == BudgetState(BudgetCharge(790, 940), BudgetCharge())
    assert await limits.lost() == []


class CutOff(MemoryLimits):
    """A budget store whose link to one instance breaks mid-call while ``cut``: a reserve is
    applied but its reply never comes, and no later call gets through."""

    cut = False

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
        decision = await super().reserve(
            request_id, scopes, estimate, hold_s=hold_s, owner=owner, note=note
        )
        if self.cut:
            raise StorageError("reply lost")
        return decision

    async def settle(
        self,
        request_id: str,
        scopes: Sequence[BudgetScope],
        actual: BudgetCharge,
        *,
        owner: str | None = None,
    ) -> bool:
        if self.cut:
            raise StorageError("unreachable")
        return await super().settle(request_id, scopes, actual, owner=owner)


async def test_a_hold_of_a_request_refused_while_the_store_was_cut_off_is_charged_nothing() -> None:
    # The instance is alive but cannot reach the store: it refuses the request (budgets fail
    # closed) and cannot release the hold the store took, nor beat, so a survivor takes it
    # for lost. The survivor must find the refusal, not charge the estimate.
    clock = Clock()
    limits, ledger, audit = CutOff(clock), MemoryUsageLedger(), MemoryAuditStore()
    book = BudgetBook(limits, ledger, {}, clock=lambda: NOW, instance="partitioned")
    await limits.beat("partitioned", ttl_s=5)
    who = principal(budget_tokens=10_000)
    (line,) = book.lines(who)
    await limits.seed(line.key, BudgetCharge())
    limits.cut = True
    with pytest.raises(ServiceUnavailableError):
        await book.reserve("refused", who, BudgetCharge(700, 700), model="m")
    assert await limits.state(line.key.key) == BudgetState(BudgetCharge(), BudgetCharge(700, 700))
    assert [(r.kind, r.source, r.amount_micros) for r in await ledger.for_request("refused")] == [
        ("settle", "refused", 0)
    ]

    limits.cut = False  # the survivor's own link works
    survivor = Reclaimer(
        limits,
        ledger,
        audit,
        BudgetBook(limits, ledger, {}, clock=lambda: NOW, instance="b"),
        instance="b",
        heartbeat_s=1,
        ttl_s=5,
        clock=lambda: NOW,
    )
    clock.now += 6
    assert await survivor.tick() == 1
    assert await limits.state(line.key.key) == BudgetState(BudgetCharge(), BudgetCharge())
    assert len(await ledger.for_request("refused")) == 1
    await book.flush()  # the deferred release, once the link heals, changes nothing
    assert await limits.state(line.key.key) == BudgetState(BudgetCharge(), BudgetCharge())


def test_instance_ids_are_unique_and_safe_in_a_redis_hash_tag() -> None:
    ids = {new_instance_id() for _ in range(100)}
    assert len(ids) == 100
    assert not any(c in "{}: " for i in ids for c in i)
