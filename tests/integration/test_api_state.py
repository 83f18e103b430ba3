"""The API's shared state against a real Redis, and the in-process twin held to the same
expectations: rate limits admit exactly their quota under concurrency (two limiters sharing
Redis act as two replicas), and an idempotency key is claimed once per tenant."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from api.config import RateLimits
from api.idempotency import (
    IdempotencyRecord,
    IdempotencyStore,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
)
from api.rate_limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from api.redis_client import connect_redis
from streams.redis_state import StoreUnavailable


@asynccontextmanager
async def backends(
    kind: str, redis_url: str
) -> AsyncIterator[tuple[RateLimiter, RateLimiter, IdempotencyStore]]:
    """Two limiters (two replicas) and a store: in process, or on one Redis."""
    if kind == "memory":
        limiter = MemoryRateLimiter()
        yield limiter, limiter, MemoryIdempotencyStore(60)
        return
    first, second = connect_redis(redis_url), connect_redis(redis_url)
    try:
        yield RedisRateLimiter(first), RedisRateLimiter(second), RedisIdempotencyStore(first, 60)
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_limits_admit_exactly_the_quota_across_replicas(kind: str, redis_url: str) -> None:
    key = f"key-{uuid.uuid4().hex}"
    limits = RateLimits(rpm=10, tpm=1_000)

    async def scenario() -> None:
        async with backends(kind, redis_url) as (one, two, _):
            waits = await asyncio.gather(
                *(limiter.admit(key, limits, 5) for limiter in [one, two] * 25)
            )
            assert sum(wait == 0 for wait in waits) == 10
            assert min(w for w in waits if w > 0) == pytest.approx(6.0, abs=0.5)
            tokens_key = f"tokens-{uuid.uuid4().hex}"
            assert await one.admit(tokens_key, limits, 900) == 0
            await two.correct(tokens_key, limits, 600)  # the run used 600 more: in debt
            assert await one.admit(tokens_key, limits, 1) == pytest.approx(30.06, abs=0.5)

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_an_idempotency_key_is_claimed_once_per_tenant(kind: str, redis_url: str) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    first = IdempotencyRecord("req_1", "cmd-1", "f1")

    async def scenario() -> None:
        async with backends(kind, redis_url) as (_, _, store):
            claims = await asyncio.gather(
                *(
                    store.claim("t", key, first.with_changes(correlation_id=f"req_{i}"))
                    for i in range(20)
                )
            )
            assert sum(found is None for found in claims) == 1
            winner = next(c for c in claims if c is not None)
            assert {c.correlation_id for c in claims if c is not None} == {winner.correlation_id}
            await store.save("t", key, winner.with_changes(published=True, result={"a": 1}))
            again = await store.claim("t", key, first)
            assert again is not None and again.published and again.result == {"a": 1}
            assert await store.claim("other-tenant", key, first) is None

    asyncio.run(scenario())


def test_redis_down_fails_fast_and_limits_fail_open() -> None:
    async def scenario() -> None:
        redis = connect_redis("redis://127.0.0.1:1/0")
        try:
            assert await RedisRateLimiter(redis).admit("k", RateLimits(), 1) == 0
            with pytest.raises(StoreUnavailable):
                await RedisIdempotencyStore(redis, 60).claim(
                    "t", "k", IdempotencyRecord("c", "i", "f")
                )
        finally:
            await redis.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 5))
