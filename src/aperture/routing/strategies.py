"""Strategies: the order in which a route's targets are tried.

A strategy answers one question, ``order(candidates, stats, rng)``: the first candidate is the
first attempt and the rest is the failover order. Strategies hold no state of their own; what
they learn about targets (in-flight counts, latency) lives in one ``TargetStats`` per process,
and randomness comes from the caller's ``random.Random``, so a seeded one replays exactly.

Breakers are not consulted here: ``allow()`` may admit a half-open probe, a side effect that
belongs to the attempt actually made, so the dispatcher asks it while walking the order.

    weighted     weighted random without replacement (the seed's 60/30/10); weight 0 = backup
    priority     configuration order
    latency      power of two choices by weight, the lower EWMA x (in-flight + 1) wins
    least-busy   fewest in-flight, ties broken by weighted random choice
    canary       ``canary_percent`` of first attempts to the canary, else stable by priority
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, get_args

from aperture.settings.schema import Strategy as StrategyName

__all__ = [
    "STRATEGY_NAMES",
    "CanaryStrategy",
    "Candidate",
    "LatencyStrategy",
    "LeastBusyStrategy",
    "PriorityStrategy",
    "Strategy",
    "StrategyName",
    "TargetStats",
    "WeightedStrategy",
    "strategy_for",
]

STRATEGY_NAMES: tuple[StrategyName, ...] = get_args(StrategyName)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A target a request may go to: its key ("provider/upstream_model"), weight and rank."""

    key: str
    weight: float = 1.0
    priority: int = 0  # the index in the route's configuration order
    canary: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"weight of {self.key!r} must be a finite number >= 0")


class TargetStats:
    """What this process has observed per target: calls in flight and an EWMA of latency.

    Per process on purpose: latency and load are local facts, cheap to keep exact, and a
    shared view would cost a network round trip on the hot path to be slightly less stale.
    """

    def __init__(
        self, *, alpha: float = 0.3, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self._alpha = alpha
        self._clock = clock
        self._in_flight: dict[str, int] = {}
        self._ewma: dict[str, float] = {}

    def begin(self, key: str) -> None:
        """An attempt on ``key`` started; pair with exactly one ``end``."""
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def end(self, key: str, latency_s: float | None, ok: bool) -> None:
        """The attempt ended; ``latency_s`` None (cancelled) leaves the average alone.

        A failure weighs as twice the current average (at least its own latency): a target
        that fails fast must never look fast, and repeated failures push traffic away.
        """
        self._in_flight[key] = max(0, self._in_flight.get(key, 0) - 1)
        if latency_s is None or not math.isfinite(latency_s) or latency_s < 0:
            return
        current = self._ewma.get(key)
        sample = latency_s if ok or current is None else max(latency_s, 2 * current)
        if current is None:
            self._ewma[key] = sample
        else:
            self._ewma[key] = current + self._alpha * (sample - current)

    @contextmanager
    def track(self, key: str) -> Iterator[None]:
        """``begin``/``end`` around a block: an exception is a failure, cancellation no sample."""
        self.begin(key)
        started = self._clock()
        try:
            yield
        except Exception:
            self.end(key, self._clock() - started, ok=False)
            raise
        except BaseException:
            # Cancelled (the client left): the target did nothing wrong and we know no latency.
            self.end(key, None, ok=False)
            raise
        self.end(key, self._clock() - started, ok=True)

    def in_flight(self, key: str) -> int:
        return self._in_flight.get(key, 0)

    def latency_s(self, key: str) -> float | None:
        """The EWMA latency in seconds, or None for a target never observed."""
        return self._ewma.get(key)


class Strategy(Protocol):
    def order(
        self, candidates: Sequence[Candidate], stats: TargetStats, rng: random.Random
    ) -> list[Candidate]:
        """Every candidate once: first the first attempt, then the failover order."""
        ...


def _weighted_order(candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    """Weighted random order without replacement; zero weights last, by priority.

    One exponential race (Efraimidis-Spirakis): each candidate draws ``log(u) / w`` and the
    largest goes first, so P(first = i) = w_i / sum(w), and so on for the rest. One draw per
    candidate, in input order, so a seeded ``rng`` replays the same order.
    """
    if all(c.weight == 0 for c in candidates):
        # Only backups: none is preferred, so treat them as equals.
        keyed = [(math.log(1.0 - rng.random()), c) for c in candidates]
    else:
        keyed = [
            (math.log(1.0 - rng.random()) / c.weight if c.weight > 0 else -math.inf, c)
            for c in candidates
        ]
    ranked = sorted(keyed, key=lambda kc: (-kc[0], kc[1].priority))
    return [c for _, c in ranked]


def _by_priority(candidates: Sequence[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: c.priority)


class WeightedStrategy:
    def order(
        self, candidates: Sequence[Candidate], stats: TargetStats, rng: random.Random
    ) -> list[Candidate]:
        return _weighted_order(candidates, rng)


class PriorityStrategy:
    def order(
        self, candidates: Sequence[Candidate], stats: TargetStats, rng: random.Random
    ) -> list[Candidate]:
        return _by_priority(candidates)


class LatencyStrategy:
    """Power of two choices: sample two by weight, the cheaper goes first.

    The cost is the EWMA latency times (in flight + 1), as in peak-EWMA balancers: the fast
    target wins until it queues enough work to be slower than the other. A target never
    observed wins its pair, so new and recovered targets get explored. Comparing two random
    targets rather than taking the global best keeps every instance from stampeding onto
    the same one. Zero-weight targets stay backups, as in ``weighted``.
    """

    def order(
        self, candidates: Sequence[Candidate], stats: TargetStats, rng: random.Random
    ) -> list[Candidate]:
        sampled = _weighted_order(candidates, rng)

        def cost(c: Candidate) -> float | None:
            ewma = stats.latency_s(c.key)
            return None if ewma is None else ewma * (stats.in_flight(c.key) + 1)

        def pair_rank(c: Candidate) -> tuple[bool, float]:
            known = cost(c)
            return (known is not None, known or 0.0)  # the unseen sort first: explore them

        def failover_rank(c: Candidate) -> tuple[bool, bool, float]:
            known = cost(c)
            return (c.weight == 0, known is None, known or 0.0)  # known fast ones first

        # Sampling is by weight, so a backup (weight 0) is only in the pair when every
        # candidate is one.
        pair = [c for c in sampled[:2] if c.weight > 0] or sampled[:2]
        if not pair:
            return []
        first = min(pair, key=pair_rank)  # on a tie, the first drawn
        rest = sorted((c for c in sampled if c is not first), key=failover_rank)
        return [first, *rest]


class LeastBusyStrategy:
    def order(
        self, candidates: Sequence[Candidate], stats: TargetStats, rng: random.Random
    ) -> list[Candidate]:
        # A stable sort over a weighted random order: equally busy targets (all idle, at low
        # traffic) share the load by weight instead of the first one taking everything.
        return sorted(_weighted_order(candidates, rng), key=lambda c: stats.in_flight(c.key))


class CanaryStrategy:
    """``percent`` of first attempts go to the canary target(s), the rest to the stable ones.

    The stable targets keep their priority order; the other group follows as failover, so a
    failing canary falls back to stable and vice versa. Several canaries share the percent
    by weight. Without a stable target, or without a canary, it is plain priority order.
    """

    def __init__(self, percent: float = 5.0) -> None:
        if not (math.isfinite(percent) and 0 <= percent <= 100):
            raise ValueError("canary percent must be between 0 and 100")
        self.percent = percent

    def order(
        self, candidates: Sequence[Candidate], stats: TargetStats, rng: random.Random
    ) -> list[Candidate]:
        canaries = [c for c in candidates if c.canary]
        stable = _by_priority([c for c in candidates if not c.canary])
        if not canaries or not stable:
            return _by_priority(candidates)
        to_canary = rng.random() * 100 < self.percent
        canaries = _weighted_order(canaries, rng)
        if to_canary:
            return [*canaries, *stable]
        return [*stable, *canaries]


def strategy_for(name: StrategyName, *, canary_percent: float = 5.0) -> Strategy:
    """The strategy a route names; ``canary_percent`` is the route's, used by ``canary``.

    Raises:
        ValueError: an unknown name (a typo in a stored route, say).
    """
    factories: dict[str, Callable[[], Strategy]] = {
        "weighted": WeightedStrategy,
        "priority": PriorityStrategy,
        "latency": LatencyStrategy,
        "least-busy": LeastBusyStrategy,
        "canary": lambda: CanaryStrategy(canary_percent),
    }
    factory = factories.get(name)
    if factory is None:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(factories)}")
    return factory()
