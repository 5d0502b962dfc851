"""When to make another attempt, how long to wait first, and how many retries we can afford.

``RetryPolicy.should_retry`` decides by the error's class and ``retryable`` attribute, never
by its message:

- only ``UpstreamError``s are retried: every other ``GatewayError`` is the gateway's own
  verdict on the request (a bad field, a key's budget or rate limit), and a second attempt
  would get the same answer;
- among those, never ``UpstreamRejectedError`` (a deterministic 4xx) or ``UpstreamQuotaError``
  (billing: waiting does not help);
- never after ``max_attempts`` attempts, nor past the request's deadline, nor when the
  provider's Retry-After asks for a longer wait than the deadline leaves (unless the next
  attempt fails over to another target, which does not wait).

"Another attempt" means the same or the next target alike: the dispatcher fails over by
walking the strategy's order, and every extra attempt also spends from the ``RetryBudget``,
which stops a partial outage from multiplying traffic (a retry storm) when it is already
too much. The wait is full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"):
uniform in ``[0, min(max_delay, base * 2**(attempt-1))]``, or the provider's Retry-After if
that is longer.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aperture.errors import (
    GatewayError,
    InvalidRequestError,
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRejectedError,
)
from aperture.providers import retry_after_s

__all__ = ["RetryBudget", "RetryPolicy", "retry_after_s", "retryable"]

# Deterministic by class, whatever ``retryable`` says on a subclass someone adds later.
_NEVER_RETRIED: tuple[type[GatewayError], ...] = (
    InvalidRequestError,
    UpstreamRejectedError,
    UpstreamQuotaError,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_attempts: int = 3  # attempts in all, the first one included
    base_delay_s: float = 0.25
    max_delay_s: float = 4.0
    deadline_s: float = 60.0  # every attempt and every wait fit inside this, per request
    budget_ratio: float = 0.2  # retries per original request, over the budget's window
    budget_min_per_s: float = 3.0  # the floor that lets low traffic retry at all
    budget_window_s: float = 10.0
    # Wall clock for Retry-After given as an HTTP date; injectable for tests.
    wall_clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not (0 <= self.base_delay_s <= self.max_delay_s and self.deadline_s > 0):
            raise ValueError("need 0 <= base_delay_s <= max_delay_s and deadline_s > 0")

    def should_retry(
        self, error: GatewayError, attempt: int, elapsed_s: float, *, failover: bool = False
    ) -> bool:
        """Whether attempt ``attempt + 1`` may follow ``error`` (``attempt`` counts from 1).

        ``elapsed_s`` is the time since the request started. ``failover`` says the next
        attempt goes to another target, which need not wait for this one's Retry-After (a
        provider asking for minutes must not stop the request from trying a healthy
        backup). The budget is separate: ask ``RetryBudget.try_spend()`` only once this says
        yes.
        """
        if attempt >= self.max_attempts or not retryable(error):
            return False
        remaining = self.deadline_s - elapsed_s
        if remaining <= 0:
            return False
        if failover:
            return True
        wait = retry_after_s(error.headers, now=self.wall_clock())
        return wait is None or wait <= remaining

    def delay_s(self, error: GatewayError, attempt: int, rng: random.Random) -> float:
        """How long to wait before attempt ``attempt + 1``: full jitter, or Retry-After if
        longer. ``should_retry`` has already checked that a Retry-After fits the deadline."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(max(attempt, 1) - 1, 60))
        backoff = rng.uniform(0, ceiling)
        wait = retry_after_s(error.headers, now=self.wall_clock())
        return backoff if wait is None else max(wait, backoff)

    def new_budget(self, *, clock: Callable[[], float] = time.monotonic) -> RetryBudget:
        """A budget with this policy's numbers; one per process (or per route), long-lived."""
        return RetryBudget(
            ratio=self.budget_ratio,
            min_per_s=self.budget_min_per_s,
            window_s=self.budget_window_s,
            clock=clock,
        )


def retryable(error: GatewayError) -> bool:
    """Whether ``error`` is the kind another attempt can fix (see the module docstring)."""
    if not isinstance(error, UpstreamError) or isinstance(error, _NEVER_RETRIED):
        return False
    return error.retryable


class RetryBudget:
    """At most ``ratio`` retries per request over a rolling window, but ``min_per_s`` always.

    The allowance is ``max(ratio * requests, min_per_s * window_s)`` over the last
    ``window_s``: under load retries stay a fixed fraction of traffic (Envoy's and Finagle's
    budget, 20%), and at low traffic a few retries per second remain so a lone request still
    gets its second chance. Counted in ``buckets`` slices of the window, so memory is fixed.
    Per process; the instances' budgets add up, as their traffic does.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_s: float = 3.0,
        window_s: float = 10.0,
        buckets: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ratio < 0 or min_per_s < 0 or window_s <= 0 or buckets < 1:
            raise ValueError("need ratio >= 0, min_per_s >= 0, window_s > 0, buckets >= 1")
        self._ratio = ratio
        self._floor = min_per_s * window_s
        self._bucket_s = window_s / buckets
        self._clock = clock
        self._epochs = [-1] * buckets
        self._requests = [0] * buckets
        self._retries = [0] * buckets

    def record_request(self) -> None:
        """An original request arrived (once per request, not per attempt)."""
        self._requests[self._slot()] += 1

    def try_spend(self) -> bool:
        """Take one retry if the budget allows it; False means do not retry."""
        slot = self._slot()
        requests, retries = self._totals()
        if retries + 1 > max(self._ratio * requests, self._floor):
            return False
        self._retries[slot] += 1
        return True

    def available(self) -> float:
        """Retries left in the current window (for metrics)."""
        self._slot()
        requests, retries = self._totals()
        return max(0.0, max(self._ratio * requests, self._floor) - retries)

    def _slot(self) -> int:
        # The current bucket, emptied first if it last held an older slice of time.
        epoch = math.floor(self._clock() / self._bucket_s)
        slot = epoch % len(self._epochs)
        if self._epochs[slot] != epoch:
            self._epochs[slot] = epoch
            self._requests[slot] = 0
            self._retries[slot] = 0
        return slot

    def _totals(self) -> tuple[int, int]:
        current = max(self._epochs)
        live = [i for i, e in enumerate(self._epochs) if current - e < len(self._epochs)]
        return sum(self._requests[i] for i in live), sum(self._retries[i] for i in live)
