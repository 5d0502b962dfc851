"""Retry rules: by class and ``retryable`` only, inside attempts and deadline, honouring
Retry-After, with full-jitter backoff and a budget that caps retries to a share of traffic."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from aperture.errors import (
    BudgetExceededError,
    GatewayError,
    ImageTooLargeError,
    InvalidApiKeyError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitExceededError,
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from aperture.routing.retry import RetryBudget, RetryPolicy, retry_after_s, retryable

NOW = 1_750_000_000.0  # a fixed wall clock for HTTP-date Retry-After


def policy(**overrides: Any) -> RetryPolicy:
    return RetryPolicy(wall_clock=lambda: NOW, **overrides)


def all_subclasses(cls: type[GatewayError]) -> list[type[GatewayError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(all_subclasses(sub))
    return found


def limited(**headers: str) -> UpstreamRateLimitedError:
    return UpstreamRateLimitedError(
        "slow down",
        provider="openai",
        upstream_status=429,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


# which errors


@pytest.mark.parametrize(
    "error",
    [
        UpstreamUnavailableError("503", upstream_status=503),
        UpstreamTimeoutError("timed out"),
        UpstreamRateLimitedError("429", upstream_status=429),
        UpstreamError("bad gateway", upstream_status=502),
    ],
    ids=type,
)
def test_transient_upstream_failures_are_retried(error: GatewayError) -> None:
    assert policy().should_retry(error, attempt=1, elapsed_s=0.5)


@pytest.mark.parametrize(
    "error_type",
    [
        UpstreamRejectedError,
        UpstreamQuotaError,
        *all_subclasses(InvalidRequestError),
        # The gateway's own verdicts: another attempt would get the same answer.
        RateLimitExceededError,
        BudgetExceededError,
        InvalidApiKeyError,
        ModelNotFoundError,
        ImageTooLargeError,
        GatewayError,
    ],
)
def test_deterministic_and_quota_errors_are_never_retried(error_type: type[GatewayError]) -> None:
    error = error_type("no")
    assert not policy().should_retry(error, attempt=1, elapsed_s=0.0)
    assert not retryable(error)


def test_the_message_text_decides_nothing() -> None:
    assert policy().should_retry(
        UpstreamUnavailableError("insufficient_quota: do not retry"), attempt=1, elapsed_s=0
    )
    assert not policy().should_retry(
        UpstreamRejectedError("overloaded, please retry", upstream_status=400),
        attempt=1,
        elapsed_s=0,
    )


def test_a_subclass_marked_not_retryable_is_not_retried() -> None:
    class PermanentlyGone(UpstreamUnavailableError):
        retryable = False

    assert not policy().should_retry(PermanentlyGone("gone"), attempt=1, elapsed_s=0)


# attempts and deadline


def test_max_attempts_counts_the_first_attempt() -> None:
    error = UpstreamUnavailableError("503")
    rules = policy(max_attempts=3)
    assert rules.should_retry(error, attempt=1, elapsed_s=0)
    assert rules.should_retry(error, attempt=2, elapsed_s=0)
    assert not rules.should_retry(error, attempt=3, elapsed_s=0)
    assert not policy(max_attempts=1).should_retry(error, attempt=1, elapsed_s=0)


def test_no_retry_once_the_deadline_has_passed() -> None:
    error = UpstreamTimeoutError("timed out")
    rules = policy(deadline_s=30)
    assert rules.should_retry(error, attempt=1, elapsed_s=29.9)
    assert not rules.should_retry(error, attempt=1, elapsed_s=30)


# Retry-After


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "5"}, 5.0),
        ({"Retry-After": " 2.5 "}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the precise one wins
        ({"retry-after": format_datetime(datetime.fromtimestamp(NOW + 7, UTC), usegmt=True)}, 7.0),
        ({"retry-after": format_datetime(datetime.fromtimestamp(NOW - 60, UTC), usegmt=True)}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after-ms": "inf"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00"}, None),  # no zone: not an HTTP date
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(headers, now=NOW) == expected


def test_retry_after_within_the_deadline_is_honoured() -> None:
    rules = policy(deadline_s=10)
    error = limited(retry_after="4")
    assert rules.should_retry(error, attempt=1, elapsed_s=5)
    rng = random.Random(0)
    assert all(rules.delay_s(error, attempt=1, rng=rng) >= 4 for _ in range(100))


def test_retry_after_longer_than_the_deadline_leaves_is_not_retried() -> None:
    rules = policy(deadline_s=10)
    assert not rules.should_retry(limited(retry_after="6"), attempt=1, elapsed_s=5)
    assert not rules.should_retry(limited(retry_after_ms="5001"), attempt=1, elapsed_s=5)
    future = format_datetime(datetime.fromtimestamp(NOW + 60, UTC), usegmt=True)
    assert not rules.should_retry(limited(retry_after=future), attempt=1, elapsed_s=0)


def test_a_failover_does_not_wait_for_the_failed_targets_retry_after() -> None:
    rules = policy(deadline_s=10)
    error = limited(retry_after="3600")
    assert not rules.should_retry(error, attempt=1, elapsed_s=0)
    assert rules.should_retry(error, attempt=1, elapsed_s=0, failover=True)
    # The rest still hold: the attempt limit, the deadline, what is never retried.
    assert not rules.should_retry(error, attempt=3, elapsed_s=0, failover=True)
    assert not rules.should_retry(error, attempt=1, elapsed_s=10, failover=True)
    spent = UpstreamQuotaError("spent", provider="openai", upstream_status=429)
    assert not rules.should_retry(spent, attempt=1, elapsed_s=0, failover=True)


def test_a_retry_after_on_a_503_counts_too() -> None:
    error = UpstreamUnavailableError("overloaded", headers={"retry-after": "30"})
    assert not policy(deadline_s=20).should_retry(error, attempt=1, elapsed_s=0)


# backoff


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 0.25), (2, 0.5), (3, 1.0), (5, 4.0), (40, 4.0)]
)
def test_full_jitter_stays_under_the_exponential_ceiling(attempt: int, ceiling: float) -> None:
    rules = policy(base_delay_s=0.25, max_delay_s=4)
    rng = random.Random(attempt)
    delays = [rules.delay_s(UpstreamTimeoutError("t"), attempt, rng) for _ in range(5000)]
    assert all(0 <= d <= ceiling for d in delays)
    # Full jitter is uniform on [0, ceiling]: mean ceiling / 2, sd ceiling / sqrt(12).
    mean = sum(delays) / len(delays)
    assert abs(mean - ceiling / 2) < 4 * (ceiling / 12**0.5) / len(delays) ** 0.5
    assert min(delays) < ceiling * 0.05 and max(delays) > ceiling * 0.95


def test_backoff_replays_with_the_same_seed() -> None:
    rules = policy()
    error = UpstreamUnavailableError("503")
    first = [rules.delay_s(error, 2, random.Random(9)) for _ in range(3)]
    assert first == [first[0]] * 3


# budget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spend_all(budget: RetryBudget) -> int:
    spent = 0
    while budget.try_spend():
        spent += 1
        assert spent < 100_000
    return spent


def test_budget_allows_the_ratio_of_requests_under_load() -> None:
    budget = RetryBudget(ratio=0.2, min_per_s=1, window_s=10, clock=Clock())
    for _ in range(1000):
        budget.record_request()
    assert budget.available() == 200
    assert spend_all(budget) == 200
    assert budget.available() == 0


def test_budget_keeps_a_floor_for_low_traffic() -> None:
    budget = RetryBudget(ratio=0.2, min_per_s=3, window_s=10, clock=Clock())
    budget.record_request()  # 0.2 of one request would round to no retry at all
    assert spend_all(budget) == 30


def test_budget_window_rolls_over() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.5, min_per_s=0, window_s=10, buckets=10, clock=clock)
    for _ in range(10):
        budget.record_request()
    assert spend_all(budget) == 5
    clock.now += 5
    for _ in range(10):
        budget.record_request()
    assert spend_all(budget) == 5  # 20 requests in the window: 10 allowed, 5 already spent
    clock.now += 5.5  # the first ten requests and five retries have left the window
    assert budget.available() == 0  # 10 requests: 5 allowed, the later 5 retries remain
    clock.now += 5
    assert budget.available() == 0 and not budget.try_spend()  # nothing left in the window
    for _ in range(4):
        budget.record_request()
    assert spend_all(budget) == 2


def test_policy_makes_a_budget_with_its_numbers() -> None:
    clock = Clock()
    budget = policy(budget_ratio=0.1, budget_min_per_s=0.5, budget_window_s=20).new_budget(
        clock=clock
    )
    assert budget.available() == 10  # the floor: 0.5 per second over 20 seconds
    for _ in range(500):
        budget.record_request()
    assert budget.available() == 50


def test_policy_and_budget_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="base_delay_s"):
        RetryPolicy(base_delay_s=5, max_delay_s=1)
    with pytest.raises(ValueError, match="window_s"):
        RetryBudget(window_s=0)
