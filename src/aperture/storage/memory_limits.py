"""Rate-limit windows and budget reservations for one process, with Redis's semantics.

Each method runs without an ``await`` between its read and its write, so on one event loop
every operation is atomic, as each Redis script is. ``clock`` (seconds, must never go back)
is injectable, so tests let time pass without sleeping. Expired windows, scopes and markers
are dropped when touched, and all of them every ``SWEEP_EVERY`` writes, so memory stays
bounded by what is live.

Instance heartbeats and hold indexes behave as on Redis (the contract tests play several
instances on one store), but one process has nothing to reclaim from another: when it dies,
its holds die with it, and the gateway does not index them here."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aperture.storage.records import (
    BudgetCharge,
    BudgetDecision,
    BudgetScope,
    BudgetState,
    ClaimedHold,
    WindowAdmission,
)

__all__ = [
    "APPLIED_TTL_S",
    "SWEEP_EVERY",
    "MemoryLimits",
    "check_charge",
    "check_cost",
    "check_limit",
    "check_positive",
    "check_scopes",
]

APPLIED_TTL_S = 86_400.0
"""How long a settled request id is remembered, so a retried settle is a no-op."""

SWEEP_EVERY = 1024
"""Writes between two sweeps of everything expired."""


def check_positive(seconds: float, what: str) -> None:
    if not seconds > 0:
        raise ValueError(f"{what} must be positive")


def check_cost(cost: int) -> None:
    if cost < 0:
        raise ValueError("cost must not be negative")


def check_charge(charge: BudgetCharge, what: str) -> None:
    if charge.micros < 0 or charge.tokens < 0:
        raise ValueError(f"{what} must not be negative")


def check_limit(limit: int) -> None:
    if limit <= 0:
        raise ValueError("limit must be positive")


def check_scopes(scopes: Sequence[BudgetScope]) -> None:
    """Refuse a scope named twice: it would be held, and charged, twice."""
    if len({scope.key for scope in scopes}) != len(scopes):
        raise ValueError("scopes must have distinct keys")


@dataclass(slots=True)
class _Window:
    # member -> [admitted at, cost]; insertion order is time order (the clock never goes back)
    members: dict[str, list[float | int]] = field(default_factory=dict)
    used: int = 0
    expires: float = 0.0

    def purge(self, cutoff: float) -> None:
        while self.members:
            member, (at, cost) = next(iter(self.members.items()))
            if at > cutoff:
                return
            del self.members[member]
            self.used -= int(cost)

    def retry_after(self, need: int, window_s: float, now: float) -> float:
        """How long until ``need`` of the window's cost has slid out of it."""
        freed = 0
        for at, cost in self.members.values():
            freed += int(cost)
            if freed >= need:
                return at + window_s - now
        return window_s


@dataclass(slots=True)
class _Hold:
    expires: float
    micros: int
    tokens: int


@dataclass(slots=True)
class _Scope:
    """A seeded budget window (an unseeded one has no ``_Scope`` at all)."""

    expires: float
    spent: BudgetCharge
    reserved_micros: int = 0
    reserved_tokens: int = 0
    holds: dict[str, _Hold] = field(default_factory=dict)

    def release(self, request_id: str) -> None:
        hold = self.holds.pop(request_id, None)
        if hold is not None:
            self.reserved_micros -= hold.micros
            self.reserved_tokens -= hold.tokens

    def purge(self, now: float) -> None:
        for request_id in [r for r, hold in self.holds.items() if hold.expires <= now]:
            self.release(request_id)

    def state(self) -> BudgetState:
        return BudgetState(
            spent=self.spent, reserved=BudgetCharge(self.reserved_micros, self.reserved_tokens)
        )

    def fits(self, scope: BudgetScope, estimate: BudgetCharge) -> bool:
        """Whether spent + reserved + estimate stays within each limit the scope sets."""
        micros = self.spent.micros + self.reserved_micros + estimate.micros
        tokens = self.spent.tokens + self.reserved_tokens + estimate.tokens
        return (scope.limit_micros is None or micros <= scope.limit_micros) and (
            scope.limit_tokens is None or tokens <= scope.limit_tokens
        )


class MemoryLimits:
    """``Limits`` for one process: right for one instance, per-instance limits for several."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._scopes: dict[str, _Scope] = {}
        self._held: dict[str, float] = {}  # request id -> when its hold marker expires
        self._applied: dict[str, float] = {}  # request id -> when its settle is forgotten
        self._beats: dict[str, float] = {}  # instance -> when its heartbeat lapses
        self._index: dict[str, dict[str, bytes]] = {}  # instance -> request id -> note
        self._claims: dict[str, dict[str, float]] = {}  # instance -> request id -> lease end
        self._writes = 0

    def stored(self) -> int:
        """How many windows, scopes, request markers and instances are kept (tests check it
        is bounded)."""
        return (
            len(self._windows)
            + len(self._scopes)
            + len(self._held)
            + len(self._applied)
            + len(self._beats)
            + sum(len(index) for index in self._index.values())
        )

    def _wrote(self, now: float) -> None:
        self._writes += 1
        if self._writes % SWEEP_EVERY:
            return
        # What nobody touches again would otherwise outlive its TTL in memory for ever.
        for key in [k for k, w in self._windows.items() if w.expires <= now]:
            del self._windows[key]
        for key in [k for k, s in self._scopes.items() if s.expires <= now]:
            del self._scopes[key]
        for scope in self._scopes.values():
            scope.purge(now)
        for markers in (self._held, self._applied):
            for request_id in [r for r, at in markers.items() if at <= now]:
                del markers[request_id]

    def _window(self, key: str, now: float, window_s: float) -> _Window | None:
        window = self._windows.get(key)
        if window is None:
            return None
        if window.expires <= now:
            del self._windows[key]
            return None
        window.purge(now - window_s)
        return window

    def _scope(self, key: str, now: float) -> _Scope | None:
        scope = self._scopes.get(key)
        if scope is None:
            return None
        if scope.expires <= now:
            del self._scopes[key]
            return None
        scope.purge(now)
        return scope

    @staticmethod
    def _marked(markers: dict[str, float], request_id: str, now: float) -> bool:
        at = markers.get(request_id)
        if at is not None and at <= now:
            del markers[request_id]
            return False
        return at is not None

    async def acquire(
        self, key: str, member: str, cost: int, *, limit: int, window_s: float
    ) -> WindowAdmission:
        check_positive(window_s, "window_s")
        check_cost(cost)
        now = self._clock()
        window = self._window(key, now, window_s)
        used = 0 if window is None else window.used
        if window is not None and member in window.members:
            return WindowAdmission(True, used)
        if used + cost <= limit:
            if window is None:
                window = self._windows[key] = _Window()
            window.members[member] = [now, cost]
            window.used += cost
            window.expires = now + window_s
            self._wrote(now)
            return WindowAdmission(True, window.used)
        if cost > limit or window is None:
            return WindowAdmission(False, used, None)
        return WindowAdmission(False, used, window.retry_after(used + cost - limit, window_s, now))

    async def adjust(self, key: str, member: str, delta: int, *, window_s: float) -> None:
        check_positive(window_s, "window_s")
        now = self._clock()
        window = self._window(key, now, window_s)
        entry = None if window is None else window.members.get(member)
        if window is None or entry is None:
            return
        new = max(0, int(entry[1]) + delta)
        window.used += new - int(entry[1])
        entry[1] = new
        window.expires = now + window_s
        self._wrote(now)

    async def seed(self, scope: BudgetScope, spent: BudgetCharge) -> bool:
        check_positive(scope.ttl_s, "ttl_s")
        now = self._clock()
        if self._scope(scope.key, now) is not None:
            return False
        self._scopes[scope.key] = _Scope(expires=now + scope.ttl_s, spent=spent)
        self._wrote(now)
        return True

    async def reserve(
        self,
        request_id: str,
        scopes: Sequence[BudgetScope],
        estimate: BudgetCharge,
        *,
        hold_s: float,
        owner: str | None = None,
        note: bytes = b"",
    ) -> BudgetDecision:
        check_charge(estimate, "estimate")
        check_scopes(scopes)
        check_positive(hold_s, "hold_s")
        for scope in scopes:
            check_positive(scope.ttl_s, "ttl_s")
        now = self._clock()
        if self._marked(self._held, request_id, now) or self._marked(
            self._applied, request_id, now
        ):
            return BudgetDecision(outcome="duplicate")
        states: list[_Scope] = []
        for scope in scopes:
            state = self._scope(scope.key, now)
            if state is None:
                return BudgetDecision(outcome="unseeded", scope=scope.key)
            if not state.fits(scope, estimate):
                return BudgetDecision(outcome="denied", scope=scope.key, state=state.state())
            states.append(state)
        self._held[request_id] = now + hold_s
        if owner is not None:
            self._index.setdefault(owner, {})[request_id] = note
        for scope, state in zip(scopes, states, strict=True):
            state.holds[request_id] = _Hold(now + hold_s, estimate.micros, estimate.tokens)
            state.reserved_micros += estimate.micros
            state.reserved_tokens += estimate.tokens
            state.expires = now + scope.ttl_s
        self._wrote(now)
        return BudgetDecision(outcome="reserved")

    async def settle(
        self,
        request_id: str,
        scopes: Sequence[BudgetScope],
        actual: BudgetCharge,
        *,
        owner: str | None = None,
    ) -> bool:
        check_charge(actual, "actual")
        check_scopes(scopes)
        for scope in scopes:
            check_positive(scope.ttl_s, "ttl_s")
        now = self._clock()
        if owner is not None:
            self._unindex(owner, request_id)
        if self._marked(self._applied, request_id, now):
            return False
        self._applied[request_id] = now + APPLIED_TTL_S
        self._held.pop(request_id, None)
        for scope in scopes:
            state = self._scope(scope.key, now)
            if state is None:
                continue
            state.release(request_id)
            state.spent = BudgetCharge(
                state.spent.micros + actual.micros, state.spent.tokens + actual.tokens
            )
            state.expires = now + scope.ttl_s
        self._wrote(now)
        return True

    async def state(self, scope: str) -> BudgetState | None:
        state = self._scope(scope, self._clock())
        return None if state is None else state.state()

    def _unindex(self, instance: str, request_id: str) -> None:
        index = self._index.get(instance)
        if index is not None and index.pop(request_id, None) is not None and not index:
            del self._index[instance]
        claims = self._claims.get(instance)
        if claims is not None and claims.pop(request_id, None) is not None and not claims:
            del self._claims[instance]

    async def beat(self, instance: str, *, ttl_s: float) -> None:
        check_positive(ttl_s, "ttl_s")
        self._beats[instance] = self._clock() + ttl_s

    async def lost(self) -> list[str]:
        now = self._clock()
        return sorted(i for i, lapses in self._beats.items() if lapses <= now)

    async def claim(self, instance: str, *, lease_s: float, limit: int) -> list[ClaimedHold]:
        check_positive(lease_s, "lease_s")
        check_limit(limit)
        now = self._clock()
        if self._beats.get(instance, now) > now:
            return []  # alive, or alive again
        index = self._index.get(instance)
        if not index:
            self._beats.pop(instance, None)
            self._claims.pop(instance, None)
            return []
        claims = self._claims.setdefault(instance, {})
        claimed: list[ClaimedHold] = []
        for request_id, note in index.items():
            if claims.get(request_id, now) > now:
                continue  # another survivor is on it
            claims[request_id] = now + lease_s
            claimed.append(ClaimedHold(instance, request_id, note))
            if len(claimed) == limit:
                break
        return claimed

    async def retire(self, instance: str) -> None:
        if self._index.get(instance):
            self._beats[instance] = self._clock()
        else:
            self._beats.pop(instance, None)
