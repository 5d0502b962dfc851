"""Breakers go closed → open → half open → closed (or open again) on an injected clock, in
memory and through a real Redis, and three instances sharing Redis see one another's trips."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from aperture.routing.breaker import Breakers, BreakerSettings, SharedBreakers
from aperture.storage.base import StorageError
from aperture.storage.memory import MemoryCounters
from aperture.storage.records import Admission
from aperture.storage.redis_counters import RedisCounters

# Fixtures are found by name, so importing them is how this module gets them.
from tests.contract.services import redis_counters, redis_server  # noqa: F401

pytestmark = pytest.mark.anyio

KEY = "openai/gpt-4o"
WINDOW = 30.0
START = WINDOW * 100_000  # on a window boundary, so tests can place calls within windows


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeBreakers = Callable[[BreakerSettings], Breakers]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["local", "redis"])
def make(request: pytest.FixtureRequest, clock: Clock) -> MakeBreakers:
    if request.param == "local":
        return lambda settings: Breakers(MemoryCounters(clock), settings, clock)
    counters: RedisCounters = request.getfixturevalue("redis_counters")
    return lambda settings: SharedBreakers(counters, settings, clock=clock)


async def record_many(breakers: Breakers, outcomes: str, key: str = KEY) -> None:
    """``outcomes`` as a string: ``s`` a success, ``f`` a failure."""
    for outcome in outcomes:
        await breakers.record(key, ok=outcome == "s")


async def trip(breakers: Breakers, key: str = KEY) -> None:
    await record_many(breakers, "f" * breakers.settings.consecutive_failures, key)
    assert await breakers.state(key) == "open"


async def test_a_new_breaker_is_closed_and_allows(make: MakeBreakers) -> None:
    breakers = make(BreakerSettings())
    assert await breakers.state(KEY) == "closed"
    assert await breakers.allow(KEY)


async def test_consecutive_failures_trip_it(make: MakeBreakers) -> None:
    breakers = make(BreakerSettings(consecutive_failures=3))
    await record_many(breakers, "ff")
    assert await breakers.state(KEY) == "closed"
    await record_many(breakers, "f")
    assert await breakers.state(KEY) == "open"
    assert not await breakers.allow(KEY)
    assert await breakers.state("other/model") == "closed"  # per target


async def test_a_success_breaks_the_streak(make: MakeBreakers) -> None:
    breakers = make(BreakerSettings(consecutive_failures=3))
    await record_many(breakers, "ffsffsff")
    assert await breakers.state(KEY) == "closed"


async def test_the_error_ratio_trips_it_once_the_window_holds_min_calls(
    make: MakeBreakers,
) -> None:
    breakers = make(BreakerSettings(consecutive_failures=100, error_ratio=0.5, min_calls=10))
    await record_many(breakers, "sfsfsfsf" + "s")  # 4 of 9: too few calls to judge
    assert await breakers.state(KEY) == "closed"
    await record_many(breakers, "f")  # 5 of 10
    assert await breakers.state(KEY) == "open"


async def test_a_ratio_under_the_threshold_stays_closed(make: MakeBreakers) -> None:
    breakers = make(BreakerSettings(consecutive_failures=100, error_ratio=0.5, min_calls=10))
    await record_many(breakers, "ssf" * 20)
    assert await breakers.state(KEY) == "closed"


async def test_the_window_slides(make: MakeBreakers, clock: Clock) -> None:
    settings = BreakerSettings(consecutive_failures=100, min_calls=10, window_s=WINDOW)
    # Nine failures, then two more just after the window turns: the previous window still
    # counts almost whole, so about eleven failures in as many calls.
    breakers = make(settings)
    await record_many(breakers, "f" * 9, key="a")
    clock.advance(WINDOW + 0.01)
    await record_many(breakers, "ff", key="a")
    assert await breakers.state("a") == "open"
    # Half way into the next window only half of the earlier nine count: 6.5 calls, too few.
    await record_many(breakers, "f" * 9, key="b")
    clock.advance(WINDOW * 1.5)
    await record_many(breakers, "ff", key="b")
    assert await breakers.state("b") == "closed"
    # Two windows later they are gone altogether.
    await record_many(breakers, "f" * 9, key="c")
    clock.advance(WINDOW * 2)
    await record_many(breakers, "f", key="c")
    assert await breakers.state("c") == "closed"


async def test_answers_arriving_while_open_change_nothing(make: MakeBreakers, clock: Clock) -> None:
    breakers = make(BreakerSettings(cooldown_s=15))
    await trip(breakers)
    await record_many(breakers, "sss")  # late answers to calls admitted before the trip
    assert await breakers.state(KEY) == "open"
    clock.advance(14.9)
    assert not await breakers.allow(KEY)


async def test_after_the_cooldown_one_probe_is_admitted_and_success_closes(
    make: MakeBreakers, clock: Clock
) -> None:
    breakers = make(BreakerSettings(cooldown_s=15, half_open_probes=1))
    await trip(breakers)
    clock.advance(15)
    assert await breakers.state(KEY) == "half_open"
    assert await breakers.allow(KEY)
    assert not await breakers.allow(KEY)  # the probe is out; everyone else waits
    await breakers.record(KEY, ok=True)
    assert await breakers.state(KEY) == "closed"
    assert await breakers.allow(KEY)
    # Recovery starts clean: the failures that tripped it are forgotten.
    await record_many(breakers, "f" * 4)
    assert await breakers.state(KEY) == "closed"


async def test_a_failed_probe_opens_it_for_another_cooldown(
    make: MakeBreakers, clock: Clock
) -> None:
    breakers = make(BreakerSettings(cooldown_s=15))
    await trip(breakers)
    clock.advance(16)
    assert await breakers.allow(KEY)
    await breakers.record(KEY, ok=False)
    assert await breakers.state(KEY) == "open"
    clock.advance(14)
    assert not await breakers.allow(KEY)
    clock.advance(1)
    assert await breakers.allow(KEY)  # a new half-open period, a new probe
    await breakers.record(KEY, ok=True)
    assert await breakers.state(KEY) == "closed"


async def test_half_open_admits_the_configured_number_of_probes(
    make: MakeBreakers, clock: Clock
) -> None:
    breakers = make(BreakerSettings(cooldown_s=10, half_open_probes=3))
    await trip(breakers)
    clock.advance(10)
    admitted = [await breakers.allow(KEY) for _ in range(5)]
    assert admitted == [True, True, True, False, False]


async def test_a_probe_that_never_reports_frees_its_slot_after_a_cooldown(
    make: MakeBreakers, clock: Clock
) -> None:
    breakers = make(BreakerSettings(cooldown_s=10))
    await trip(breakers)
    clock.advance(10)
    assert await breakers.allow(KEY)  # this probe's instance dies without recording
    clock.advance(9)
    assert not await breakers.allow(KEY)
    clock.advance(1)
    assert await breakers.allow(KEY)


async def test_a_half_open_breaker_nobody_probes_forgets_itself(clock: Clock) -> None:
    # Only in memory: in Redis the same TTL runs on the server's real clock.
    breakers = Breakers(MemoryCounters(clock), BreakerSettings(cooldown_s=15, window_s=30), clock)
    await trip(breakers)
    clock.advance(15 + 30)
    assert await breakers.state(KEY) == "closed"


async def test_shared_state_keys_expire_in_redis(redis_counters: RedisCounters) -> None:  # noqa: F811
    breakers = SharedBreakers(redis_counters, BreakerSettings(cooldown_s=15, window_s=30))
    await trip(breakers)
    ttl = await redis_counters.ttl(f"breaker:{KEY}")
    assert ttl is not None
    assert 30 < ttl <= 45


async def test_a_hold_opens_it_at_once_for_its_own_time(make: MakeBreakers, clock: Clock) -> None:
    # A spent quota: one answer is proof, and the hold outlasts the ordinary cooldown.
    breakers = make(BreakerSettings(cooldown_s=15))
    await breakers.hold(KEY, 60)
    assert await breakers.state(KEY) == "open"
    assert not await breakers.allow(KEY)
    assert await breakers.retry_in_s(KEY) == pytest.approx(60)
    clock.advance(59)
    assert not await breakers.allow(KEY)
    clock.advance(1)
    # Then it half-opens like a trip: one probe, whose answer decides.
    assert await breakers.state(KEY) == "half_open"
    assert await breakers.allow(KEY)
    assert not await breakers.allow(KEY)
    await breakers.record(KEY, ok=True)
    assert await breakers.state(KEY) == "closed"


async def test_a_probe_meeting_the_quota_again_holds_it_again(
    make: MakeBreakers, clock: Clock
) -> None:
    breakers = make(BreakerSettings(cooldown_s=15))
    await breakers.hold(KEY, 60)
    clock.advance(60)
    assert await breakers.allow(KEY)
    await breakers.hold(KEY, 60)
    assert not await breakers.allow(KEY)
    assert await breakers.retry_in_s(KEY) == pytest.approx(60)


async def test_a_hold_never_shortens_a_longer_open(make: MakeBreakers, clock: Clock) -> None:
    breakers = make(BreakerSettings(cooldown_s=15))
    await breakers.hold(KEY, 60)
    await breakers.hold(KEY, 5)
    assert await breakers.retry_in_s(KEY) == pytest.approx(60)
    # ... but lengthens a shorter one (a trip, then a quota answer).
    other = "other/model"
    await trip(breakers, other)
    await breakers.hold(other, 60)
    assert await breakers.retry_in_s(other) == pytest.approx(60)


async def test_retry_in_says_when_a_probe_is_next_admitted(
    make: MakeBreakers, clock: Clock
) -> None:
    breakers = make(BreakerSettings(cooldown_s=10))
    assert await breakers.retry_in_s(KEY) == 0
    await trip(breakers)
    assert await breakers.retry_in_s(KEY) == pytest.approx(10)
    clock.advance(4)
    assert await breakers.retry_in_s(KEY) == pytest.approx(6)
    clock.advance(6)
    assert await breakers.retry_in_s(KEY) == 0  # half open, the probe slot free
    assert await breakers.allow(KEY)
    clock.advance(3)
    # The slot's probe is out and has not answered: the next slot opens in 7 s.
    assert await breakers.retry_in_s(KEY) == pytest.approx(7)


class BrokenCounters:
    """A store that is down: every call fails as a real backend outage would."""

    async def incr(
        self, key: str, amount: int = 1, *, limit: int | None = None, ttl_s: float
    ) -> Admission:
        raise StorageError("redis down")

    async def get(self, key: str) -> int | None:
        raise StorageError("redis down")

    async def set(
        self, key: str, value: int, *, ttl_s: float, only_if_absent: bool = False
    ) -> bool:
        raise StorageError("redis down")

    async def delete(self, key: str) -> None:
        raise StorageError("redis down")


async def test_a_store_outage_fails_open() -> None:
    breakers = SharedBreakers(BrokenCounters())
    await breakers.record(KEY, ok=False)
    await breakers.hold(KEY, 60)
    assert await breakers.allow(KEY)
    assert await breakers.state(KEY) == "closed"
    assert await breakers.retry_in_s(KEY) == 0


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="error_ratio"):
        BreakerSettings(error_ratio=0)
    with pytest.raises(ValueError, match="must be >= 1"):
        BreakerSettings(half_open_probes=0)
    with pytest.raises(ValueError, match="positive"):
        BreakerSettings(cooldown_s=0)


# Three instances, one Redis


@pytest.fixture
async def instances(
    redis_server: str,  # noqa: F811
    redis_counters: RedisCounters,  # noqa: F811
    clock: Clock,
) -> AsyncIterator[list[SharedBreakers]]:
    """Three gateway instances: own clients, one Redis, the test's key prefix, one clock."""
    others = [RedisCounters.from_url(redis_server, prefix=redis_counters.prefix) for _ in range(2)]
    settings = BreakerSettings(consecutive_failures=5, cooldown_s=15, half_open_probes=1)
    try:
        yield [
            SharedBreakers(counters, settings, clock=clock)
            for counters in (redis_counters, *others)
        ]
    finally:
        for counters in others:
            await counters.close()


async def states(instances: list[SharedBreakers]) -> list[str]:
    return [await b.state(KEY) for b in instances]


async def test_a_breaker_one_instance_trips_is_open_in_the_others(
    instances: list[SharedBreakers], clock: Clock
) -> None:
    a, b, c = instances
    await trip(a)
    assert await states(instances) == ["open"] * 3
    assert [await i.allow(KEY) for i in instances] == [False] * 3
    # Recovery: after the cooldown exactly one probe in the whole cluster...
    clock.advance(15)
    assert await states(instances) == ["half_open"] * 3
    assert [await b.allow(KEY), await c.allow(KEY), await a.allow(KEY)] == [True, False, False]
    # ... and its success closes the breaker everywhere.
    await b.record(KEY, ok=True)
    assert await states(instances) == ["closed"] * 3
    assert [await i.allow(KEY) for i in instances] == [True] * 3


async def test_failures_seen_by_different_instances_add_up(
    instances: list[SharedBreakers],
) -> None:
    a, b, c = instances
    for breakers, outcomes in ((a, "ff"), (b, "ff"), (c, "f")):
        await record_many(breakers, outcomes)
    assert await states(instances) == ["open"] * 3


async def test_a_quota_hold_by_one_instance_is_seen_by_all(
    instances: list[SharedBreakers], clock: Clock
) -> None:
    a, b, c = instances
    await b.hold(KEY, 60)
    assert [await i.allow(KEY) for i in instances] == [False] * 3
    assert [round(await i.retry_in_s(KEY)) for i in instances] == [60] * 3
    clock.advance(60)
    assert [await c.allow(KEY), await a.allow(KEY)] == [True, False]


async def test_a_failed_probe_on_one_instance_reopens_it_for_all(
    instances: list[SharedBreakers], clock: Clock
) -> None:
    a, _, c = instances
    await trip(a)
    clock.advance(15)
    assert await c.allow(KEY)
    await c.record(KEY, ok=False)
    assert await states(instances) == ["open"] * 3
    clock.advance(15)
    assert await a.allow(KEY)
    await a.record(KEY, ok=True)
    assert await states(instances) == ["closed"] * 3
