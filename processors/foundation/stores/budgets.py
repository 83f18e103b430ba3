"""The budget ledger: a call reserves its estimate against every window of its tenant before it
runs and settles its actual usage afterwards, so concurrent replicas can never overspend a
window by more than the estimates' error."""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from redis.asyncio import Redis

from processors.foundation.config import TenantBudget, Window
from processors.foundation.stores._redis import DEFAULT_NAMESPACE, ttl_ms
from processors.foundation.stores._windows import (
    SETTLE_MARGIN_S,
    Breach,
    Counter,
    Field,
    LimitName,
    first_breach,
    per_request_breach,
    plan_counters,
    slot_of,
    tightest_window,
    to_nanos,
    to_usd,
    window_bounds,
)
from streams.redis_state import reaching

__all__ = [
    "BudgetLedger",
    "BudgetRejection",
    "MemoryBudgetLedger",
    "RedisBudgetLedger",
    "Reservation",
]

Metric = Literal["tokens", "cost_usd", "requests"]
_UNCAPPED = TenantBudget()  # every window counted, none capped


@dataclass(frozen=True)
class Reservation:
    """An admitted estimate, charged to the counters named in ``windows`` (e.g.
    ``minute:1700000040``); settling goes to those same counters even after the clock has
    moved on to new windows."""

    tenant: str
    tokens: int
    cost_usd: float
    windows: tuple[str, ...]
    window: Window | None  # the window closest to its cap: the one that will refuse first
    remaining_tokens: int | None
    remaining_cost_usd: float | None


@dataclass(frozen=True)
class BudgetRejection:
    """The first limit the estimate would break, checked in the order per_request, burst,
    minute, day, month; amounts are in ``metric`` units, ``spent`` is before this request."""

    limit: LimitName
    metric: Metric
    cap: float
    spent: float
    requested: float

    @property
    def remaining(self) -> float:
        return max(self.cap - self.spent, 0)


class BudgetLedger(Protocol):
    async def reserve(
        self,
        tenant: str,
        estimate_tokens: int,
        estimate_cost_usd: float,
        budget: TenantBudget,
        now: float,
    ) -> Reservation | BudgetRejection:
        """Add the estimate to every window and the burst counter, or to none if any limit
        would be passed."""
        ...

    async def settle(
        self, reservation: Reservation, actual_tokens: int, actual_cost_usd: float
    ) -> None:
        """Replace the reserved estimate with the actual usage; call once per reservation."""
        ...

    async def release(self, reservation: Reservation) -> None:
        """Give the estimate back: the call never happened. Burst requests stay counted."""
        ...

    async def charge(self, tenant: str, tokens: int, cost_usd: float, now: float) -> None:
        """Count usage admitted without a reservation (a degraded route): it was spent, so it
        is recorded whatever the caps say."""
        ...

    async def spend(self, tenant: str, window: Window, now: float) -> tuple[int, float]:
        """Tokens and USD counted in the window holding ``now``."""
        ...


class _Ledger(ABC):
    """The ledger's rules, written once; a backend supplies the three storage primitives."""

    def __init__(self, settle_margin_s: int) -> None:
        self._settle_margin_s = settle_margin_s

    async def reserve(
        self,
        tenant: str,
        estimate_tokens: int,
        estimate_cost_usd: float,
        budget: TenantBudget,
        now: float,
    ) -> Reservation | BudgetRejection:
        _check_amounts(estimate_tokens, estimate_cost_usd)
        cost_nanos = to_nanos(estimate_cost_usd)
        breach = per_request_breach(budget, estimate_tokens, cost_nanos)
        if breach is not None:
            return _rejection(breach)
        counters = plan_counters(budget, estimate_tokens, cost_nanos, now, self._settle_margin_s)
        spent = await self._charge(tenant, counters, now)
        breach = first_breach(counters, spent)
        if breach is not None:
            return _rejection(breach)
        headroom = tightest_window(counters, spent)
        return Reservation(
            tenant=tenant,
            tokens=estimate_tokens,
            cost_usd=estimate_cost_usd,
            windows=tuple(c.slot for c in counters if c.limit != "burst"),
            window=headroom.window,
            remaining_tokens=headroom.tokens,
            remaining_cost_usd=to_usd(headroom.cost_nanos)
            if headroom.cost_nanos is not None
            else None,
        )

    async def settle(
        self, reservation: Reservation, actual_tokens: int, actual_cost_usd: float
    ) -> None:
        _check_amounts(actual_tokens, actual_cost_usd)
        deltas: tuple[tuple[Field, int], ...] = (
            ("tokens", actual_tokens - reservation.tokens),
            ("cost_nanos", to_nanos(actual_cost_usd) - to_nanos(reservation.cost_usd)),
        )
        await self._adjust(reservation.tenant, reservation.windows, deltas)

    async def release(self, reservation: Reservation) -> None:
        await self.settle(reservation, 0, 0.0)

    async def charge(self, tenant: str, tokens: int, cost_usd: float, now: float) -> None:
        _check_amounts(tokens, cost_usd)
        counters = plan_counters(_UNCAPPED, tokens, to_nanos(cost_usd), now, self._settle_margin_s)
        await self._charge(tenant, counters, now)

    async def spend(self, tenant: str, window: Window, now: float) -> tuple[int, float]:
        tokens, cost_nanos = await self._read(
            tenant, slot_of(window, window_bounds(window, now)[0])
        )
        return tokens, to_usd(cost_nanos)

    @abstractmethod
    async def _charge(self, tenant: str, counters: Sequence[Counter], now: float) -> list[int]:
        """Atomically read every charged field and, only if ``first_breach`` finds none, add all
        the amounts (keeping each counter until its ``expires_at``); return the values read."""

    @abstractmethod
    async def _adjust(
        self, tenant: str, slots: Sequence[str], deltas: Sequence[tuple[Field, int]]
    ) -> None:
        """Add the deltas to the counters that still exist; expired ones stay gone."""

    @abstractmethod
    async def _read(self, tenant: str, slot: str) -> tuple[int, int]:
        """Tokens and cost (nano-USD) of one counter."""


class MemoryBudgetLedger(_Ledger):
    """One process's ledger; atomic because no step awaits between reading and writing."""

    def __init__(self, settle_margin_s: int = SETTLE_MARGIN_S) -> None:
        super().__init__(settle_margin_s)
        self._counters: dict[tuple[str, str], dict[Field, int]] = {}
        self._expiry: list[tuple[int, str, str]] = []  # heap of (expires_at, tenant, slot)

    async def _charge(self, tenant: str, counters: Sequence[Counter], now: float) -> list[int]:
        self._forget_expired(now)
        spent = [
            self._counters.get((tenant, counter.slot), {}).get(charge.field, 0)
            for counter in counters
            for charge in counter.charges
        ]
        if first_breach(counters, spent) is None:
            for counter in counters:
                values = self._counters.get((tenant, counter.slot))
                if values is None:
                    values = self._counters[tenant, counter.slot] = {}
                    heapq.heappush(self._expiry, (counter.expires_at, tenant, counter.slot))
                for charge in counter.charges:
                    values[charge.field] = values.get(charge.field, 0) + charge.amount
        return spent

    async def _adjust(
        self, tenant: str, slots: Sequence[str], deltas: Sequence[tuple[Field, int]]
    ) -> None:
        for slot in slots:
            values = self._counters.get((tenant, slot))
            if values is None:
                continue
            for field, delta in deltas:
                values[field] = values.get(field, 0) + delta

    async def _read(self, tenant: str, slot: str) -> tuple[int, int]:
        values = self._counters.get((tenant, slot), {})
        return values.get("tokens", 0), values.get("cost_nanos", 0)

    def _forget_expired(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, tenant, slot = heapq.heappop(self._expiry)
            del self._counters[tenant, slot]


# KEYS: one counter hash per period. ARGV, per key: its TTL (ms), the number of charges n, then
# n triples (field, amount, cap), cap '' meaning unlimited. All or nothing: the amounts are added
# (and TTLs refreshed) only if every capped field stays within its cap. Returns every field's
# value before the charge, in order, so the caller can name the refusing limit and what is left.
_RESERVE_LUA = """
local spent, fits, pos = {}, true, 1
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[pos + 1])
  for at = pos + 2, pos + 1 + 3 * n, 3 do
    local value = redis.call('HGET', key, ARGV[at]) or '0'
    spent[#spent + 1] = value
    local cap = ARGV[at + 2]
    if cap ~= '' and tonumber(value) + tonumber(ARGV[at + 1]) > tonumber(cap) then
      fits = false
    end
  end
  pos = pos + 2 + 3 * n
end
if fits then
  pos = 1
  for _, key in ipairs(KEYS) do
    local n = tonumber(ARGV[pos + 1])
    for at = pos + 2, pos + 1 + 3 * n, 3 do
      redis.call('HINCRBY', key, ARGV[at], ARGV[at + 1])
    end
    redis.call('PEXPIRE', key, ARGV[pos])
    pos = pos + 2 + 3 * n
  end
end
return spent
"""

# KEYS: a reservation's counters; ARGV: (field, delta) pairs. Counters that expired meanwhile
# are left alone, so a late settle never recreates a key without a TTL.
_SETTLE_LUA = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    for at = 1, #ARGV, 2 do
      redis.call('HINCRBY', key, ARGV[at], ARGV[at + 1])
    end
  end
end
return 0
"""


class RedisBudgetLedger(_Ledger):
    """The ledger shared by all replicas: one hash per tenant and period, changed only by Lua
    scripts, so a reservation's check and charge across all windows is one atomic step."""

    def __init__(
        self,
        client: Redis,
        namespace: str = DEFAULT_NAMESPACE,
        settle_margin_s: int = SETTLE_MARGIN_S,
    ) -> None:
        super().__init__(settle_margin_s)
        self._client = client
        self._namespace = namespace
        self._reserve_script = client.register_script(_RESERVE_LUA)
        self._settle_script = client.register_script(_SETTLE_LUA)

    async def _charge(self, tenant: str, counters: Sequence[Counter], now: float) -> list[int]:
        args: list[str | int] = []
        for counter in counters:
            args += [ttl_ms(counter.expires_at - now), len(counter.charges)]
            for charge in counter.charges:
                args += [charge.field, charge.amount, "" if charge.cap is None else charge.cap]
        keys = [self._key(tenant, counter.slot) for counter in counters]
        with reaching("budgets"):
            spent = await self._reserve_script(keys=keys, args=args)
        return [int(value) for value in spent]

    async def _adjust(
        self, tenant: str, slots: Sequence[str], deltas: Sequence[tuple[Field, int]]
    ) -> None:
        keys = [self._key(tenant, slot) for slot in slots]
        args = [item for pair in deltas for item in pair]
        with reaching("budgets"):
            await self._settle_script(keys=keys, args=args)

    async def _read(self, tenant: str, slot: str) -> tuple[int, int]:
        with reaching("budgets"):
            tokens, cost_nanos = await self._client.hmget(
                self._key(tenant, slot), ["tokens", "cost_nanos"]
            )
        return int(tokens or 0), int(cost_nanos or 0)

    def _key(self, tenant: str, slot: str) -> str:
        # the {tenant} hash tag keeps a tenant's counters in one cluster slot, as Lua requires
        return f"{self._namespace}:budget:{{{tenant}}}:{slot}"


def _check_amounts(tokens: int, cost_usd: float) -> None:
    if tokens < 0 or cost_usd < 0:
        raise ValueError(f"usage cannot be negative: {tokens} tokens, ${cost_usd}")


def _rejection(breach: Breach) -> BudgetRejection:
    if breach.field == "cost_nanos":
        return BudgetRejection(
            breach.limit,
            "cost_usd",
            to_usd(breach.cap),
            to_usd(breach.spent),
            to_usd(breach.requested),
        )
    return BudgetRejection(breach.limit, breach.field, breach.cap, breach.spent, breach.requested)
