"""Strategies order targets as promised: by weight (checked statistically), by priority, by
latency, by load, and by canary percentage; seeded randomness replays exactly."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from aperture.routing.strategies import (
    STRATEGY_NAMES,
    CanaryStrategy,
    Candidate,
    LatencyStrategy,
    LeastBusyStrategy,
    PriorityStrategy,
    Strategy,
    StrategyName,
    TargetStats,
    WeightedStrategy,
    strategy_for,
)

DRAWS = 10_000

SEED_ROUTE = (
    Candidate("openai/gpt-4o", weight=60, priority=0),
    Candidate("anthropic/claude-sonnet-4-5", weight=30, priority=1),
    Candidate("gemini/gemini-2.5-flash", weight=10, priority=2),
)


def firsts(
    strategy: Strategy,
    candidates: Sequence[Candidate],
    stats: TargetStats | None = None,
    *,
    draws: int = DRAWS,
    seed: int = 7,
) -> Counter[str]:
    rng = random.Random(seed)
    stats = stats or TargetStats()
    return Counter(strategy.order(candidates, stats, rng)[0].key for _ in range(draws))


def within_sigmas(observed: int, draws: int, p: float, sigmas: float = 4.0) -> bool:
    """``observed`` successes of ``draws`` lie within ``sigmas`` binomial deviations of p."""
    sd = math.sqrt(draws * p * (1 - p))
    return abs(observed - draws * p) <= sigmas * sd


def observe(stats: TargetStats, key: str, latency_s: float, *, times: int = 1) -> None:
    for _ in range(times):
        stats.begin(key)
        stats.end(key, latency_s, ok=True)


# weighted


def test_weighted_split_matches_the_seed_weights_statistically() -> None:
    counts = firsts(WeightedStrategy(), SEED_ROUTE)
    total = sum(c.weight for c in SEED_ROUTE)
    expected = {c.key: DRAWS * c.weight / total for c in SEED_ROUTE}
    for c in SEED_ROUTE:
        assert within_sigmas(counts[c.key], DRAWS, c.weight / total), (c.key, counts)
    # And jointly: chi-square with 2 degrees of freedom under its 0.01% critical value.
    chi_square = sum((counts[k] - e) ** 2 / e for k, e in expected.items())
    assert chi_square < 18.42, counts


def test_weighted_failover_order_is_drawn_without_replacement() -> None:
    rng = random.Random(11)
    stats = TargetStats()
    orders = [WeightedStrategy().order(SEED_ROUTE, stats, rng) for _ in range(DRAWS)]
    assert all(sorted(c.key for c in o) == sorted(c.key for c in SEED_ROUTE) for o in orders)
    # After OpenAI went first, Anthropic is next with 30 / (30 + 10).
    after_openai = [o[1].key for o in orders if o[0].key == "openai/gpt-4o"]
    anthropic = sum(k.startswith("anthropic") for k in after_openai)
    assert within_sigmas(anthropic, len(after_openai), 0.75)


def test_weighted_order_replays_with_the_same_seed() -> None:
    def run(seed: int) -> list[list[str]]:
        rng = random.Random(seed)
        stats = TargetStats()
        return [
            [c.key for c in WeightedStrategy().order(SEED_ROUTE, stats, rng)] for _ in range(50)
        ]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_zero_weight_targets_are_backups_tried_last_by_priority() -> None:
    candidates = (
        Candidate("backup-b", weight=0, priority=2),
        Candidate("main", weight=1, priority=0),
        Candidate("backup-a", weight=0, priority=1),
    )
    rng = random.Random(1)
    for _ in range(100):
        order = WeightedStrategy().order(candidates, TargetStats(), rng)
        assert [c.key for c in order] == ["main", "backup-a", "backup-b"]


def test_all_zero_weights_share_the_traffic_equally() -> None:
    candidates = (Candidate("a", weight=0), Candidate("b", weight=0, priority=1))
    counts = firsts(WeightedStrategy(), candidates)
    assert within_sigmas(counts["a"], DRAWS, 0.5)


def test_a_candidate_refuses_a_negative_or_infinite_weight() -> None:
    with pytest.raises(ValueError, match="weight"):
        Candidate("x", weight=-1)
    with pytest.raises(ValueError, match="weight"):
        Candidate("x", weight=math.inf)


# priority


def test_priority_keeps_configuration_order_whatever_the_weights() -> None:
    shuffled = (SEED_ROUTE[2], SEED_ROUTE[0], SEED_ROUTE[1])
    order = PriorityStrategy().order(shuffled, TargetStats(), random.Random(0))
    assert [c.priority for c in order] == [0, 1, 2]


# latency and target stats


def test_latency_prefers_the_faster_target() -> None:
    fast, slow = Candidate("fast", priority=0), Candidate("slow", priority=1)
    stats = TargetStats()
    observe(stats, "fast", 0.2, times=5)
    observe(stats, "slow", 1.5, times=5)
    counts = firsts(LatencyStrategy(), (slow, fast), stats, draws=1000)
    assert counts == {"fast": 1000}  # with two targets the pair is always both


def test_latency_with_three_targets_never_sends_first_to_the_slowest() -> None:
    candidates = tuple(Candidate(k, priority=i) for i, k in enumerate(("fast", "mid", "slow")))
    stats = TargetStats()
    for key, latency in (("fast", 0.1), ("mid", 0.5), ("slow", 2.0)):
        observe(stats, key, latency, times=3)
    counts = firsts(LatencyStrategy(), candidates, stats)
    assert counts["slow"] == 0
    # Two of the three equally likely pairs contain "fast": power of two, not global best.
    assert within_sigmas(counts["fast"], DRAWS, 2 / 3)
    order = LatencyStrategy().order(candidates, stats, random.Random(0))
    assert [c.key for c in order[1:]] == sorted(
        (c.key for c in order[1:]), key=["fast", "mid", "slow"].index
    )


def test_latency_explores_unseen_targets() -> None:
    candidates = tuple(Candidate(k, priority=i) for i, k in enumerate(("fast", "mid", "new")))
    stats = TargetStats()
    observe(stats, "fast", 0.1)
    observe(stats, "mid", 0.5)
    counts = firsts(LatencyStrategy(), candidates, stats)
    assert within_sigmas(counts["new"], DRAWS, 2 / 3)
    # As a failover, the unseen target comes after the ones known to work.
    rng = random.Random(5)
    for _ in range(100):
        order = LatencyStrategy().order(candidates, stats, rng)
        if order[0].key != "new":
            assert order[-1].key == "new"


def test_latency_backs_off_a_fast_target_that_is_saturated() -> None:
    fast, slow = Candidate("fast"), Candidate("slow", priority=1)
    stats = TargetStats()
    observe(stats, "fast", 0.2)
    observe(stats, "slow", 0.5)
    for _ in range(4):
        stats.begin("fast")  # 0.2 x 5 in flight = 1.0 > 0.5 x 1
    order = LatencyStrategy().order((fast, slow), stats, random.Random(0))
    assert order[0].key == "slow"


def test_latency_with_one_or_no_candidates() -> None:
    only = Candidate("only")
    assert LatencyStrategy().order((only,), TargetStats(), random.Random(0)) == [only]
    assert LatencyStrategy().order((), TargetStats(), random.Random(0)) == []


def test_stats_keep_an_ewma_with_the_configured_alpha() -> None:
    stats = TargetStats(alpha=0.5)
    assert stats.latency_s("t") is None
    observe(stats, "t", 1.0)
    assert stats.latency_s("t") == 1.0  # the first sample seeds the average
    observe(stats, "t", 3.0)
    assert stats.latency_s("t") == 2.0
    observe(stats, "t", 0.0)
    assert stats.latency_s("t") == 1.0


def test_a_fast_failure_makes_a_target_look_slower_not_faster() -> None:
    stats = TargetStats(alpha=0.5)
    observe(stats, "t", 1.0)
    stats.begin("t")
    stats.end("t", 0.01, ok=False)  # a 503 in 10 ms weighs as twice the average
    assert stats.latency_s("t") == 1.5


def test_stats_count_in_flight_and_never_go_negative() -> None:
    stats = TargetStats()
    stats.begin("t")
    stats.begin("t")
    assert stats.in_flight("t") == 2
    stats.end("t", 0.1, ok=True)
    stats.end("t", 0.1, ok=True)
    stats.end("t", 0.1, ok=True)  # an unpaired end (a caller bug) must not poison the count
    assert stats.in_flight("t") == 0


def test_track_measures_with_the_clock_and_counts_failures() -> None:
    now = [100.0]
    stats = TargetStats(alpha=1.0, clock=lambda: now[0])
    with stats.track("t"):
        assert stats.in_flight("t") == 1
        now[0] += 0.75
    assert (stats.in_flight("t"), stats.latency_s("t")) == (0, 0.75)

    def failing_attempt() -> None:
        with stats.track("t"):
            now[0] += 0.25
            raise RuntimeError("upstream failed")

    with pytest.raises(RuntimeError):
        failing_attempt()
    assert (stats.in_flight("t"), stats.latency_s("t")) == (0, 1.5)  # max(0.25, 2 x 0.75)


def test_track_leaves_the_average_alone_when_cancelled() -> None:
    now = [0.0]
    stats = TargetStats(clock=lambda: now[0])
    observe(stats, "t", 1.0)

    def cancelled_attempt() -> None:
        with stats.track("t"):
            now[0] += 30
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        cancelled_attempt()
    assert (stats.in_flight("t"), stats.latency_s("t")) == (0, 1.0)


def test_stats_refuse_an_alpha_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="alpha"):
        TargetStats(alpha=0)
    with pytest.raises(ValueError, match="alpha"):
        TargetStats(alpha=1.5)


# least busy


def test_least_busy_goes_to_the_fewest_in_flight() -> None:
    candidates = tuple(Candidate(k, priority=i) for i, k in enumerate(("a", "b", "c")))
    stats = TargetStats()
    for key, busy in (("a", 3), ("b", 1), ("c", 2)):
        for _ in range(busy):
            stats.begin(key)
    order = LeastBusyStrategy().order(candidates, stats, random.Random(0))
    assert [c.key for c in order] == ["b", "c", "a"]


def test_least_busy_breaks_ties_by_weight() -> None:
    candidates = (Candidate("heavy", weight=3), Candidate("light", weight=1, priority=1))
    counts = firsts(LeastBusyStrategy(), candidates)
    assert within_sigmas(counts["heavy"], DRAWS, 0.75)


# canary


def canary_route() -> tuple[Candidate, ...]:
    return (
        Candidate("stable-1", priority=0),
        Candidate("stable-2", priority=1),
        Candidate("new", priority=2, canary=True),
    )


def test_canary_gets_its_percentage_of_first_attempts() -> None:
    counts = firsts(CanaryStrategy(10), canary_route())
    assert within_sigmas(counts["new"], DRAWS, 0.10)
    assert counts["stable-1"] == DRAWS - counts["new"]  # stable traffic keeps priority order
    assert counts["stable-2"] == 0


def test_canary_and_stable_fail_over_to_each_other() -> None:
    rng = random.Random(2)
    orders = {
        tuple(c.key for c in CanaryStrategy(50).order(canary_route(), TargetStats(), rng))
        for _ in range(200)
    }
    assert orders == {("new", "stable-1", "stable-2"), ("stable-1", "stable-2", "new")}


@pytest.mark.parametrize(("percent", "expected"), [(0, 0), (100, DRAWS)])
def test_canary_percent_bounds(percent: float, expected: int) -> None:
    assert firsts(CanaryStrategy(percent), canary_route())["new"] == expected


def test_canary_without_a_canary_or_without_stable_is_priority_order() -> None:
    plain = (Candidate("b", priority=1), Candidate("a", priority=0))
    assert [c.key for c in CanaryStrategy(100).order(plain, TargetStats(), random.Random(0))] == [
        "a",
        "b",
    ]
    lone = (Candidate("new", canary=True),)
    assert CanaryStrategy(0).order(lone, TargetStats(), random.Random(0)) == list(lone)


def test_canary_refuses_a_percentage_out_of_range() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        CanaryStrategy(101)


# registry


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("weighted", WeightedStrategy),
        ("priority", PriorityStrategy),
        ("latency", LatencyStrategy),
        ("least-busy", LeastBusyStrategy),
        ("canary", CanaryStrategy),
    ],
)
def test_strategy_for_every_name(name: StrategyName, kind: type) -> None:
    assert name in STRATEGY_NAMES
    assert isinstance(strategy_for(name), kind)


def test_strategy_for_passes_the_canary_percent_and_refuses_unknown_names() -> None:
    canary = strategy_for("canary", canary_percent=20)
    assert isinstance(canary, CanaryStrategy)
    assert canary.percent == 20
    with pytest.raises(ValueError, match="unknown strategy 'random'"):
        strategy_for("random")  # type: ignore[arg-type]  # a typo in a stored route


def test_latency_keeps_zero_weight_targets_as_backups() -> None:
    main, backup = Candidate("main"), Candidate("backup", weight=0, priority=1)
    stats = TargetStats()
    observe(stats, "main", 2.0)
    observe(stats, "backup", 0.1)
    counts = firsts(LatencyStrategy(), (backup, main), stats, draws=200)
    assert counts == {"main": 200}


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_every_strategy_orders_every_candidate_exactly_once(name: StrategyName) -> None:
    candidates = (*SEED_ROUTE, Candidate("backup", weight=0, priority=3, canary=True))
    stats = TargetStats()
    observe(stats, "openai/gpt-4o", 0.4)
    rng = random.Random(0)
    for _ in range(200):
        order = strategy_for(name, canary_percent=50).order(candidates, stats, rng)
        assert sorted(c.key for c in order) == sorted(c.key for c in candidates)
