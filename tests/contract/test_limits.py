"""The limits' contract, on memory and on Redis: exact windows, atomic all-or-nothing budget
holds, idempotent retries, and keys that always expire.

Time passes for real on Redis (short windows, real sleeps: the scripts read the server's
clock) and on an injected clock in memory, through the same ``Backend.sleep``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest

from aperture.storage import (
    BudgetCharge,
    BudgetDecision,
    BudgetScope,
    BudgetState,
    ClaimedHold,
    Limits,
    StorageError,
    WindowAdmission,
)
from aperture.storage.memory_limits import APPLIED_TTL_S, SWEEP_EVERY, MemoryLimits
from aperture.storage.redis_counters import RedisCounters
from aperture.storage.redis_limits import RedisLimits

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """A ``Limits`` under test, and how time passes for it."""

    limits: Limits
    now: Callable[[], float]
    clock: FakeClock | None = None
    redis_url: str | None = None
    prefix: str = ""

    @property
    def tolerance(self) -> float:
        """How far a measured ``retry_after_s`` may be from the expected one."""
        return 1e-6 if self.clock is not None else 0.1

    async def sleep(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.now += seconds
        else:
            await anyio.sleep(seconds)

    @asynccontextmanager
    async def peers(self, n: int) -> AsyncIterator[list[Limits]]:
        """``n`` instances sharing the same state: on Redis, each on a pool of its own."""
        if self.redis_url is None:
            yield [self.limits] * n
            return
        pools = [RedisCounters.from_url(self.redis_url, prefix=self.prefix) for _ in range(n)]
        try:
            yield [RedisLimits(pool.client, prefix=self.prefix) for pool in pools]
        finally:
            for pool in pools:
                await pool.close()


@pytest.fixture
async def redis_limits(redis_counters: RedisCounters) -> RedisLimits:
    """Limits on the counters' client and prefix (whose keys the counters fixture deletes)."""
    return RedisLimits(redis_counters.client, prefix=redis_counters.prefix)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        clock = FakeClock()
        return Backend(MemoryLimits(clock), clock, clock)
    limits: RedisLimits = request.getfixturevalue("redis_limits")
    url: str = request.getfixturevalue("redis_server")
    return Backend(limits, time.monotonic, redis_url=url, prefix=limits.prefix)


def fresh(kind: str = "rpm") -> str:
    return f"{kind}:{uuid.uuid4().hex[:8]}"


def scope(
    key: str, *, micros: int | None = None, tokens: int | None = None, ttl_s: float = 3600
) -> BudgetScope:
    return BudgetScope(key=key, limit_micros=micros, limit_tokens=tokens, ttl_s=ttl_s)


def state(
    spent: int, reserved: int, spent_tokens: int = 0, reserved_tokens: int = 0
) -> BudgetState:
    return BudgetState(BudgetCharge(spent, spent_tokens), BudgetCharge(reserved, reserved_tokens))


async def used(limits: Limits, key: str, *, limit: int, window_s: float) -> int:
    """The window's total, read by a cost that can never fit (so nothing is added)."""
    probe = await limits.acquire(key, "probe", limit + 1, limit=limit, window_s=window_s)
    assert probe == WindowAdmission(False, probe.used, None)
    return probe.used


# Sliding windows


class Stamp:
    """When a call ran, as the interval around it: on a real clock a member is stamped, and a
    refusal computed, at some moment between the call's start and its return."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.start = self.end = backend.now()

    async def __aenter__(self) -> Stamp:
        self.start = self._backend.now()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.end = self._backend.now()


def assert_retry_after(
    backend: Backend, retry_after_s: float | None, entered: Stamp, refused: Stamp
) -> None:
    """``retry_after_s`` is when the member stamped during ``entered`` leaves a 1 s window,
    counted from the refusal computed during ``refused``, within the clock's tolerance."""
    assert retry_after_s is not None
    earliest = 1.0 - (refused.end - entered.start) - backend.tolerance
    latest = 1.0 - (refused.start - entered.end) + backend.tolerance
    assert earliest <= retry_after_s <= latest


async def test_the_window_moves_exactly(backend: Backend) -> None:
    limits, key = backend.limits, fresh()

    async def hit(member: str) -> WindowAdmission:
        return await limits.acquire(key, member, 1, limit=5, window_s=1.0)

    async with Stamp(backend) as first:
        assert (await hit("a")).used == 1
    assert [(await hit(m)).used for m in "bc"] == [2, 3]
    await backend.sleep(0.5)
    async with Stamp(backend) as later:
        assert (await hit("d")).admitted
    assert (await hit("e")).admitted

    async with Stamp(backend) as asked:
        refused = await hit("f")
    assert (refused.admitted, refused.used) == (False, 5)
    assert_retry_after(backend, refused.retry_after_s, first, asked)

    await backend.sleep(0.6)  # a, b and c slid out; d and e are still in the last second
    assert [(await hit(m)).used for m in "ghi"] == [3, 4, 5]
    async with Stamp(backend) as asked:
        refused = await hit("j")
    assert not refused.admitted
    assert_retry_after(backend, refused.retry_after_s, later, asked)


async def test_costs_are_weighed_and_retry_after_waits_for_enough_to_slide_out(
    backend: Backend,
) -> None:
    limits, key = backend.limits, fresh("tpm")

    async def take(member: str, cost: int) -> WindowAdmission:
        return await limits.acquire(key, member, cost, limit=10, window_s=1.0)

    async with Stamp(backend) as first:
        assert await take("a", 4) == WindowAdmission(True, 4)
    await backend.sleep(0.3)
    async with Stamp(backend) as second:
        assert await take("b", 4) == WindowAdmission(True, 8)
    await backend.sleep(0.3)

    async with Stamp(backend) as asked:
        fits_when_a_leaves = await take("c", 5)
    assert (fits_when_a_leaves.admitted, fits_when_a_leaves.used) == (False, 8)
    assert_retry_after(backend, fits_when_a_leaves.retry_after_s, first, asked)
    async with Stamp(backend) as asked:
        fits_when_b_leaves = await take("d", 7)
    assert_retry_after(backend, fits_when_b_leaves.retry_after_s, second, asked)
    assert await take("e", 11) == WindowAdmission(False, 8, None)  # never fits
    assert await take("f", 2) == WindowAdmission(True, 10)
    assert await take("g", 0) == WindowAdmission(True, 10)


async def test_a_member_already_in_the_window_is_not_counted_twice(backend: Backend) -> None:
    limits, key = backend.limits, fresh()
    assert await limits.acquire(key, "m", 2, limit=3, window_s=60) == WindowAdmission(True, 2)
    assert await limits.acquire(key, "m", 2, limit=3, window_s=60) == WindowAdmission(True, 2)
    assert await limits.acquire(key, "n", 1, limit=3, window_s=60) == WindowAdmission(True, 3)
    # A retried acquire of a member already in a full window is still admitted.
    assert await limits.acquire(key, "m", 2, limit=3, window_s=60) == WindowAdmission(True, 3)
    assert await used(limits, key, limit=3, window_s=60) == 3


async def test_a_cost_over_the_limit_is_refused_for_good(backend: Backend) -> None:
    limits, key = backend.limits, fresh()
    assert await limits.acquire(key, "m", 6, limit=5, window_s=60) == WindowAdmission(
        False, 0, None
    )
    assert await limits.acquire(key, "m", 5, limit=5, window_s=60) == WindowAdmission(True, 5)


async def test_adjust_corrects_a_cost_never_below_zero(backend: Backend) -> None:
    limits, key = backend.limits, fresh("tpm")
    await limits.acquire(key, "m", 5, limit=10, window_s=60)
    await limits.acquire(key, "n", 2, limit=10, window_s=60)

    await limits.adjust(key, "m", 2, window_s=60)
    assert await used(limits, key, limit=10, window_s=60) == 9
    await limits.adjust(key, "m", -100, window_s=60)  # m's cost floors at 0, n's stays
    assert await used(limits, key, limit=10, window_s=60) == 2
    await limits.adjust(key, "ghost", 50, window_s=60)  # not in the window: left alone
    assert await used(limits, key, limit=10, window_s=60) == 2

    await limits.adjust(key, "n", 20, window_s=60)  # real usage may pass the limit
    assert await used(limits, key, limit=10, window_s=60) == 22
    over = await limits.acquire(key, "x", 0, limit=10, window_s=60)
    assert (over.admitted, over.used) == (False, 22)
    assert over.retry_after_s is not None
    assert 59 < over.retry_after_s <= 60


async def test_adjust_leaves_a_member_that_slid_out_alone(backend: Backend) -> None:
    limits, key = backend.limits, fresh("tpm")
    await limits.acquire(key, "m", 5, limit=10, window_s=0.3)
    await backend.sleep(0.45)
    await limits.adjust(key, "m", 5, window_s=0.3)
    assert await used(limits, key, limit=10, window_s=0.3) == 0
    assert await limits.acquire(key, "m", 10, limit=10, window_s=0.3) == WindowAdmission(True, 10)


async def test_windows_refuse_nonsense(backend: Backend) -> None:
    with pytest.raises(ValueError, match="window_s"):
        await backend.limits.acquire(fresh(), "m", 1, limit=5, window_s=0)
    with pytest.raises(ValueError, match="cost"):
        await backend.limits.acquire(fresh(), "m", -1, limit=5, window_s=1)
    with pytest.raises(ValueError, match="window_s"):
        await backend.limits.adjust(fresh(), "m", 1, window_s=-1)


# Budgets


async def test_a_reservation_holds_in_every_scope_or_in_none(backend: Backend) -> None:
    limits = backend.limits
    key, team = scope(fresh("key"), micros=1000), scope(fresh("team"), micros=500)
    assert await limits.seed(key, BudgetCharge()) is True
    assert await limits.seed(team, BudgetCharge(100)) is True

    decision = await limits.reserve("r1", [key, team], BudgetCharge(300), hold_s=60)
    assert decision == BudgetDecision(outcome="reserved")
    assert await limits.state(key.key) == state(0, 300)
    assert await limits.state(team.key) == state(100, 300)

    denied = await limits.reserve("r2", [key, team], BudgetCharge(200), hold_s=60)
    assert denied == BudgetDecision(outcome="denied", scope=team.key, state=state(100, 300))
    assert await limits.state(key.key) == state(0, 300)  # nothing held where there was room

    # The denied request holds nothing, not even its id: a smaller estimate gets in.
    retried = await limits.reserve("r2", [key, team], BudgetCharge(100), hold_s=60)
    assert retried.outcome == "reserved"
    assert await limits.state(key.key) == state(0, 400)
    assert await limits.state(team.key) == state(100, 400)


async def test_token_limits_and_unlimited_money(backend: Backend) -> None:
    limits, budget = backend.limits, scope(fresh("key"), tokens=1000)
    await limits.seed(budget, BudgetCharge(0, 100))
    assert (await limits.reserve("a", [budget], BudgetCharge(0, 800), hold_s=60)).outcome == (
        "reserved"
    )
    denied = await limits.reserve("b", [budget], BudgetCharge(0, 101), hold_s=60)
    assert denied == BudgetDecision(outcome="denied", scope=budget.key, state=state(0, 0, 100, 800))
    rich = await limits.reserve("c", [budget], BudgetCharge(10**12, 100), hold_s=60)
    assert rich.outcome == "reserved"
    assert await limits.state(budget.key) == state(0, 10**12, 100, 900)


async def test_an_unseeded_scope_asks_to_be_seeded(backend: Backend) -> None:
    limits = backend.limits
    seeded, unseeded = scope(fresh("key"), micros=1000), scope(fresh("team"), micros=1000)
    await limits.seed(seeded, BudgetCharge())
    assert await limits.state(unseeded.key) is None

    decision = await limits.reserve("r", [seeded, unseeded], BudgetCharge(10), hold_s=60)
    assert decision == BudgetDecision(outcome="unseeded", scope=unseeded.key)
    assert await limits.state(seeded.key) == state(0, 0)

    await limits.seed(unseeded, BudgetCharge(990))
    again = await limits.reserve("r", [seeded, unseeded], BudgetCharge(10), hold_s=60)
    assert again.outcome == "reserved"
    assert await limits.state(unseeded.key) == state(990, 10)


async def test_seeding_is_never_additive(backend: Backend) -> None:
    budget = scope(fresh("key"), micros=1000)
    async with backend.peers(3) as peers:
        results: list[bool] = []

        async def seed(i: int) -> None:
            results.append(await peers[i % 3].seed(budget, BudgetCharge(100 + i, i)))

        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(seed, i)

    assert sorted(results) == [False] * 11 + [True]
    first = await backend.limits.state(budget.key)
    assert first is not None
    assert first.spent.micros - 100 == first.spent.tokens  # one seed, whole; none added
    assert await backend.limits.seed(budget, BudgetCharge(1)) is False
    assert await backend.limits.state(budget.key) == first


async def test_a_retried_reserve_is_a_duplicate(backend: Backend) -> None:
    limits, budget = backend.limits, scope(fresh("key"), micros=1000)
    await limits.seed(budget, BudgetCharge())
    assert (await limits.reserve("r", [budget], BudgetCharge(300), hold_s=60)).outcome == (
        "reserved"
    )
    again = await limits.reserve("r", [budget], BudgetCharge(500), hold_s=60)
    assert again == BudgetDecision(outcome="duplicate")
    assert await limits.state(budget.key) == state(0, 300)


async def test_settle_counts_once(backend: Backend) -> None:
    limits, budget = backend.limits, scope(fresh("key"), micros=1000)
    await limits.seed(budget, BudgetCharge(50, 5))
    await limits.reserve("r", [budget], BudgetCharge(300, 30), hold_s=60)

    assert await limits.settle("r", [budget], BudgetCharge(250, 20)) is True
    assert await limits.settle("r", [budget], BudgetCharge(250, 20)) is False
    assert await limits.state(budget.key) == state(300, 0, 25, 0)
    # A settled request id cannot hold again (it would only leak until the hold lapses).
    late = await limits.reserve("r", [budget], BudgetCharge(300), hold_s=60)
    assert late.outcome == "duplicate"

    await limits.reserve("free", [budget], BudgetCharge(200), hold_s=60)
    assert await limits.settle("free", [budget], BudgetCharge()) is True  # a plain release
    assert await limits.state(budget.key) == state(300, 0, 25, 0)


async def test_settle_after_the_hold_lapsed_still_counts(backend: Backend) -> None:
    limits, budget = backend.limits, scope(fresh("key"), micros=1000)
    await limits.seed(budget, BudgetCharge())
    await limits.reserve("slow", [budget], BudgetCharge(300), hold_s=0.3)
    await backend.sleep(0.45)

    assert await limits.state(budget.key) == state(0, 0)
    assert await limits.settle("slow", [budget], BudgetCharge(200)) is True
    assert await limits.state(budget.key) == state(200, 0)


async def test_lapsed_holds_free_their_room(backend: Backend) -> None:
    limits, budget = backend.limits, scope(fresh("key"), micros=600)
    await limits.seed(budget, BudgetCharge())
    await limits.reserve("crashed", [budget], BudgetCharge(300), hold_s=0.3)
    await limits.reserve("alive", [budget], BudgetCharge(200), hold_s=60)
    assert (await limits.reserve("new", [budget], BudgetCharge(200), hold_s=60)).outcome == (
        "denied"
    )

    await backend.sleep(0.45)
    assert await limits.state(budget.key) == state(0, 200)
    assert (await limits.reserve("new", [budget], BudgetCharge(200), hold_s=60)).outcome == (
        "reserved"
    )
    assert await limits.state(budget.key) == state(0, 400)


async def test_settle_leaves_unseeded_scopes_unseeded(backend: Backend) -> None:
    limits, budget = backend.limits, scope(fresh("key"), micros=1000)
    assert await limits.settle("r", [budget], BudgetCharge(100)) is True
    assert await limits.state(budget.key) is None


async def test_budgets_refuse_nonsense(backend: Backend) -> None:
    budget = scope(fresh("key"), micros=1000)
    with pytest.raises(ValueError, match="hold_s"):
        await backend.limits.reserve("r", [budget], BudgetCharge(1), hold_s=0)
    with pytest.raises(ValueError, match="estimate"):
        await backend.limits.reserve("r", [budget], BudgetCharge(-1), hold_s=1)
    with pytest.raises(ValueError, match="distinct"):
        await backend.limits.reserve("r", [budget, budget], BudgetCharge(1), hold_s=1)
    with pytest.raises(ValueError, match="actual"):
        await backend.limits.settle("r", [budget], BudgetCharge(0, -1))
    with pytest.raises(ValueError, match="ttl_s"):
        await backend.limits.seed(scope(fresh("key"), ttl_s=0), BudgetCharge())


async def test_concurrent_reservations_admit_exactly_what_fits(backend: Backend) -> None:
    key, team = scope(fresh("key"), micros=10_000), scope(fresh("team"), micros=10**9)
    await backend.limits.seed(key, BudgetCharge())
    await backend.limits.seed(team, BudgetCharge(5))
    decisions: dict[str, str] = {}
    settled: list[bool] = []

    async with backend.peers(3) as peers:

        async def reserve(i: int) -> None:
            limits = peers[i % 3]
            decision = await limits.reserve(f"r{i}", [key, team], BudgetCharge(1000), hold_s=60)
            decisions[f"r{i}"] = decision.outcome

        async def settle(i: int, request_id: str) -> None:
            actual = BudgetCharge(100 * int(request_id[1:]) + 7, 3)
            settled.append(await peers[i % 3].settle(request_id, [key, team], actual))

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(reserve, i)

        admitted = sorted(r for r, outcome in decisions.items() if outcome == "reserved")
        assert len(admitted) == 10
        assert sorted(decisions.values()).count("denied") == 40
        assert await backend.limits.state(key.key) == state(0, 10_000)

        async with anyio.create_task_group() as tg:
            for i in range(6):  # every request settled twice, from different instances
                for request_id in admitted:
                    tg.start_soon(settle, i, request_id)

    assert settled.count(True) == 10
    spent = sum(100 * int(r[1:]) + 7 for r in admitted)
    assert await backend.limits.state(key.key) == state(spent, 0, 30, 0)
    assert await backend.limits.state(team.key) == state(5 + spent, 0, 30, 0)


async def test_reserve_and_settle_retried_after_lost_replies_count_once(
    backend: Backend,
) -> None:
    limits, budget = backend.limits, scope(fresh("key"), micros=1000, tokens=100)
    await limits.seed(budget, BudgetCharge())
    for _ in range(3):  # the first reply was lost, twice: the caller tries again
        decision = await limits.reserve(
            "r", [budget], BudgetCharge(300, 30), hold_s=60, owner="a", note=b"n"
        )
        assert decision.outcome in ("reserved", "duplicate")
    assert await limits.state(budget.key) == state(0, 300, 0, 30)

    applied = [
        await limits.settle("r", [budget], BudgetCharge(200, 20), owner="a") for _ in range(3)
    ]
    assert applied == [True, False, False]
    assert await limits.state(budget.key) == state(200, 0, 20, 0)
    # Nothing is left in the instance's index for a survivor to charge again.
    await limits.retire("a")
    assert "a" not in await limits.lost()
    assert await limits.claim("a", lease_s=60, limit=10) == []


async def test_a_lost_instance_has_its_holds_claimed_once(backend: Backend) -> None:
    budget = scope(fresh("key"), micros=10_000)
    dead, alive = f"dead-{uuid.uuid4().hex[:6]}", f"alive-{uuid.uuid4().hex[:6]}"
    async with backend.peers(3) as (limits, survivor, other):
        await limits.seed(budget, BudgetCharge())
        await limits.beat(dead, ttl_s=0.3)
        await survivor.beat(alive, ttl_s=60)
        for i in range(5):
            await limits.reserve(
                f"d{i}", [budget], BudgetCharge(100), hold_s=60, owner=dead, note=b"%d" % i
            )
        await survivor.reserve("s", [budget], BudgetCharge(100), hold_s=60, owner=alive)
        assert dead not in await survivor.lost()
        assert await survivor.claim(dead, lease_s=60, limit=10) == []  # not lost yet

        await backend.sleep(0.45)
        lost = await survivor.lost()
        assert dead in lost and alive not in lost
        assert await survivor.claim(alive, lease_s=60, limit=10) == []
        first, second = (
            await survivor.claim(dead, lease_s=0.3, limit=3),
            await other.claim(dead, lease_s=0.3, limit=3),
        )
        assert len(first) == 3 and len(second) == 2
        claimed = {hold.request_id: hold for hold in first + second}
        assert claimed == {
            f"d{i}": ClaimedHold(dead, f"d{i}", b"%d" % i) for i in range(5)
        }  # each once, with the note its owner stored
        assert await other.claim(dead, lease_s=0.3, limit=10) == []  # all leased

        # d0 is settled; the survivor that claimed d1 died: its lease lapses, d1 comes back.
        assert await survivor.settle("d0", [budget], BudgetCharge(100), owner=dead) is True
        await backend.sleep(0.45)
        again = await other.claim(dead, lease_s=60, limit=10)
        assert sorted(hold.request_id for hold in again) == ["d1", "d2", "d3", "d4"]
        for hold in again:
            assert await other.settle(hold.request_id, [budget], BudgetCharge(100), owner=dead)
        assert await limits.state(budget.key) == state(500, 100)

        assert await other.claim(dead, lease_s=60, limit=10) == []
        assert dead not in await other.lost()  # nothing left: forgotten


async def test_a_heartbeat_that_comes_back_stops_the_claims(backend: Backend) -> None:
    budget = scope(fresh("key"), micros=1000)
    slow = f"slow-{uuid.uuid4().hex[:6]}"
    await backend.limits.seed(budget, BudgetCharge())
    await backend.limits.beat(slow, ttl_s=0.3)
    await backend.limits.reserve("r", [budget], BudgetCharge(1), hold_s=60, owner=slow)
    await backend.sleep(0.45)
    assert slow in await backend.limits.lost()
    await backend.limits.beat(slow, ttl_s=60)
    assert slow not in await backend.limits.lost()
    assert await backend.limits.claim(slow, lease_s=60, limit=10) == []


async def test_a_retired_instance_is_claimed_at_once_or_forgotten(backend: Backend) -> None:
    budget = scope(fresh("key"), micros=1000)
    busy, idle = f"busy-{uuid.uuid4().hex[:6]}", f"idle-{uuid.uuid4().hex[:6]}"
    await backend.limits.seed(budget, BudgetCharge())
    for instance in (busy, idle):
        await backend.limits.beat(instance, ttl_s=60)
    await backend.limits.reserve("r", [budget], BudgetCharge(1), hold_s=60, owner=busy)
    await backend.limits.retire(busy)
    await backend.limits.retire(idle)

    lost = await backend.limits.lost()
    assert busy in lost and idle not in lost
    claimed = await backend.limits.claim(busy, lease_s=60, limit=10)
    assert [hold.request_id for hold in claimed] == ["r"]


async def test_instances_refuse_nonsense(backend: Backend) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        await backend.limits.beat("i", ttl_s=0)
    with pytest.raises(ValueError, match="lease_s"):
        await backend.limits.claim("i", lease_s=0, limit=1)
    with pytest.raises(ValueError, match="limit"):
        await backend.limits.claim("i", lease_s=1, limit=0)


# Backend specifics


async def test_every_redis_key_expires(redis_limits: RedisLimits) -> None:
    limits, prefix = redis_limits, redis_limits.prefix
    assert await limits.acquire("never", "m", 9, limit=5, window_s=60) == WindowAdmission(
        False, 0, None
    )
    await limits.settle("nothing", [scope("unseeded")], BudgetCharge(5))
    raw = limits.client
    assert [k async for k in raw.scan_iter(match=f"{prefix}*")] == [
        f"{prefix}applied:nothing".encode()
    ]

    await limits.acquire("rpm", "m", 1, limit=5, window_s=60)
    await limits.acquire("rpm", "n", 1, limit=5, window_s=60)
    await limits.adjust("rpm", "m", 3, window_s=60)
    budget = scope("key", micros=1000, ttl_s=120)
    await limits.seed(budget, BudgetCharge())
    await limits.reserve("held", [budget], BudgetCharge(10), hold_s=30)
    await limits.reserve("done", [budget], BudgetCharge(10), hold_s=30)
    await limits.settle("done", [budget], BudgetCharge(5))
    await limits.state("key")
    await limits.beat("i", ttl_s=5)
    await limits.reserve("owned", [budget], BudgetCharge(10), hold_s=30, owner="i")
    await limits.beat("gone", ttl_s=0.01)
    await limits.reserve("orphan", [budget], BudgetCharge(10), hold_s=30, owner="gone")
    await anyio.sleep(0.05)
    assert len(await limits.claim("gone", lease_s=5, limit=10)) == 1

    ttls = {
        key.decode().removeprefix(prefix): await raw.pttl(key)
        async for key in raw.scan_iter(match=f"{prefix}*")
    }
    assert set(ttls) == {
        "win:{rpm}:at",
        "win:{rpm}:cost",
        "bud:{key}",
        "bud:{key}:holds",
        "bud:{key}:amounts",
        "hold:held",
        "hold:owned",
        "hold:orphan",
        "applied:done",
        "applied:nothing",
        "instances",
        "inst:{i}:holds",
        "inst:{gone}:holds",
        "inst:{gone}:claims",
    }
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    assert ttls["hold:held"] <= 30_000
    assert 60_000 < ttls["applied:done"] <= 86_400_000


async def test_an_unreachable_redis_is_a_storage_error() -> None:
    counters = RedisCounters.from_url("redis://127.0.0.1:1/0")
    limits = RedisLimits(counters.client)
    budget = scope("key", micros=1)
    try:
        calls = [
            limits.acquire("k", "m", 1, limit=1, window_s=1),
            limits.adjust("k", "m", 1, window_s=1),
            limits.seed(budget, BudgetCharge()),
            limits.reserve("r", [budget], BudgetCharge(), hold_s=1),
            limits.settle("r", [budget], BudgetCharge()),
            limits.state("key"),
            limits.beat("i", ttl_s=1),
            limits.lost(),
            limits.claim("i", lease_s=1, limit=1),
            limits.retire("i"),
        ]
        for call in calls:
            with pytest.raises(StorageError, match=r"^redis (failed|unavailable)") as caught:
                await call
            assert not isinstance(caught.value.__cause__, StorageError)
    finally:
        await counters.close()


async def test_memory_stays_bounded() -> None:
    clock = FakeClock()
    limits = MemoryLimits(clock)
    for i in range(100):
        budget = scope(f"key:{i}", micros=10, ttl_s=5)
        await limits.acquire(f"rpm:{i}", "m", 1, limit=5, window_s=1)
        await limits.seed(budget, BudgetCharge())
        await limits.reserve(f"r{i}", [budget], BudgetCharge(1), hold_s=1)
        await limits.settle(f"s{i}", [budget], BudgetCharge(1))
    assert limits.stored() == 400

    clock.now += APPLIED_TTL_S + 1  # past every TTL, the settle markers' too
    for i in range(SWEEP_EVERY):
        await limits.acquire("busy", f"m{i}", 1, limit=10**6, window_s=1)
    assert limits.stored() == 1
