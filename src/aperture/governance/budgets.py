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

No hold is left behind. Reserve and settle are idempotent per request id in the store, so a
call whose reply was lost is simply tried again; a reserve that still fails, or is cancelled,
is released (a hold may have been taken before the reply was lost); a counter settle that
still fails is kept and retried by ``flush`` (every heartbeat). With an ``instance`` id, each
hold is indexed under this instance with a ``HoldNote``, so if the process dies the survivors
settle it (``governance.reclaim``).
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
from aperture.storage.records import BudgetCharge, BudgetDecision, BudgetScope, BudgetState

__all__ = ["BudgetBook", "BudgetLine", "Hold", "HoldNote", "window"]

log = logging.getLogger(__name__)

# A hold outlives the longest request it can belong to, then lapses by itself.
_HOLD_S = 3600.0
# Window state is kept a day past the window's end, so late settles still find it.
_GRACE = timedelta(days=1)
_TOTAL_TTL_S = 400 * 86400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LEDGER_TRIES = 3
# A lost reply or a dropped connection is tried again at once, then after a short pause; a
# store still down after that is an outage (503 at reserve, a deferred settle after).
_STORE_TRIES = 3
_STORE_RETRY_S = 0.05
# Counter settles waiting for the store to come back: beyond this many, the oldest are left
# to lapse with their hold (their spend is in the ledger already).
_MAX_UNSETTLED = 10_000


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


class HoldNote(msgspec.Struct, frozen=True, kw_only=True):
    """What a survivor needs to settle a hold whose instance was lost: stored with the hold.

    Metadata only (no prompt text): the charge is the admission estimate.
    """

    scopes: tuple[BudgetScope, ...]
    micros: int
    prompt_tokens: int
    completion_tokens: int
    key_id: str | None = None
    tenant: str | None = None
    model: str | None = None
    endpoint: str = ""
    started: datetime


_NOTE = msgspec.json.Encoder()


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
        instance: str | None = None,
    ) -> None:
        self._limits = limits
        self._ledger = ledger
        self._tenants = dict(tenants)
        self._clock = clock
        self._instance = instance
        # request id -> (scopes, charge): counter settles the store refused, tried again later
        self._unsettled: dict[str, tuple[tuple[BudgetScope, ...], BudgetCharge]] = {}

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
        self,
        request_id: str,
        principal: Principal,
        estimate: BudgetCharge,
        *,
        prompt_tokens: int = 0,
        model: str | None = None,
        endpoint: str = "",
    ) -> Hold | None:
        """Hold ``estimate`` in every budget of ``principal``; None when none applies.

        ``prompt_tokens`` (of ``estimate.tokens``), ``model`` and ``endpoint`` go into the
        hold's note, for the survivor that settles it if this instance is lost.

        Raises:
            BudgetExceededError: a budget has no room for the estimate.
            ServiceUnavailableError: the budget store is down (budgets fail closed).
        """
        lines = self.lines(principal)
        if not lines:
            return None
        scopes = tuple(line.key for line in lines)
        note = _NOTE.encode(
            HoldNote(
                scopes=scopes,
                micros=estimate.micros,
                prompt_tokens=prompt_tokens,
                completion_tokens=max(0, estimate.tokens - prompt_tokens),
                key_id=principal.key_id,
                tenant=principal.tenant,
                model=model,
                endpoint=endpoint,
                started=self._clock(),
            )
        )
        try:
            for _ in range(len(lines) + 1):  # each pass seeds at most one window
                decision = await self._reserve_once(request_id, scopes, estimate, note)
                if decision.outcome in ("reserved", "duplicate"):
                    return Hold(request_id, lines, estimate)
                line = next(line for line in lines if line.key.key == decision.scope)
                if decision.outcome == "denied":
                    raise self._exceeded(line, decision.state)
                await self._seed(line)
        except BudgetExceededError:
            raise  # nothing was held
        except BaseException as exc:
            # A store failure, or a cancellation, may have come after the hold was taken
            # (the reply was lost): give it back, or it would stay reserved for an hour.
            if not await self._release(request_id, scopes):
                await self._record_refusal(request_id, principal, model)
            if not isinstance(exc, StorageError):
                raise
            log.error("budget store failed: %s", exc)
            raise ServiceUnavailableError(
                "Budgets cannot be checked right now; try again shortly.",
                headers={"retry-after": "1"},
            ) from exc
        raise ServiceUnavailableError(
            "Budget windows could not be seeded; try again.", headers={"retry-after": "1"}
        )

    async def _reserve_once(
        self, request_id: str, scopes: tuple[BudgetScope, ...], estimate: BudgetCharge, note: bytes
    ) -> BudgetDecision:
        for attempt in range(_STORE_TRIES):
            try:
                return await self._limits.reserve(
                    request_id, scopes, estimate, hold_s=_HOLD_S, owner=self._instance, note=note
                )
            except StorageError:
                if attempt == _STORE_TRIES - 1:
                    raise
                await anyio.sleep(_STORE_RETRY_S * 2**attempt)
        raise AssertionError("unreachable")

    async def _release(self, request_id: str, scopes: tuple[BudgetScope, ...]) -> bool:
        """Give a hold back; False when the store could not be told (the release is deferred)."""
        with anyio.CancelScope(shield=True):
            released = await self._settle_counters(request_id, scopes, BudgetCharge())
        return released

    async def _record_refusal(
        self, request_id: str, principal: Principal, model: str | None
    ) -> None:
        """Leave a zero settle row for a refused request whose hold may still be in the store.

        While the store is unreachable this instance cannot beat either, so the survivors may
        take it for lost and reclaim the hold before the deferred release lands; finding this
        row, they charge nothing instead of the admission estimate for a request never served.
        """
        row = UsageRow(
            request_id=request_id,
            kind="settle",
            created_at=self._clock(),
            key_id=principal.key_id,
            tenant=principal.tenant,
            model=model,
            source="refused",
        )
        with anyio.CancelScope(shield=True):
            await self._append(row)

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
            await self._settle_counters(
                hold.request_id, tuple(line.key for line in hold.lines), actual
            )

    async def _settle_counters(
        self, request_id: str, scopes: tuple[BudgetScope, ...], actual: BudgetCharge
    ) -> bool:
        """Settle the counters now (True) or keep the settle for ``flush`` (False)."""
        for attempt in range(_STORE_TRIES):
            try:
                await self._limits.settle(request_id, scopes, actual, owner=self._instance)
                return True
            except StorageError as exc:
                if attempt == _STORE_TRIES - 1:
                    # Kept for ``flush``: the hold would otherwise stay reserved until it lapses.
                    log.error("budget settle failed for %s (retried later): %s", request_id, exc)
                    self._defer(request_id, scopes, actual)
                    return False
                await anyio.sleep(_STORE_RETRY_S * 2**attempt)
        raise AssertionError("unreachable")

    def _defer(
        self, request_id: str, scopes: tuple[BudgetScope, ...], actual: BudgetCharge
    ) -> None:
        if len(self._unsettled) >= _MAX_UNSETTLED:
            dropped = next(iter(self._unsettled))
            del self._unsettled[dropped]
            log.error("too many deferred budget settles; %s is left to lapse", dropped)
        self._unsettled[request_id] = (scopes, actual)

    @property
    def unsettled(self) -> int:
        """How many counter settles wait for the store to come back."""
        return len(self._unsettled)

    async def flush(self) -> None:
        """Try the deferred counter settles again (each is idempotent); stops at the first
        failure, the store being still down."""
        for request_id, (scopes, actual) in list(self._unsettled.items()):
            try:
                await self._limits.settle(request_id, scopes, actual, owner=self._instance)
            except StorageError:
                return
            self._unsettled.pop(request_id, None)

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
