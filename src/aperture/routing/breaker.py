"""Circuit breakers, one per target, kept in memory or shared by every instance.

    closed ──(N consecutive failures, or error ratio over the window)──► open
    open ──(cooldown passes)──► half_open: up to ``half_open_probes`` calls per cooldown
    half_open ──(a probe succeeds)──► closed, counts reset
    half_open ──(a probe fails)──► open for another cooldown

What counts as a failure is the caller's call, passed as ``record(key, ok=False)``: the
target's own trouble, i.e. ``UpstreamUnavailableError`` (connect errors, 5xx, overload),
``UpstreamTimeoutError`` and ``UpstreamRateLimitedError`` (429). The client's mistakes never
count (``InvalidRequestError``, ``UpstreamRejectedError``: a 4xx the target answered
correctly), nor does a cancelled call. ``UpstreamQuotaError`` (a spent quota or billing
limit) is not counted either: one answer proves it, so the caller ``hold``s the target open
for a longer, configured time instead (the provider's ``quota_cooldown_s``), after which it
half-opens like any tripped breaker and one probe finds out whether the quota is back.

One engine over the ``Counters`` protocol serves every store; the wiring picks the counters
(in-process ones for one instance, ``RedisCounters`` so that every instance sees a breaker any
instance tripped), so routing never names a storage backend. Keys (under the counters' own
prefix):

    breaker:<target>                        open-until, ms on the clock; absent = closed
                                            (set by a trip or by a quota ``hold``)
    breaker-streak:<target>                 consecutive failures
    breaker-calls:<window>:<target>         calls and failures per fixed window, read as a
    breaker-fails:<window>:<target>         sliding window (current + weighted previous)
    breaker-probes:<until>:<slot>:<target>  half-open probes admitted per cooldown slot

Times live in the values, not in Redis TTLs, so the injected clock decides every transition
(tests need no sleeps) and TTLs only collect garbage. The shared store needs a wall clock
all instances agree on; skew between hosts shifts transitions by that much, no more.

If the store fails, breakers fail open (``allow`` says yes, nothing is recorded): losing
Redis must not take every target out of rotation with it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aperture.storage.base import Counters, StorageError

__all__ = ["BreakerSettings", "BreakerState", "Breakers", "SharedBreakers"]

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSettings:
    consecutive_failures: int = 5
    error_ratio: float = 0.5  # trips at or above this ratio of failures ...
    window_s: float = 30.0  # ... over this sliding window ...
    min_calls: int = 10  # ... once it holds at least this many calls
    cooldown_s: float = 15.0
    half_open_probes: int = 1  # probes admitted per cooldown while half open

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1 or self.min_calls < 1 or self.half_open_probes < 1:
            raise ValueError("consecutive_failures, min_calls and half_open_probes must be >= 1")
        if not 0 < self.error_ratio <= 1:
            raise ValueError("error_ratio must be in (0, 1]")
        if not (self.window_s > 0 and self.cooldown_s > 0):
            raise ValueError("window_s and cooldown_s must be positive")


class Breakers:
    """The breaker engine over any ``Counters``, on an injectable clock in seconds."""

    def __init__(
        self, counters: Counters, settings: BreakerSettings, clock: Callable[[], float]
    ) -> None:
        self._counters = counters
        self._settings = settings
        self._clock = clock
        self._window_ms = _ms(settings.window_s)
        self._cooldown_ms = _ms(settings.cooldown_s)
        # A half-open breaker nobody probes for this long forgets itself (closes), so no key
        # outlives its use; long enough that ordinary traffic always probes first.
        self._open_ttl_s = settings.cooldown_s + max(settings.cooldown_s, settings.window_s)

    @property
    def settings(self) -> BreakerSettings:
        return self._settings

    async def allow(self, key: str) -> bool:
        """Whether to attempt ``key`` now: yes when closed, no when open, and when half open
        yes for at most ``half_open_probes`` callers per cooldown across all instances."""
        try:
            until = await self._counters.get(_open(key))
            if until is None:
                return True
            now = self._now_ms()
            if now < until:
                return False
            # A probe whose instance died never reports; a fresh slot each cooldown means a
            # lost probe delays recovery by one cooldown instead of blocking it for good.
            slot = (now - until) // self._cooldown_ms
            probes = _probes(until, slot, key)
            admission = await self._counters.incr(
                probes, limit=self._settings.half_open_probes, ttl_s=2 * self._settings.cooldown_s
            )
            return admission.admitted
        except StorageError:
            log.warning("breaker store failed; allowing %s", key, exc_info=True)
            return True

    async def hold(self, key: str, seconds: float) -> None:
        """Take ``key`` out of rotation for ``seconds`` (at least), whatever its counts: for a
        state one failure proves, such as a spent quota. It then half-opens as after a trip,
        and a probe's answer decides; a hold never shortens a longer open."""
        try:
            now = self._now_ms()
            until = now + _ms(seconds)
            current = await self._counters.get(_open(key))
            if current is not None and current >= until:
                return
            ttl_s = seconds + max(self._settings.cooldown_s, self._settings.window_s)
            await self._counters.set(_open(key), until, ttl_s=ttl_s)
            await self._counters.delete(_streak(key))
        except StorageError:
            log.warning("breaker store failed; %s not held", key, exc_info=True)

    async def retry_in_s(self, key: str) -> float:
        """Seconds until ``allow(key)`` could next say yes: 0 when closed or a half-open probe
        is free now, and 0 when the store cannot say (breakers fail open)."""
        try:
            until = await self._counters.get(_open(key))
            if until is None:
                return 0.0
            now = self._now_ms()
            if now < until:
                return (until - now) / 1000
            slot = (now - until) // self._cooldown_ms
            taken = await self._counters.get(_probes(until, slot, key)) or 0
            if taken < self._settings.half_open_probes:
                return 0.0
            return (until + (slot + 1) * self._cooldown_ms - now) / 1000
        except StorageError:
            log.warning("breaker store failed; %s reported available", key, exc_info=True)
            return 0.0

    async def record(self, key: str, ok: bool) -> None:
        """The outcome of an attempt ``allow`` admitted; ``ok=False`` only for failures that
        are the target's fault (see the module docstring)."""
        try:
            await self._record(key, ok)
        except StorageError:
            log.warning("breaker store failed; %s outcome not recorded", key, exc_info=True)

    async def state(self, key: str) -> BreakerState:
        """The state for ``/metrics``; ``closed`` when the store cannot say."""
        try:
            until = await self._counters.get(_open(key))
        except StorageError:
            log.warning("breaker store failed; reporting %s closed", key, exc_info=True)
            return "closed"
        if until is None:
            return "closed"
        return "open" if self._now_ms() < until else "half_open"

    async def _record(self, key: str, ok: bool) -> None:
        now = self._now_ms()
        until = await self._counters.get(_open(key))
        if until is not None:
            if now < until:
                # Open: a late answer to a call admitted before the trip says nothing new.
                return
            # Half open: the first answer decides. It may come from a call admitted before
            # the trip rather than from the probe; either way it is fresh evidence.
            if ok:
                await self._close(key, now)
            else:
                await self._trip(key, now)
            return
        window = now // self._window_ms
        calls = await self._counters.incr(_calls(window, key), ttl_s=2 * self._settings.window_s)
        if ok:
            await self._counters.delete(_streak(key))
            return
        # A streak older than a window is forgotten: "consecutive" means recent as well.
        streak = await self._counters.incr(_streak(key), ttl_s=self._settings.window_s)
        fails = await self._counters.incr(_fails(window, key), ttl_s=2 * self._settings.window_s)
        if streak.value >= self._settings.consecutive_failures or await self._ratio_trips(
            key, now, calls.value, fails.value
        ):
            await self._trip(key, now)

    async def _ratio_trips(self, key: str, now: int, calls: int, fails: int) -> bool:
        # A sliding window from two fixed ones: the previous window counts in proportion to
        # how much of it the sliding window still covers. Two keys per window, not a list.
        window = now // self._window_ms
        covered = 1 - (now % self._window_ms) / self._window_ms
        previous_calls = await self._counters.get(_calls(window - 1, key)) or 0
        previous_fails = await self._counters.get(_fails(window - 1, key)) or 0
        total_calls = calls + previous_calls * covered
        total_fails = fails + previous_fails * covered
        return (
            total_calls >= self._settings.min_calls
            and total_fails >= self._settings.error_ratio * total_calls
        )

    async def _trip(self, key: str, now: int) -> None:
        await self._counters.set(_open(key), now + self._cooldown_ms, ttl_s=self._open_ttl_s)
        await self._counters.delete(_streak(key))

    async def _close(self, key: str, now: int) -> None:
        # Recovery starts from a clean slate: the failures that tripped it must not, still in
        # the window, trip it again on the first new failure.
        window = now // self._window_ms
        for stale in (
            _open(key),
            _streak(key),
            _calls(window, key),
            _fails(window, key),
            _calls(window - 1, key),
            _fails(window - 1, key),
        ):
            await self._counters.delete(stale)

    def _now_ms(self) -> int:
        return math.floor(self._clock() * 1000)


class SharedBreakers(Breakers):
    """Breakers every instance shares through ``counters`` (``RedisCounters``).

    ``clock`` is wall-clock seconds, the one time instances on different hosts share.
    """

    def __init__(
        self,
        counters: Counters,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(counters, settings or BreakerSettings(), clock)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _open(key: str) -> str:
    return f"breaker:{key}"


def _probes(until: int, slot: int, key: str) -> str:
    return f"breaker-probes:{until}:{slot}:{key}"


def _streak(key: str) -> str:
    return f"breaker-streak:{key}"


def _calls(window: int, key: str) -> str:
    return f"breaker-calls:{window}:{key}"


def _fails(window: int, key: str) -> str:
    return f"breaker-fails:{window}:{key}"
