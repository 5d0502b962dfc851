"""Budgets per key and per tenant, in money and tokens: reserve before dispatch, settle after.

    reserve(estimate) ──► Limits.reserve: all scopes or none, atomic across instances
        │ unseeded                     ▲
        └──► ledger totals of the window ──► Limits.seed (set if absent) ──┘
    settle(actual) ──► UsageLedger.append (the truth, idempotent per request)
                   ──► Limits.settle       (the fast copy, idempotent per request)

A budget window is part of its scope's key (``key:3f2a:monthly:2026-11``), so a new period
starts from a fresh, unseeded scope and nothing is ever reset in place. The ledger is written
before the counters are settled, so a scope seeded from the ledger afterwards already holds
the spend. Budgets fail closed: when the store is down, requests with a budget are refused
with 503 rather than admitted unchecked.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import anyio
import msgspec

from aperture.errors import BudgetExceededError, ServiceUnavailableError
from aperture.governance.keys import Principal
from aperture.settings.governance import BudgetPeriod, BudgetSettings
from aperture.storage import Limits, StorageError, UsageLedger, UsageRow
from aperture.storage.records import BudgetCharge, BudgetScope, BudgetState

__all__ = ["BudgetBook", "BudgetLine", "Hold", "window"]

log = logging.getLogger(__name__)

# A hold outlives the longest request it can belong to, then lapses by itself.
_HOLD_S = 3600.0
# Window state is kept a day past the window's end, so late settles still find it.
_GRACE = timedelta(days=1)
_TOTAL_TTL_S = 400 * 86400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LEDGER_TRIES = 3


def window(period: BudgetPeriod, now: datetime) -> tuple[str, datetime, datetime | None]:
    """The window of ``period`` holding ``now`` (UTC): its tag, start and end (None: never)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    match period:
        case "daily":
            return day.strftime("%Y-%m-%d"), day, day + timedelta(days=1)
        case "weekly":
            start = day - timedelta(days=day.weekday())
            year, week, _ = start.isocalendar()
            return f"{year}-W{week:02d}", start, start + timedelta(days=7)
        case "monthly":
            start = day.replace(day=1)
            end = (
                start.replace(year=start.year + 1, month=1)
                if start.month == 12
                else (start.replace(month=start.month + 1))
            )
            return start.strftime("%Y-%m"), start, end
        case "total":
            return "total", _EPOCH, None


class BudgetLine(msgspec.Struct, frozen=True, kw_only=True):
    """One budget in its current window: what the admin API shows and reserve checks."""

    scope: str
    """``key`` or ``tenant``."""
    id: str
    period: BudgetPeriod
    window: str
    window_start: datetime
    window_end: datetime | None
    limit_usd: float | None
    limit_tokens: int | None
    key: BudgetScope

    async def ledger_totals(self, ledger: UsageLedger) -> BudgetCharge:
        """What the ledger says this window has spent: the truth the counters copy."""
        key_id, tenant = (self.id, None) if self.scope == "key" else (None, self.id)
        totals = await ledger.totals(key_id=key_id, tenant=tenant, since=self.window_start)
        return BudgetCharge(totals.amount_micros, totals.prompt_tokens + totals.completion_tokens)


class Hold(msgspec.Struct, frozen=True):
    """What one request reserved, and where: settled exactly once when it ends."""

    request_id: str
    lines: tuple[BudgetLine, ...]
    estimate: BudgetCharge


def _micros(usd: float | None) -> int | None:
    return None if usd is None else math.floor(usd * 1_000_000)


def _line(scope: str, id: str, budget: BudgetSettings | None, now: datetime) -> BudgetLine | None:
    if budget is None or (budget.usd is None and budget.tokens is None):
        return None
    tag, start, end = window(budget.period, now)
    ttl_s = _TOTAL_TTL_S if end is None else (end + _GRACE - now).total_seconds()
    return BudgetLine(
        scope=scope,
        id=id,
        period=budget.period,
        window=tag,
        window_start=start,
        window_end=end,
        limit_usd=budget.usd,
        limit_tokens=budget.tokens,
        key=BudgetScope(
            key=f"bud:{scope}:{id}:{budget.period}:{tag}",
            limit_micros=_micros(budget.usd),
            limit_tokens=budget.tokens,
            ttl_s=ttl_s,
        ),
    )


class BudgetBook:
    """Enforces key and tenant budgets over a ``Limits`` store and the usage ledger."""

    def __init__(
        self,
        limits: Limits,
        ledger: UsageLedger,
        tenants: Mapping[str, BudgetSettings],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._limits = limits
        self._ledger = ledger
        self._tenants = dict(tenants)
        self._clock = clock

    @property
    def tenants(self) -> Mapping[str, BudgetSettings]:
        return self._tenants

    def lines(self, principal: Principal) -> tuple[BudgetLine, ...]:
        """The budgets a request by ``principal`` is charged to, in their current windows."""
        key = principal.key
        if key is None:
            return ()  # the master key is the operator's: no budget applies
        now = self._clock()
        found: list[BudgetLine] = []
        if key.budget_usd is not None or key.budget_tokens is not None:
            own = BudgetSettings(
                usd=key.budget_usd, tokens=key.budget_tokens, period=key.budget_period or "monthly"
            )
            line = _line("key", key.id, own, now)
            if line is not None:
                found.append(line)
        if key.tenant is not None:
            line = _line("tenant", key.tenant, self._tenants.get(key.tenant), now)
            if line is not None:
                found.append(line)
        return tuple(found)

    def line_for(self, scope: str, id: str, budget: BudgetSettings) -> BudgetLine | None:
        return _line(scope, id, budget, self._clock())

    async def reserve(
        self, request_id: str, principal: Principal, estimate: BudgetCharge
    ) -> Hold | None:
        """Hold ``estimate`` in every budget of ``principal``; None when none applies.

        Raises:
            BudgetExceededError: a budget has no room for the estimate.
            ServiceUnavailableError: the budget store is down (budgets fail closed).
        """
        lines = self.lines(principal)
        if not lines:
            return None
        scopes = [line.key for line in lines]
        try:
            for _ in range(len(lines) + 1):  # each pass seeds at most one window
                decision = await self._limits.reserve(request_id, scopes, estimate, hold_s=_HOLD_S)
                if decision.outcome in ("reserved", "duplicate"):
                    return Hold(request_id, lines, estimate)
                line = next(line for line in lines if line.key.key == decision.scope)
                if decision.outcome == "denied":
                    raise self._exceeded(line, decision.state)
                await self._seed(line)
        except StorageError as exc:
            log.error("budget store failed: %s", exc)
            raise ServiceUnavailableError(
                "Budgets cannot be checked right now; try again shortly.",
                headers={"retry-after": "1"},
            ) from exc
        raise ServiceUnavailableError("Budget windows could not be seeded; try again.")

    async def _seed(self, line: BudgetLine) -> None:
        await self._limits.seed(line.key, await line.ledger_totals(self._ledger))

    def _exceeded(self, line: BudgetLine, state: BudgetState | None) -> BudgetExceededError:
        headers = {"x-should-retry": "false"}
        if line.window_end is not None:
            wait = (line.window_end - self._clock()).total_seconds()
            headers["retry-after"] = str(max(1, math.ceil(wait)))
        which = "This API key's" if line.scope == "key" else "This tenant's"
        limit = (
            f"${line.limit_usd:g}" if line.limit_usd is not None else f"{line.limit_tokens} tokens"
        )
        return BudgetExceededError(
            f"{which} {line.period} budget of {limit} has no room for this request "
            f"(window {line.window}). Lower max_tokens, or wait for the next window.",
            headers=headers,
        )

    async def settle(self, hold: Hold, row: UsageRow) -> None:
        """Record what the request used (``row``: kind ``settle``) and release its hold.

        The ledger row is written first (retried: it is money); the counters follow even if
        the ledger failed, so enforcement stays right while the error is logged loudly.
        """
        actual = BudgetCharge(row.amount_micros, row.prompt_tokens + row.completion_tokens)
        with anyio.CancelScope(shield=True):
            await self._append(row)
            try:
                await self._limits.settle(
                    hold.request_id, [line.key for line in hold.lines], actual
                )
            except StorageError as exc:
                # The hold lapses by itself; the spend is in the ledger and reaches the counter
                # when the window is seeded again.
                log.error("budget settle failed for %s: %s", hold.request_id, exc)

    async def _append(self, row: UsageRow) -> None:
        for attempt in range(_LEDGER_TRIES):
            try:
                await self._ledger.append([row])
                return
            except StorageError as exc:
                if attempt == _LEDGER_TRIES - 1:
                    log.error(
                        "ledger write failed for %s (%d micro-dollars, %d+%d tokens): %s",
                        row.request_id,
                        row.amount_micros,
                        row.prompt_tokens,
                        row.completion_tokens,
                        exc,
                    )
                    return
                await anyio.sleep(0.2 * 2**attempt)

    async def state(self, line: BudgetLine) -> BudgetState:
        """The line's counters, seeding the window from the ledger first if needed."""
        state = await self._limits.state(line.key.key)
        if state is None:
            with contextlib.suppress(StorageError):
                await self._seed(line)
            state = await self._limits.state(line.key.key)
        return state or BudgetState(BudgetCharge(), BudgetCharge())

    async def ledger_spend(self, line: BudgetLine) -> BudgetCharge:
        return await line.ledger_totals(self._ledger)
