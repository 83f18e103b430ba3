"""Per-key rate limits: two token buckets per key, requests and tokens, each refilled at its
per-minute limit and holding at most one minute's worth (so a burst of a full minute's quota
is allowed, then the steady rate). Tokens are charged at admission as an estimate and
corrected with the run's real usage when it ends; the correction may leave the token bucket
in debt, which delays the key's next requests instead of refusing the finished one.

In Redis (one Lua script, atomic, on Redis's clock) when ``REDIS_URL`` is set, so every
replica enforces the same limit; in this process otherwise."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from api.config import RateLimits
from api.redis_client import NAMESPACE
from streams.redis_state import StoreUnavailable, reaching

__all__ = [
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "estimate_tokens",
    "retry_after_header",
]

log = logging.getLogger("api")
_CHARS_PER_TOKEN = 4  # a cheap, tokenizer-free estimate; real usage corrects it


def estimate_tokens(messages: Sequence[Any], max_tokens: int | None, limits: RateLimits) -> int:
    """Prompt characters / 4 plus the completion bound the client asked for (if any), at most
    a minute's quota (a larger request waits for a full bucket instead of forever)."""
    prompt = len(json.dumps(messages, default=str)) // _CHARS_PER_TOKEN
    return min(limits.tpm, max(1, prompt + (max_tokens or 0)))


class RateLimiter(Protocol):
    async def admit(self, key_id: str, limits: RateLimits, tokens: int) -> float:
        """0 when admitted (one request and ``tokens`` taken), else seconds to wait."""
        ...

    async def correct(self, key_id: str, limits: RateLimits, tokens: int) -> None:
        """Charge ``tokens`` more (negative: refund) once the real usage is known."""
        ...


@dataclass
class _Buckets:
    requests: float
    tokens: float
    at: float


def _refill(level: float, per_minute: int, elapsed_s: float) -> float:
    return min(float(per_minute), level + elapsed_s * per_minute / 60.0)


class MemoryRateLimiter:
    """One process's buckets; ``clock`` is monotonic seconds (a test may move it)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Buckets] = {}

    def _current(self, key_id: str, limits: RateLimits) -> _Buckets:
        now = self._clock()
        found = self._buckets.get(key_id)
        if found is None:
            found = _Buckets(float(limits.rpm), float(limits.tpm), now)
        elapsed = max(0.0, now - found.at)
        current = _Buckets(
            _refill(found.requests, limits.rpm, elapsed),
            _refill(found.tokens, limits.tpm, elapsed),
            now,
        )
        self._buckets[key_id] = current
        return current

    async def admit(self, key_id: str, limits: RateLimits, tokens: int) -> float:
        buckets = self._current(key_id, limits)
        wait = max(
            (1.0 - buckets.requests) * 60.0 / limits.rpm,
            (tokens - buckets.tokens) * 60.0 / limits.tpm,
            0.0,
        )
        if wait > 0:
            return wait
        buckets.requests -= 1.0
        buckets.tokens -= tokens
        return 0.0

    async def correct(self, key_id: str, limits: RateLimits, tokens: int) -> None:
        buckets = self._current(key_id, limits)
        buckets.tokens = min(float(limits.tpm), buckets.tokens - tokens)


# KEYS[1]: the key's hash. ARGV: rpm, tpm, tokens, mode ("admit" | "correct").
# Same arithmetic as MemoryRateLimiter; time is Redis's, so replicas share one clock.
_SCRIPT = """
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'r', 'k', 'at')
local r, k, at = tonumber(state[1]) or rpm, tonumber(state[2]) or tpm, tonumber(state[3]) or now
local elapsed = math.max(0, now - at)
r = math.min(rpm, r + elapsed * rpm / 60)
k = math.min(tpm, k + elapsed * tpm / 60)
local wait = 0
if ARGV[4] == 'admit' then
  wait = math.max((1 - r) * 60 / rpm, (tokens - k) * 60 / tpm, 0)
  if wait == 0 then
    r = r - 1
    k = k - tokens
  end
else
  k = math.min(tpm, k - tokens)
end
redis.call('HSET', KEYS[1], 'r', tostring(r), 'k', tostring(k), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return tostring(wait)
"""


class RedisRateLimiter:
    """Shared by every replica. Redis unreachable: the request is admitted (and logged), since
    a limiter outage should not become an API outage; budgets still bound the spend."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_SCRIPT)

    async def _run(self, key_id: str, limits: RateLimits, tokens: int, mode: str) -> float:
        try:
            with reaching("rate limits"):
                wait = await self._script(
                    keys=[f"{NAMESPACE}:rate:{key_id}"],
                    args=[limits.rpm, limits.tpm, tokens, mode],
                )
        except StoreUnavailable as error:
            log.warning("rate limiter unavailable, admitting: %s", error)
            return 0.0
        return float(wait)

    async def admit(self, key_id: str, limits: RateLimits, tokens: int) -> float:
        return await self._run(key_id, limits, tokens, "admit")

    async def correct(self, key_id: str, limits: RateLimits, tokens: int) -> None:
        await self._run(key_id, limits, tokens, "correct")


def retry_after_header(wait_s: float) -> str:
    """Whole seconds, rounded up: a client that waits that long is admitted."""
    return str(max(1, math.ceil(wait_s)))
