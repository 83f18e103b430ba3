"""The stores' pure budget arithmetic and what only the in-memory twins do (an injected clock,
bounded size, forgetting expired counters). Behaviour shared with Redis is tested on both
backends in ``tests/integration/test_stores.py``."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import pytest

import processors.foundation.stores as stores
from processors.foundation.config import TenantBudget, Window
from processors.foundation.stores import (
    MemoryBudgetLedger,
    MemoryResponseCache,
    MemoryResultStore,
    RedisBudgetLedger,
    Reservation,
    connect,
)
from processors.foundation.stores._windows import (
    first_breach,
    per_request_breach,
    plan_counters,
    tightest_window,
    to_nanos,
    to_usd,
    window_bounds,
)

pytestmark = pytest.mark.anyio


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


# --- window arithmetic ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "moment", "start", "end"),
    [
        ("minute", at(2026, 3, 14, 12, 0, 59), at(2026, 3, 14, 12, 0), at(2026, 3, 14, 12, 1)),
        ("day", at(2026, 3, 14, 23, 59, 59), at(2026, 3, 14), at(2026, 3, 15)),
        ("month", at(2026, 3, 31, 23, 59), at(2026, 3, 1), at(2026, 4, 1)),
        ("month", at(2026, 12, 31, 12), at(2026, 12, 1), at(2027, 1, 1)),
        ("month", at(2028, 2, 29, 1), at(2028, 2, 1), at(2028, 3, 1)),
    ],
)
def test_windows_are_fixed_utc_calendar_periods(
    window: Window, moment: float, start: float, end: float
) -> None:
    assert window_bounds(window, moment) == (start, end)
    assert window_bounds(window, start) == (start, end)
    assert window_bounds(window, end)[0] == end


def test_costs_are_counted_exactly_in_nano_dollars() -> None:
    assert to_nanos(0.1) + to_nanos(0.2) == to_nanos(0.3)
    assert to_usd(to_nanos(1.5e-6)) == 1.5e-6


def test_the_plan_charges_burst_then_every_window_limited_or_not() -> None:
    budget = TenantBudget.model_validate(
        {"windows": {"day": {"tokens": 10}}, "burst": {"requests_per_second": 2}}
    )
    counters = plan_counters(budget, 5, 7, at(2026, 3, 14, 12, 0, 30), margin_s=300)
    assert [c.slot for c in counters] == [
        f"burst:{int(at(2026, 3, 14, 12, 0, 30))}",
        f"minute:{int(at(2026, 3, 14, 12, 0))}",
        f"day:{int(at(2026, 3, 14))}",
        f"month:{int(at(2026, 3, 1))}",
    ]
    assert counters[1].expires_at == at(2026, 3, 14, 12, 1) + 300
    assert [(ch.field, ch.amount, ch.cap) for ch in counters[2].charges] == [
        ("tokens", 5, 10),
        ("cost_nanos", 7, None),
    ]


def test_breaches_are_found_in_plan_order_and_headroom_in_the_tightest_window() -> None:
    budget = TenantBudget.model_validate(
        {"windows": {"minute": {"tokens": 100}, "day": {"tokens": 1_000}}}
    )
    counters = plan_counters(budget, 60, 0, at(2026, 3, 14), margin_s=0)
    spent = [50, 0, 900, 0, 0, 0]  # minute tokens/cost, day tokens/cost, month tokens/cost
    breach = first_breach(counters, spent)
    assert breach is not None
    assert (breach.limit, breach.field, breach.cap, breach.spent) == ("minute", "tokens", 100, 50)
    headroom = tightest_window(counters, [0, 0, 900, 0, 0, 0])
    assert (headroom.window, headroom.tokens, headroom.cost_nanos) == ("day", 40, None)


def test_per_request_caps_compare_the_estimate_alone() -> None:
    budget = TenantBudget.model_validate({"per_request": {"max_cost_usd": 0.5}})
    assert per_request_breach(budget, 10**9, to_nanos(0.5)) is None
    breach = per_request_breach(budget, 1, to_nanos(0.500000001))
    assert breach is not None
    assert (breach.limit, breach.field) == ("per_request", "cost_nanos")


# --- memory twins --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_records_expire_by_the_injected_clock() -> None:
    clock = FakeClock()
    cache = MemoryResponseCache(clock=clock)
    await cache.put("k", b"v", 10)
    clock.now += 9.999
    assert await cache.get("k") == b"v"
    clock.now += 0.001
    assert await cache.get("k") is None


async def test_memory_run_logs_drop_the_oldest_beyond_capacity() -> None:
    results = MemoryResultStore(max_entries=2)
    await results.extend("a", [b"1"], 60)
    await results.extend("b", [b"2"], 60)
    await results.extend("a", [b"1", b"3"], 60)  # an extension makes "a" the newest
    await results.extend("c", [b"4"], 60)
    assert [await results.read(k) for k in "abc"] == [[b"1", b"3"], [], [b"4"]]


def test_memory_records_need_room_for_one() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryResponseCache(max_entries=0)


async def test_memory_ledger_forgets_counters_after_their_window() -> None:
    ledger = MemoryBudgetLedger(settle_margin_s=60)
    budget = TenantBudget()
    minute = at(2026, 3, 14, 12, 0)
    reservation = await ledger.reserve("acme", 10, 0.0, budget, minute)
    assert isinstance(reservation, Reservation)
    await ledger.reserve("acme", 1, 0.0, budget, minute + 120)  # past the minute + margin
    assert await ledger.spend("acme", "minute", minute) == (0, 0.0)
    await ledger.settle(reservation, 50, 0.0)  # the minute is gone; the day still counts
    assert await ledger.spend("acme", "minute", minute) == (0, 0.0)
    assert await ledger.spend("acme", "day", minute) == (51, 0.0)


async def test_negative_usage_is_refused() -> None:
    ledger = MemoryBudgetLedger()
    with pytest.raises(ValueError, match="negative"):
        await ledger.reserve("acme", -1, 0.0, TenantBudget(), 0.0)


# --- the package ---------------------------------------------------------------------------


def test_connect_picks_the_backend_from_the_url() -> None:
    assert isinstance(connect(None).budgets, MemoryBudgetLedger)
    assert connect(None).redis is None
    remote = connect("redis://127.0.0.1:1/0")  # lazy: nothing is dialled yet
    assert isinstance(remote.budgets, RedisBudgetLedger)
    assert remote.redis is not None


def test_the_package_exports_every_public_name_sorted() -> None:
    exported = set(stores.__all__)
    assert stores.__all__ == sorted(stores.__all__)
    assert "StoreUnavailable" in exported
    for module in ("breaker", "budgets", "cache", "idempotency", "semantic"):
        names = importlib.import_module(f"processors.foundation.stores.{module}").__all__
        assert set(names) <= exported, module
