"""Pure budget arithmetic shared by the Redis and in-memory ledgers: which counters a
reservation charges, whether it fits, and what is left afterwards.

Costs are counted in integer nano-dollars, so sums stay exact and the two ledgers (Lua on one
side, Python on the other) agree to the last unit."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from processors.foundation.config import TenantBudget, Window

__all__ = [
    "SETTLE_MARGIN_S",
    "WINDOWS",
    "Breach",
    "Charge",
    "Counter",
    "CounterName",
    "Field",
    "Headroom",
    "LimitName",
    "first_breach",
    "per_request_breach",
    "plan_counters",
    "slot_of",
    "tightest_window",
    "to_nanos",
    "to_usd",
    "window_bounds",
]

Field = Literal["tokens", "cost_nanos", "requests"]
CounterName = Literal["burst", "minute", "day", "month"]
LimitName = Literal["per_request", "burst", "minute", "day", "month"]

WINDOWS: tuple[Window, ...] = ("minute", "day", "month")
SETTLE_MARGIN_S = 300  # a window's counter outlives its end by this, so late settles still land
_BURST_KEEP_S = 2  # a burst counter is read only during its own second
_NANOS_PER_USD = 1_000_000_000


def to_nanos(usd: float) -> int:
    return round(usd * _NANOS_PER_USD)


def to_usd(nanos: int) -> float:
    return nanos / _NANOS_PER_USD


def window_bounds(window: Window, now: float) -> tuple[int, int]:
    """Start and end (epoch seconds) of the fixed UTC calendar window that holds ``now``."""
    if window == "minute":
        start = math.floor(now / 60) * 60
        return start, start + 60
    if window == "day":
        start = math.floor(now / 86_400) * 86_400
        return start, start + 86_400
    moment = datetime.fromtimestamp(now, UTC)
    first = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    following = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)
    return int(first.timestamp()), int(following.timestamp())


def slot_of(limit: CounterName, start: int) -> str:
    """A counter's name within its tenant, e.g. ``minute:1700000040``."""
    return f"{limit}:{start}"


@dataclass(frozen=True)
class Charge:
    """An amount added to one field of a counter; refused if the field would pass ``cap``."""

    field: Field
    amount: int
    cap: int | None


@dataclass(frozen=True)
class Counter:
    """A tenant's usage in one period: a calendar window, or one second for the burst limit."""

    limit: CounterName
    start: int
    expires_at: int
    charges: tuple[Charge, ...]

    @property
    def slot(self) -> str:
        return slot_of(self.limit, self.start)


def plan_counters(
    budget: TenantBudget, tokens: int, cost_nanos: int, now: float, margin_s: int
) -> list[Counter]:
    """The counters a reservation charges, in the order limits are reported: burst, then every
    window. Unlimited windows are counted too, so spend reports are complete and a limit added
    by a config reload sees the period's real spend."""
    counters = []
    rps = budget.burst.requests_per_second
    if rps is not None:
        second = math.floor(now)
        counters.append(
            Counter("burst", second, second + _BURST_KEEP_S, (Charge("requests", 1, rps),))
        )
    for window in WINDOWS:
        start, end = window_bounds(window, now)
        limit = budget.windows.get(window)
        token_cap = limit.tokens if limit is not None else None
        cost_cap = limit.cost_usd if limit is not None else None
        charges = (
            Charge("tokens", tokens, token_cap),
            Charge("cost_nanos", cost_nanos, to_nanos(cost_cap) if cost_cap is not None else None),
        )
        counters.append(Counter(window, start, end + margin_s, charges))
    return counters


@dataclass(frozen=True)
class Breach:
    """The limit a reservation would break, with the field's value before it."""

    limit: LimitName
    field: Field
    cap: int
    spent: int
    requested: int


def per_request_breach(budget: TenantBudget, tokens: int, cost_nanos: int) -> Breach | None:
    caps = budget.per_request
    if caps.max_tokens is not None and tokens > caps.max_tokens:
        return Breach("per_request", "tokens", caps.max_tokens, 0, tokens)
    if caps.max_cost_usd is not None and cost_nanos > to_nanos(caps.max_cost_usd):
        return Breach("per_request", "cost_nanos", to_nanos(caps.max_cost_usd), 0, cost_nanos)
    return None


def first_breach(counters: Sequence[Counter], spent: Sequence[int]) -> Breach | None:
    """The first capped charge that would pass its cap; ``spent`` holds every charge's current
    value in plan order (as the Lua script returns them). The reserve script applies the same
    rule, ``spent + amount > cap``, to decide whether to add anything."""
    for counter, charge, value in _with_values(counters, spent):
        if charge.cap is not None and value + charge.amount > charge.cap:
            return Breach(counter.limit, charge.field, charge.cap, value, charge.amount)
    return None


@dataclass(frozen=True)
class Headroom:
    """What is left after an admitted reservation in the window that will refuse first."""

    window: Window | None
    tokens: int | None
    cost_nanos: int | None


def tightest_window(counters: Sequence[Counter], spent: Sequence[int]) -> Headroom:
    """The window with the smallest share of its cap left after the charge (None if no window is
    limited), and what it has left of each capped measure."""
    left: dict[Window, dict[Field, int]] = {}
    shares: dict[Window, float] = {}
    for counter, charge, value in _with_values(counters, spent):
        if counter.limit == "burst" or charge.cap is None:
            continue
        remaining = charge.cap - value - charge.amount
        share = remaining / charge.cap if charge.cap else 0.0
        left.setdefault(counter.limit, {})[charge.field] = remaining
        shares[counter.limit] = min(shares.get(counter.limit, math.inf), share)
    if not shares:
        return Headroom(None, None, None)
    window = min(shares, key=lambda w: shares[w])
    return Headroom(window, left[window].get("tokens"), left[window].get("cost_nanos"))


def _with_values(
    counters: Sequence[Counter], spent: Sequence[int]
) -> Iterator[tuple[Counter, Charge, int]]:
    pairs = [(counter, charge) for counter in counters for charge in counter.charges]
    for (counter, charge), value in zip(pairs, spent, strict=True):
        yield counter, charge, value
