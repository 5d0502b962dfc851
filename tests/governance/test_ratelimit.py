"""Rate limits: requests and tokens per minute per key, per tenant and per model glob, over
a moving window; a refusal costs no quota, says when to retry (or that waiting cannot help),
token counts are corrected with real usage, and a store outage lets requests through."""

from __future__ import annotations

import pytest

from aperture.errors import RateLimitExceededError
from aperture.governance.keys import Principal
from aperture.governance.ratelimit import RateLimiter
from aperture.settings.governance import LimitSettings
from aperture.storage.memory_limits import MemoryLimits
from tests.governance.fakes import DownLimits, principal

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Limiter:
    def __init__(self, *rules: LimitSettings) -> None:
        self.clock = Clock()
        self.limits = MemoryLimits(clock=self.clock)
        self.limiter = RateLimiter(self.limits, rules)


async def test_no_limit_applies_without_a_rule_or_a_key_limit() -> None:
    setup = Limiter(LimitSettings(tenant="acme", rpm=1))
    assert setup.limiter.configured
    assert await setup.limiter.admit("r1", principal(), "gpt-4o", 10) is None
    assert await setup.limiter.admit("r2", Principal(), "gpt-4o", 10) is None
    assert not Limiter().limiter.configured


async def test_a_key_gets_its_rpm_and_then_a_retry_after() -> None:
    setup = Limiter()
    who = principal(rpm=2)
    assert await setup.limiter.admit("r1", who, "m", 10) is not None
    setup.clock.now += 20
    assert await setup.limiter.admit("r2", who, "m", 10) is not None
    setup.clock.now += 10
    with pytest.raises(RateLimitExceededError) as caught:
        await setup.limiter.admit("r3", who, "m", 10)
    error = caught.value
    assert error.status_code == 429
    # r1 leaves the window 60 s after it came in, 30 s from now.
    assert error.headers == {"retry-after": "30", "retry-after-ms": "30000"}
    assert "API key" in error.message
    assert "2 requests per minute" in error.message
    setup.clock.now += 30
    assert await setup.limiter.admit("r4", who, "m", 10) is not None


async def test_retry_after_rounds_up_to_whole_seconds_and_keeps_the_milliseconds() -> None:
    setup = Limiter()
    who = principal(rpm=1)
    await setup.limiter.admit("r1", who, "m", 1)
    setup.clock.now += 0.25
    with pytest.raises(RateLimitExceededError) as caught:
        await setup.limiter.admit("r2", who, "m", 1)
    assert caught.value.headers == {"retry-after": "60", "retry-after-ms": "59750"}


async def test_keys_have_separate_windows() -> None:
    setup = Limiter()
    assert await setup.limiter.admit("r1", principal("a", rpm=1), "m", 1) is not None
    assert await setup.limiter.admit("r2", principal("b", rpm=1), "m", 1) is not None


async def test_the_keys_of_a_tenant_share_its_limit() -> None:
    setup = Limiter(LimitSettings(tenant="acme", rpm=1))
    assert await setup.limiter.admit("r1", principal("a", tenant="acme"), "m", 1) is not None
    with pytest.raises(RateLimitExceededError) as caught:
        await setup.limiter.admit("r2", principal("b", tenant="acme"), "m", 1)
    assert "tenant" in caught.value.message
    # Another tenant's keys are not counted with acme's.
    assert await setup.limiter.admit("r3", principal("c", tenant="other"), "m", 1) is None


async def test_a_model_rule_matches_by_glob_for_every_caller() -> None:
    setup = Limiter(LimitSettings(model="gpt-4o*", rpm=1))
    assert await setup.limiter.admit("r1", principal("a"), "gpt-4o-mini", 1) is not None
    with pytest.raises(RateLimitExceededError) as caught:
        await setup.limiter.admit("r2", Principal(), "gpt-4o", 1)
    assert "model" in caught.value.message
    assert await setup.limiter.admit("r3", principal("a"), "claude-sonnet-4-5", 1) is None


async def test_a_refusal_by_a_later_window_gives_back_the_earlier_ones() -> None:
    setup = Limiter()
    who = principal(rpm=2, tpm=100)
    assert await setup.limiter.admit("r1", who, "m", 60) is not None
    # Counted in the rpm window first, then refused by the tpm window.
    with pytest.raises(RateLimitExceededError):
        await setup.limiter.admit("r2", who, "m", 60)
    # The refusal did not use up the second request of the minute...
    assert await setup.limiter.admit("r3", who, "m", 40) is not None
    # ...which r3 has now taken.
    with pytest.raises(RateLimitExceededError) as caught:
        await setup.limiter.admit("r4", who, "m", 0)
    assert "requests per minute" in caught.value.message


async def test_a_request_over_the_tpm_on_its_own_is_told_not_to_retry() -> None:
    setup = Limiter()
    who = principal(rpm=1, tpm=100)
    with pytest.raises(RateLimitExceededError) as caught:
        await setup.limiter.admit("r1", who, "m", 150)
    error = caught.value
    assert error.headers == {"x-should-retry": "false"}
    assert "about 150 tokens" in error.message
    assert "100 tokens per minute" in error.message
    # Its request was given back: the only request of the minute is still free.
    assert await setup.limiter.admit("r2", who, "m", 100) is not None


async def test_tokens_count_across_requests_in_the_window() -> None:
    setup = Limiter()
    who = principal(tpm=100)
    await setup.limiter.admit("r1", who, "m", 70)
    with pytest.raises(RateLimitExceededError) as caught:
        await setup.limiter.admit("r2", who, "m", 40)
    assert "100 tokens per minute" in caught.value.message
    assert "retry-after" in caught.value.headers


async def test_correct_replaces_the_estimate_with_what_was_used() -> None:
    setup = Limiter()
    who = principal(tpm=100)
    ticket = await setup.limiter.admit("r1", who, "m", 80)
    assert ticket is not None
    assert ticket.estimate == 80
    await setup.limiter.correct(ticket, 20)
    assert await setup.limiter.admit("r2", who, "m", 80) is not None
    with pytest.raises(RateLimitExceededError):
        await setup.limiter.admit("r3", who, "m", 1)


async def test_correct_can_raise_the_count_too() -> None:
    setup = Limiter()
    who = principal(tpm=100)
    ticket = await setup.limiter.admit("r1", who, "m", 10)
    assert ticket is not None
    await setup.limiter.correct(ticket, 95)
    with pytest.raises(RateLimitExceededError):
        await setup.limiter.admit("r2", who, "m", 10)
    assert await setup.limiter.admit("r3", who, "m", 5) is not None


async def test_correct_leaves_request_counts_alone() -> None:
    setup = Limiter()
    who = principal(rpm=1, tpm=1000)
    ticket = await setup.limiter.admit("r1", who, "m", 500)
    assert ticket is not None
    await setup.limiter.correct(ticket, 0)
    with pytest.raises(RateLimitExceededError) as caught:
        await setup.limiter.admit("r2", who, "m", 1)
    assert "1 requests per minute" in caught.value.message


async def test_a_store_outage_lets_requests_through() -> None:
    limiter = RateLimiter(DownLimits(), [LimitSettings(model="*", rpm=1)])
    assert await limiter.admit("r1", principal(rpm=1, tpm=10), "m", 5) is None
    assert await limiter.admit("r2", Principal(), "m", 5) is None


async def test_release_gives_back_the_request_and_its_tokens() -> None:
    setup = Limiter()
    who = principal(rpm=1, tpm=100)
    ticket = await setup.limiter.admit("r1", who, "m", 90)
    assert ticket is not None
    await setup.limiter.release(ticket)
    assert await setup.limiter.admit("r2", who, "m", 100) is not None


async def test_release_survives_a_store_outage() -> None:
    setup = Limiter()
    ticket = await setup.limiter.admit("r1", principal(rpm=1), "m", 1)
    assert ticket is not None
    await RateLimiter(DownLimits(), ()).release(ticket)
