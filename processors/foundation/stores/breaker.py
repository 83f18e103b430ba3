"""Circuit breakers per target (``provider/model``), shared by every replica so that one
replica's failures protect the others' traffic too.

closed --(failure_threshold failures within window_s)--> open --(open_for_s later, on the next
acquire)--> half_open, which admits ``half_open_probes`` concurrent probes; the first result
decides: success closes (failures forgotten), failure opens again. A probe that never reports
(its replica crashed) gives its slot back after ``open_for_s``, so no breaker stays wedged.
Any result recorded while half-open counts as a probe's, and results recorded while open or
closed never close a breaker: only a half-open success does."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, Protocol, cast

from redis.asyncio import Redis

from processors.foundation.config import BreakerSettings
from processors.foundation.stores._redis import DEFAULT_NAMESPACE
from streams.redis_state import reaching

__all__ = [
    "BreakerPermit",
    "BreakerState",
    "CircuitBreakerStore",
    "MemoryCircuitBreakerStore",
    "RedisCircuitBreakerStore",
    "Transition",
]

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class Transition:
    """A state change, worth a ``breaker.state.changed`` event; ``failures`` were counted within
    ``window_s`` when it happened."""

    from_state: BreakerState
    to_state: BreakerState
    failures: int


@dataclass(frozen=True)
class BreakerPermit:
    """Whether a call may go ahead; ``transition`` reports open -> half_open, which happens
    when the first acquire after ``open_for_s`` arrives."""

    allowed: bool
    state: BreakerState
    is_probe: bool = False
    transition: Transition | None = None


class CircuitBreakerStore(Protocol):
    async def acquire(self, key: str, settings: BreakerSettings, now: float) -> BreakerPermit:
        """Ask to call the target; a half-open breaker hands out at most its probe slots."""
        ...

    async def record(
        self, key: str, success: bool, settings: BreakerSettings, now: float
    ) -> Transition | None:
        """Report a call's result; returns the state change it caused, if any."""
        ...


@dataclass
class _Breaker:
    state: BreakerState = "closed"
    opened_at: float = 0.0
    probes: int = 0  # probe slots handed out in the current round
    round_at: float = 0.0  # when the current probe round began
    failures: deque[float] = field(default_factory=deque)  # the latest, at most threshold


class MemoryCircuitBreakerStore:
    """One process's breakers, mirroring the Redis script rule for rule (the shared tests run
    against both); atomic because no step awaits."""

    def __init__(self) -> None:
        self._breakers: dict[str, _Breaker] = {}

    async def acquire(self, key: str, settings: BreakerSettings, now: float) -> BreakerPermit:
        breaker = self._breakers.setdefault(key, _Breaker())
        transition = None
        if breaker.state == "open":
            if now - breaker.opened_at < settings.open_for_s:
                return BreakerPermit(False, "open")
            breaker.state, breaker.probes, breaker.round_at = "half_open", 0, now
            transition = Transition("open", "half_open", _recent(breaker, settings, now))
        if breaker.state == "closed":
            return BreakerPermit(True, "closed")
        if now - breaker.round_at >= settings.open_for_s:
            breaker.probes, breaker.round_at = 0, now
        if breaker.probes >= settings.half_open_probes:
            return BreakerPermit(False, "half_open", transition=transition)
        breaker.probes += 1
        return BreakerPermit(True, "half_open", is_probe=True, transition=transition)

    async def record(
        self, key: str, success: bool, settings: BreakerSettings, now: float
    ) -> Transition | None:
        breaker = self._breakers.setdefault(key, _Breaker())
        if success:
            if breaker.state != "half_open":
                return None
            failures = _recent(breaker, settings, now)
            self._breakers[key] = _Breaker()
            return Transition("half_open", "closed", failures)
        if breaker.failures.maxlen != settings.failure_threshold:
            breaker.failures = deque(breaker.failures, maxlen=settings.failure_threshold)
        breaker.failures.append(now)
        failures = _recent(breaker, settings, now)
        before = breaker.state
        if (before == "closed" and failures >= settings.failure_threshold) or (
            before == "half_open"
        ):
            breaker.state, breaker.opened_at, breaker.probes = "open", now, 0
            return Transition(before, "open", failures)
        return None


def _recent(breaker: _Breaker, settings: BreakerSettings, now: float) -> int:
    return sum(1 for at in breaker.failures if now - at < settings.window_s)


# KEYS[1]: the breaker's hash (state, opened_at, probes, round_at); KEYS[2]: the list of its
# latest failure times (at most failure_threshold). ARGV: op ('acquire' | 'record'), now,
# failure_threshold, window_s, open_for_s, half_open_probes, idle TTL (ms), success ('1'/'0').
# The whole decision runs inside Redis, so concurrent replicas see one sequence of states and
# a half-open breaker never hands out more than half_open_probes slots per round.
# acquire returns {allowed, state, is_probe, from_state or '', failures};
# record returns {} or {from_state, to_state, failures}.
_BREAKER_LUA = """
local hash, failures_key = KEYS[1], KEYS[2]
local op, now = ARGV[1], tonumber(ARGV[2])
local threshold, window, open_for = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local probes_max, idle_ms = tonumber(ARGV[6]), ARGV[7]
local saved = redis.call('HMGET', hash, 'state', 'opened_at', 'probes', 'round_at')
local state = saved[1] or 'closed'
local opened_at, probes = tonumber(saved[2] or '0'), tonumber(saved[3] or '0')
local round_at = tonumber(saved[4] or '0')

local function recent()
  local n = 0
  for _, at in ipairs(redis.call('LRANGE', failures_key, 0, -1)) do
    if now - tonumber(at) < window then n = n + 1 end
  end
  return n
end

local function keep()
  redis.call('PEXPIRE', hash, idle_ms)
  redis.call('PEXPIRE', failures_key, idle_ms)
end

if op == 'acquire' then
  local from = ''
  if state == 'open' then
    if now - opened_at < open_for then return {0, 'open', 0, '', 0} end
    state, probes, from = 'half_open', 0, 'open'
    redis.call('HSET', hash, 'state', state, 'probes', 0, 'round_at', ARGV[2])
    round_at = now
  end
  if state == 'closed' then return {1, 'closed', 0, '', 0} end
  local n = 0
  if from ~= '' then n = recent() end
  if now - round_at >= open_for then
    probes = 0
    redis.call('HSET', hash, 'probes', 0, 'round_at', ARGV[2])
  end
  if probes >= probes_max then
    keep()
    return {0, 'half_open', 0, from, n}
  end
  redis.call('HINCRBY', hash, 'probes', 1)
  keep()
  return {1, 'half_open', 1, from, n}
end

if ARGV[8] == '1' then
  if state ~= 'half_open' then return {} end
  local n = recent()
  redis.call('DEL', hash, failures_key)
  return {'half_open', 'closed', n}
end
redis.call('RPUSH', failures_key, ARGV[2])
redis.call('LTRIM', failures_key, -threshold, -1)
local n = recent()
local transition = {}
if (state == 'closed' and n >= threshold) or state == 'half_open' then
  redis.call('HSET', hash, 'state', 'open', 'opened_at', ARGV[2], 'probes', 0)
  transition = {state, 'open', n}
end
keep()
return transition
"""


class RedisCircuitBreakerStore:
    """Breakers shared by all replicas; every decision is one Lua call. Idle breakers expire
    once nothing about them can still matter."""

    def __init__(self, client: Redis, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._namespace = namespace
        self._script = client.register_script(_BREAKER_LUA)

    async def acquire(self, key: str, settings: BreakerSettings, now: float) -> BreakerPermit:
        allowed, state, is_probe, from_state, failures = await self._run(
            "acquire", key, settings, now, success=False
        )
        transition = (
            Transition(_state(from_state), _state(state), int(failures)) if from_state else None
        )
        return BreakerPermit(bool(allowed), _state(state), bool(is_probe), transition)

    async def record(
        self, key: str, success: bool, settings: BreakerSettings, now: float
    ) -> Transition | None:
        reply = await self._run("record", key, settings, now, success=success)
        if not reply:
            return None
        from_state, to_state, failures = reply
        return Transition(_state(from_state), _state(to_state), int(failures))

    async def _run(
        self, op: str, key: str, settings: BreakerSettings, now: float, *, success: bool
    ) -> list[int | bytes]:
        # the {key} hash tag keeps a breaker's two keys in one cluster slot, as Lua requires
        base = f"{self._namespace}:breaker:{{{key}}}"
        args: list[str | int | float] = [
            op,
            now,
            settings.failure_threshold,
            settings.window_s,
            settings.open_for_s,
            settings.half_open_probes,
            _idle_ttl_ms(settings),
            int(success),
        ]
        with reaching("breakers"):
            reply = await self._script(keys=[base, f"{base}:failures"], args=args)
        return cast(list[int | bytes], reply)


def _idle_ttl_ms(settings: BreakerSettings) -> int:
    """Longer than any failure can still count or any open/half-open phase can last."""
    return math.ceil((settings.window_s + 2 * settings.open_for_s) * 1000) + 60_000


def _state(raw: int | bytes) -> BreakerState:
    return cast(BreakerState, raw.decode() if isinstance(raw, bytes) else str(raw))
