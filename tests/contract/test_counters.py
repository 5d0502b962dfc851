"""The counters' contract, on memory and on Redis: atomic, limited, and always expiring."""

from __future__ import annotations

import uuid

import anyio
import pytest

from aperture.storage import Admission, Counters
from aperture.storage.memory import MemoryCounters
from aperture.storage.redis_counters import RedisCounters

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> MemoryCounters | RedisCounters:
    if request.param == "memory":
        return MemoryCounters()
    redis: RedisCounters = request.getfixturevalue("redis_counters")
    return redis


async def ttl_of(counters: MemoryCounters | RedisCounters, key: str) -> float | None:
    """The TTL as the backend itself reports it: Redis's own PTTL, not our bookkeeping."""
    if isinstance(counters, RedisCounters):
        left = await counters.client.pttl(counters.prefix + key)
        return None if left < 0 else left / 1000
    return counters.ttl(key)


def fresh() -> str:
    return f"rpm:{{key-{uuid.uuid4().hex[:8]}}}"


async def test_concurrent_increments_admit_exactly_up_to_the_limit(counters: Counters) -> None:
    key = fresh()
    answers: list[Admission] = []

    async def hit() -> None:
        answers.append(await counters.incr(key, limit=100, ttl_s=60))

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(hit)

    admitted = sorted(a.value for a in answers if a.admitted)
    assert admitted == list(range(1, 101))
    assert all(a.value == 100 for a in answers if not a.admitted)
    assert await counters.get(key) == 100


async def test_a_refused_increment_changes_nothing(counters: Counters) -> None:
    key = fresh()
    assert await counters.incr(key, 70, limit=100, ttl_s=60) == Admission(True, 70)
    assert await counters.incr(key, 31, limit=100, ttl_s=60) == Admission(False, 70)
    assert await counters.incr(key, 30, limit=100, ttl_s=60) == Admission(True, 100)
    assert await counters.get(key) == 100


async def test_refused_first_increment_creates_no_key(counters: Counters) -> None:
    key = fresh()
    assert await counters.incr(key, 5, limit=4, ttl_s=60) == Admission(False, 0)
    assert await counters.get(key) is None


async def test_no_limit_and_negative_amounts_are_always_admitted(counters: Counters) -> None:
    key = fresh()
    assert await counters.incr(key, 10**12, ttl_s=60) == Admission(True, 10**12)
    assert await counters.incr(key, -(10**12) - 5, limit=0, ttl_s=60) == Admission(True, -5)


async def test_every_key_gets_a_ttl_that_later_increments_keep(
    counters: MemoryCounters | RedisCounters,
) -> None:
    key = fresh()
    await counters.incr(key, ttl_s=60)
    first = await ttl_of(counters, key)
    assert first is not None
    assert 0 < first <= 60

    await counters.incr(key, ttl_s=3600)  # a fixed window: the first TTL stands
    second = await ttl_of(counters, key)
    assert second is not None
    assert second <= first

    await counters.set("flag:" + key, 1, ttl_s=30)
    flag = await ttl_of(counters, "flag:" + key)
    assert flag is not None
    assert 0 < flag <= 30


async def test_keys_expire(counters: Counters) -> None:
    key = fresh()
    await counters.incr(key, 5, ttl_s=0.15)
    await counters.set("flag:" + key, 1, ttl_s=0.15)
    await anyio.sleep(0.4)

    assert await counters.get(key) is None
    assert await counters.get("flag:" + key) is None
    assert await counters.incr(key, 1, limit=5, ttl_s=60) == Admission(True, 1)


async def test_set_only_if_absent_seeds_once(counters: Counters) -> None:
    key = fresh()
    assert await counters.set(key, 42, ttl_s=60, only_if_absent=True) is True
    assert await counters.set(key, 7, ttl_s=60, only_if_absent=True) is False
    assert await counters.get(key) == 42
    assert await counters.set(key, 7, ttl_s=60) is True
    assert await counters.get(key) == 7

    await counters.delete(key)
    assert await counters.get(key) is None
    await counters.delete(key)  # deleting an absent key is fine


async def test_a_ttl_is_required(counters: Counters) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        await counters.incr(fresh(), ttl_s=0)
    with pytest.raises(ValueError, match="ttl_s"):
        await counters.set(fresh(), 1, ttl_s=-1)
