"""Redis faults at the store boundary: always a ``StorageError``, fast while Redis is away,
and healthy again right after, on asyncio and on uvloop (which raises ``RuntimeError`` for a
write to a transport the peer closed)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest

from aperture.storage import BudgetCharge, BudgetScope, StorageError
from aperture.storage.redis_counters import RedisCounters
from aperture.storage.redis_limits import RedisLimits
from tests.faultproxy import FaultProxy, proxied_url

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[pytest.param("asyncio"), pytest.param("uvloop")])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return "asyncio", {"use_uvloop": request.param == "uvloop"}


@pytest.fixture
async def through_proxy(redis_server: str) -> AsyncIterator[tuple[FaultProxy, RedisCounters]]:
    parts = urlsplit(redis_server)
    with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        prefix = f"aperture-test:faults:{uuid.uuid4().hex[:8]}:"
        counters = RedisCounters.from_url(
            proxied_url(redis_server, proxy), prefix=prefix, timeout_s=0.5, retry_s=0.5
        )
        try:
            yield proxy, counters
        finally:
            proxy.heal()
            raw = counters.client
            keys = [key async for key in raw.scan_iter(match=f"{prefix}*")]
            if keys:
                await raw.delete(*keys)
            await counters.close()


async def _warm(counters: RedisCounters) -> None:
    # Several pooled connections, so a reset leaves idle dead ones behind.
    async with anyio.create_task_group() as group:
        for n in range(5):
            group.start_soon(lambda n=n: counters.incr(f"warm{n}", ttl_s=60))


async def test_a_reset_costs_at_most_one_call_and_the_pool_reconnects(
    through_proxy: tuple[FaultProxy, RedisCounters],
) -> None:
    proxy, counters = through_proxy
    await _warm(counters)
    proxy.reset()
    failures = 0
    for _ in range(5):
        try:
            await counters.incr("n", ttl_s=60)
        except StorageError:
            failures += 1
    assert failures <= 1, "the broken connection's idle siblings were dropped with it"
    assert await counters.get("n") == 5 - failures


@pytest.mark.parametrize("fault", ["blackhole", "drop_replies", "down"])
async def test_an_unanswering_redis_fails_fast_and_is_used_again_once_back(
    through_proxy: tuple[FaultProxy, RedisCounters], fault: str
) -> None:
    proxy, counters = through_proxy
    limits = RedisLimits(counters.link, prefix=counters.prefix)
    scope = BudgetScope(key="s", limit_micros=100, ttl_s=60)
    await limits.seed(scope, BudgetCharge())
    getattr(proxy, fault)()
    for _ in range(2):  # "down" resets the pooled connection first, then refuses the next
        with pytest.raises(StorageError):
            await counters.incr("n", ttl_s=60)
        if counters.link.down:
            break
    assert counters.link.down
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(StorageError):
            await limits.reserve(f"r{_}", [scope], BudgetCharge(1, 0), hold_s=60)
    # Twenty calls inside one outage window: none waited out the 0.5 s timeout.
    assert time.monotonic() - started < 5
    proxy.heal()
    with anyio.fail_after(10):
        while True:
            try:
                await counters.incr("n", ttl_s=60)
                break
            except StorageError:
                await anyio.sleep(0.1)
    assert not counters.link.down
    decision = await limits.reserve("after", [scope], BudgetCharge(1, 0), hold_s=60)
    assert decision.outcome == "reserved"


async def test_one_slow_call_while_redis_answers_others_is_not_an_outage(
    through_proxy: tuple[FaultProxy, RedisCounters],
) -> None:
    # Under a burst, one call can wait out its timeout (a slow connect, a busy event loop)
    # while Redis answers the rest: that must not open every rate limit for retry_s.
    _, counters = through_proxy
    link = counters.link
    failed: list[StorageError] = []

    async def slow() -> None:
        try:
            async with link.guarded():
                await link.client.blpop(["aperture-test:never"], timeout=3)  # past the 0.5 s
        except StorageError as exc:
            failed.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(slow)
        await anyio.sleep(0.1)
        await counters.incr("meanwhile", ttl_s=60)
    assert failed, "the slow call timed out"
    assert not link.down
    assert (await counters.incr("after", ttl_s=60)).value == 1
