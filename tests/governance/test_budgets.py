"""Budgets: calendar windows in UTC, key and tenant budgets held together, refusals with the
wait until the next window, windows seeded from the ledger, idempotent settles, lapsed holds,
and a store outage that fails closed on reserve but never loses a ledger row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from aperture.errors import BudgetExceededError, ServiceUnavailableError
from aperture.governance.budgets import BudgetBook, BudgetLine, Hold, window
from aperture.governance.keys import Principal
from aperture.settings.governance import BudgetSettings
from aperture.storage import StorageError, UsageRow
from aperture.storage.memory import MemoryUsageLedger
from aperture.storage.memory_limits import MemoryLimits
from aperture.storage.records import (
    BudgetCharge,
    BudgetState,
)
from tests.governance.fakes import DownLimits, principal

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)  # a Friday, one hour before midnight


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def row(request_id: str, at: datetime = NOW, **fields: Any) -> UsageRow:
    return UsageRow(request_id=request_id, kind="settle", created_at=at, **fields)


class Clock:
    """The monotonic clock of ``MemoryLimits``, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Books:
    def __init__(self, tenants: dict[str, BudgetSettings] | None = None) -> None:
        self.clock = Clock()
        self.limits = MemoryLimits(clock=self.clock)
        self.ledger = MemoryUsageLedger()
        self.book = BudgetBook(self.limits, self.ledger, tenants or {}, clock=lambda: NOW)

    async def state(self, line: BudgetLine) -> BudgetState | None:
        return await self.limits.state(line.key.key)


def test_a_daily_window_is_the_utc_day() -> None:
    assert window("daily", NOW) == (
        "2026-11-20",
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 11, 21, tzinfo=UTC),
    )


def test_a_time_in_another_zone_falls_in_its_utc_window() -> None:
    # 01:30 on the 21st at UTC+2 is still the 20th in UTC.
    local = datetime(2026, 11, 21, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert window("daily", local)[0] == "2026-11-20"


def test_a_weekly_window_runs_monday_to_monday_and_is_named_by_its_iso_week() -> None:
    assert window("weekly", NOW) == (
        "2026-W47",
        datetime(2026, 11, 16, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
    )


def test_a_week_across_new_year_keeps_its_iso_year() -> None:
    # 2027-01-01 is a Friday of ISO week 53 of 2026, which began on Monday 2026-12-28.
    tag, start, end = window("weekly", datetime(2027, 1, 1, 12, tzinfo=UTC))
    assert (tag, start, end) == (
        "2026-W53",
        datetime(2026, 12, 28, tzinfo=UTC),
        datetime(2027, 1, 4, tzinfo=UTC),
    )
    # And 2024-12-31 (a Tuesday) is already in week 1 of 2025.
    assert window("weekly", datetime(2024, 12, 31, tzinfo=UTC))[0] == "2025-W01"


def test_a_monthly_window_is_the_calendar_month() -> None:
    assert window("monthly", datetime(2026, 2, 28, 23, 59, tzinfo=UTC)) == (
        "2026-02",
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )


def test_december_ends_on_the_first_of_january() -> None:
    assert window("monthly", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        "2026-12",
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_the_total_window_never_ends() -> None:
    assert window("total", NOW) == ("total", datetime(1970, 1, 1, tzinfo=UTC), None)


# --- lines -----------------------------------------------------------------------------------


def test_the_master_key_has_no_budget() -> None:
    book = Books({"acme": BudgetSettings(usd=1.0)}).book
    assert book.lines(Principal()) == ()


def test_a_key_without_budgets_has_no_lines() -> None:
    book = Books({"acme": BudgetSettings(usd=1.0)}).book
    assert book.lines(principal()) == ()
    # A tenant with no budget configured adds none either.
    assert book.lines(principal(tenant="other")) == ()


def test_a_key_and_its_tenant_each_have_a_line_in_their_own_window() -> None:
    book = Books({"acme": BudgetSettings(tokens=1000, period="daily")}).book
    lines = book.lines(principal(tenant="acme", budget_usd=2.5))
    assert [(line.scope, line.id, line.period, line.window) for line in lines] == [
        ("key", "k1", "monthly", "2026-11"),
        ("tenant", "acme", "daily", "2026-11-20"),
    ]
    key_line, tenant_line = lines
    assert key_line.key.limit_micros == 2_500_000
    assert key_line.key.limit_tokens is None
    assert tenant_line.key.limit_micros is None
    assert tenant_line.key.limit_tokens == 1000
    assert key_line.key.key != tenant_line.key.key


# --- reserve ---------------------------------------------------------------------------------


async def test_the_master_key_reserves_nothing() -> None:
    books = Books({"acme": BudgetSettings(usd=1.0)})
    assert await books.book.reserve("r1", Principal(), BudgetCharge(10, 10)) is None


async def test_a_reservation_is_held_in_the_key_and_the_tenant_budget() -> None:
    books = Books({"acme": BudgetSettings(usd=10.0)})
    who = principal(tenant="acme", budget_usd=5.0)
    hold = await books.book.reserve("r1", who, BudgetCharge(1200, 300))
    assert hold is not None
    assert hold.request_id == "r1"
    assert [line.scope for line in hold.lines] == ["key", "tenant"]
    for line in hold.lines:
        assert await books.state(line) == BudgetState(
            spent=BudgetCharge(), reserved=BudgetCharge(1200, 300)
        )


async def test_a_budget_without_room_refuses_with_the_wait_until_its_window_ends() -> None:
    books = Books()
    who = principal(budget_usd=0.001, budget_period="daily")
    with pytest.raises(BudgetExceededError) as caught:
        await books.book.reserve("r1", who, BudgetCharge(2000, 10))
    error = caught.value
    assert error.status_code == 429
    assert error.code == "budget_exceeded"
    assert error.headers == {"x-should-retry": "false", "retry-after": "3600"}
    assert "This API key's daily budget of $0.001" in error.message
    assert "2026-11-20" in error.message


async def test_a_tenant_budget_refusal_names_the_tenant_and_its_token_limit() -> None:
    books = Books({"acme": BudgetSettings(tokens=100, period="weekly")})
    with pytest.raises(BudgetExceededError) as caught:
        await books.book.reserve("r1", principal(tenant="acme"), BudgetCharge(0, 150))
    assert "This tenant's weekly budget of 100 tokens" in caught.value.message
    # Monday 2026-11-23 00:00 is 2 days and 1 hour away.
    assert caught.value.headers["retry-after"] == str(2 * 86400 + 3600)


async def test_a_total_budget_refusal_has_no_retry_after() -> None:
    books = Books()
    with pytest.raises(BudgetExceededError) as caught:
        await books.book.reserve(
            "r1", principal(budget_tokens=10, budget_period="total"), BudgetCharge(0, 11)
        )
    assert caught.value.headers == {"x-should-retry": "false"}
    assert "total budget" in caught.value.message


async def test_a_refusal_by_one_budget_holds_nothing_in_the_other() -> None:
    books = Books({"acme": BudgetSettings(tokens=100)})
    who = principal(tenant="acme", budget_usd=5.0)
    with pytest.raises(BudgetExceededError):
        await books.book.reserve("r1", who, BudgetCharge(10, 150))
    key_line, tenant_line = books.book.lines(who)
    assert await books.state(key_line) == BudgetState(BudgetCharge(), BudgetCharge())
    assert await books.state(tenant_line) == BudgetState(BudgetCharge(), BudgetCharge())


async def test_holds_add_up_until_the_budget_is_full() -> None:
    books = Books()
    who = principal(budget_tokens=100)
    assert await books.book.reserve("r1", who, BudgetCharge(0, 60)) is not None
    assert await books.book.reserve("r2", who, BudgetCharge(0, 40)) is not None
    with pytest.raises(BudgetExceededError):
        await books.book.reserve("r3", who, BudgetCharge(0, 1))


async def test_an_unseeded_window_starts_from_the_ledger_rows_of_that_window_only() -> None:
    books = Books({"acme": BudgetSettings(usd=10.0, period="daily")})
    await books.ledger.append(
        [
            # This window: counted.
            row(
                "old-1",
                datetime(2026, 11, 20, 9, tzinfo=UTC),
                key_id="k1",
                tenant="acme",
                amount_micros=300,
                prompt_tokens=20,
                completion_tokens=5,
            ),
            # The day before: another window, ignored.
            row(
                "old-2",
                datetime(2026, 11, 19, 23, 59, tzinfo=UTC),
                key_id="k1",
                tenant="acme",
                amount_micros=9_000_000,
                prompt_tokens=999,
            ),
            # Another key of the tenant, this window: counts for the tenant only.
            row(
                "old-3",
                datetime(2026, 11, 20, 1, tzinfo=UTC),
                key_id="k2",
                tenant="acme",
                amount_micros=50,
                prompt_tokens=1,
            ),
        ]
    )
    who = principal(tenant="acme", budget_usd=1.0, budget_period="daily")
    hold = await books.book.reserve("r1", who, BudgetCharge(7, 3))
    assert hold is not None
    key_line, tenant_line = hold.lines
    assert await books.state(key_line) == BudgetState(BudgetCharge(300, 25), BudgetCharge(7, 3))
    assert await books.state(tenant_line) == BudgetState(BudgetCharge(350, 26), BudgetCharge(7, 3))


async def test_the_ledger_spend_counts_against_the_limit() -> None:
    books = Books()
    await books.ledger.append([row("old", key_id="k1", amount_micros=900_000)])
    who = principal(budget_usd=1.0)
    with pytest.raises(BudgetExceededError):
        await books.book.reserve("r1", who, BudgetCharge(100_001, 1))
    assert await books.book.reserve("r2", who, BudgetCharge(100_000, 1)) is not None


async def test_a_retried_reserve_holds_the_estimate_once() -> None:
    books = Books()
    who = principal(budget_tokens=100)
    await books.book.reserve("r1", who, BudgetCharge(0, 60))
    again = await books.book.reserve("r1", who, BudgetCharge(0, 60))
    assert again is not None
    (line,) = again.lines
    assert await books.state(line) == BudgetState(BudgetCharge(), BudgetCharge(0, 60))


async def test_a_store_outage_refuses_requests_with_a_budget() -> None:
    book = BudgetBook(DownLimits(), MemoryUsageLedger(), {}, clock=lambda: NOW)
    with pytest.raises(ServiceUnavailableError) as caught:
        await book.reserve("r1", principal(budget_usd=1.0), BudgetCharge(1, 1))
    assert caught.value.status_code == 503
    assert caught.value.headers == {"retry-after": "1"}
    assert isinstance(caught.value.__cause__, StorageError)


async def test_a_store_outage_does_not_touch_requests_without_a_budget() -> None:
    book = BudgetBook(DownLimits(), MemoryUsageLedger(), {}, clock=lambda: NOW)
    assert await book.reserve("r1", principal(), BudgetCharge(1, 1)) is None
    assert await book.reserve("r2", Principal(), BudgetCharge(1, 1)) is None


# --- settle ----------------------------------------------------------------------------------


async def test_settle_writes_one_ledger_row_and_moves_the_hold_to_spent() -> None:
    books = Books({"acme": BudgetSettings(usd=10.0)})
    who = principal(tenant="acme", budget_usd=5.0)
    hold = await books.book.reserve("r1", who, BudgetCharge(5000, 500))
    assert hold is not None
    used = row(
        "r1",
        key_id="k1",
        tenant="acme",
        amount_micros=1234,
        prompt_tokens=100,
        completion_tokens=20,
    )
    await books.book.settle(hold, used)
    assert await books.ledger.for_request("r1") == [used]
    for line in hold.lines:
        assert await books.state(line) == BudgetState(BudgetCharge(1234, 120), BudgetCharge())


async def test_settling_twice_writes_one_row_and_counts_once() -> None:
    books = Books()
    hold = await books.book.reserve("r1", principal(budget_tokens=1000), BudgetCharge(0, 500))
    assert hold is not None
    used = row("r1", key_id="k1", prompt_tokens=100, completion_tokens=20)
    await books.book.settle(hold, used)
    await books.book.settle(hold, used)
    assert len(await books.ledger.for_request("r1")) == 1
    assert (await books.ledger.totals(key_id="k1")).prompt_tokens == 100
    (line,) = hold.lines
    assert await books.state(line) == BudgetState(BudgetCharge(0, 120), BudgetCharge())


async def test_a_lapsed_hold_is_still_settled() -> None:
    books = Books()
    who = principal(budget_tokens=1000, budget_period="daily")
    hold = await books.book.reserve("r1", who, BudgetCharge(0, 800))
    assert hold is not None
    (line,) = hold.lines
    books.clock.now += 3601  # past the hold's hour, well inside the window's lifetime
    assert await books.state(line) == BudgetState(BudgetCharge(), BudgetCharge())
    await books.book.settle(hold, row("r1", key_id="k1", prompt_tokens=700, completion_tokens=50))
    assert await books.state(line) == BudgetState(BudgetCharge(0, 750), BudgetCharge())
    assert len(await books.ledger.for_request("r1")) == 1
    # What is left is the budget minus the settled spend.
    with pytest.raises(BudgetExceededError):
        await books.book.reserve("r2", who, BudgetCharge(0, 251))
    assert await books.book.reserve("r3", who, BudgetCharge(0, 250)) is not None


async def test_a_store_outage_at_settle_still_writes_the_ledger() -> None:
    ledger = MemoryUsageLedger()
    book = BudgetBook(DownLimits(), ledger, {}, clock=lambda: NOW)
    line = book.line_for("key", "k1", BudgetSettings(usd=1.0))
    assert line is not None
    used = row("r1", key_id="k1", amount_micros=42, prompt_tokens=10, completion_tokens=2)
    await book.settle(Hold("r1", (line,), BudgetCharge(100, 100)), used)
    assert await ledger.for_request("r1") == [used]


async def test_state_seeds_an_unseeded_window_from_the_ledger() -> None:
    books = Books()
    await books.ledger.append([row("old", key_id="k1", amount_micros=77, prompt_tokens=7)])
    line = books.book.line_for("key", "k1", BudgetSettings(usd=1.0))
    assert line is not None
    assert await books.book.state(line) == BudgetState(BudgetCharge(77, 7), BudgetCharge())
    assert await books.book.ledger_spend(line) == BudgetCharge(77, 7)


# --- lost replies ----------------------------------------------------------------------------


class LostReplies(MemoryLimits):
    """Limits whose reserve and settle replies get lost ``lose`` times: the call is applied,
    then the caller sees the store fail, as after a timeout on a reply in flight."""

    def __init__(self, clock: Clock, *, lose: int) -> None:
        super().__init__(clock=clock)
        self.lose = lose
        self.down = False  # refused before anything is applied

    def _lost(self) -> None:
        if self.lose > 0:
            self.lose -= 1
            raise StorageError("reply lost")

    async def reserve(self, *args: Any, **kwargs: Any) -> Any:
        answer = await super().reserve(*args, **kwargs)
        self._lost()
        return answer

    async def settle(self, *args: Any, **kwargs: Any) -> bool:
        if self.down:
            raise StorageError("connection refused")
        applied = await super().settle(*args, **kwargs)
        self._lost()
        return applied


async def test_a_lost_reply_is_retried_and_counted_once() -> None:
    clock = Clock()
    limits = LostReplies(clock, lose=2)
    book = BudgetBook(limits, MemoryUsageLedger(), {}, clock=lambda: NOW)
    hold = await book.reserve("r1", principal(budget_tokens=1000), BudgetCharge(0, 300))
    assert hold is not None
    (line,) = hold.lines
    assert await limits.state(line.key.key) == BudgetState(BudgetCharge(), BudgetCharge(0, 300))

    limits.lose = 2
    await book.settle(hold, row("r1", key_id="k1", prompt_tokens=100, completion_tokens=20))
    assert await limits.state(line.key.key) == BudgetState(BudgetCharge(0, 120), BudgetCharge())
    assert book.unsettled == 0


async def test_a_reserve_that_keeps_failing_leaves_no_hold_behind() -> None:
    clock = Clock()
    limits = LostReplies(clock, lose=10)  # every try is applied, and every reply is lost
    book = BudgetBook(limits, MemoryUsageLedger(), {}, clock=lambda: NOW)
    who = principal(budget_tokens=1000)
    (line,) = book.lines(who)
    await limits.seed(line.key, BudgetCharge())
    with pytest.raises(ServiceUnavailableError):
        await book.reserve("r1", who, BudgetCharge(0, 300))
    # The hold its first try took is released, though that reply never came back.
    assert await limits.state(line.key.key) == BudgetState(BudgetCharge(), BudgetCharge())


async def test_a_settle_the_store_refuses_is_kept_and_flushed_later() -> None:
    clock = Clock()
    limits = LostReplies(clock, lose=0)
    book = BudgetBook(limits, MemoryUsageLedger(), {}, clock=lambda: NOW)
    hold = await book.reserve("r1", principal(budget_tokens=1000), BudgetCharge(0, 300))
    assert hold is not None
    (line,) = hold.lines

    limits.down = True
    await book.settle(hold, row("r1", key_id="k1", prompt_tokens=100))
    assert book.unsettled == 1
    await book.flush()  # still down: kept
    assert book.unsettled == 1
    limits.down = False
    await book.flush()
    assert book.unsettled == 0
    assert await limits.state(line.key.key) == BudgetState(BudgetCharge(0, 100), BudgetCharge())
