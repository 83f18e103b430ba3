"""Shared state of layer 1 (budgets, response caches, circuit breakers, recorded results):
in Redis when a URL is configured, so every replica sees the same state, otherwise in this
process. Each store is a small protocol with one implementation per backend, and every Redis
failure surfaces as ``StoreUnavailable`` within about one timeout."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from processors.foundation.stores._redis import DEFAULT_NAMESPACE
from processors.foundation.stores.breaker import (
    BreakerPermit,
    BreakerState,
    CircuitBreakerStore,
    MemoryCircuitBreakerStore,
    RedisCircuitBreakerStore,
    Transition,
)
from processors.foundation.stores.budgets import (
    BudgetLedger,
    BudgetRejection,
    MemoryBudgetLedger,
    RedisBudgetLedger,
    Reservation,
)
from processors.foundation.stores.cache import (
    MemoryResponseCache,
    RedisResponseCache,
    ResponseCache,
)
from processors.foundation.stores.idempotency import (
    MemoryResultStore,
    RedisResultStore,
    ResultStore,
)
from processors.foundation.stores.semantic import (
    MemorySemanticCacheStore,
    RedisSemanticCacheStore,
    SemanticCacheStore,
    SemanticHit,
)
from streams.redis_state import DEFAULT_TIMEOUT_S, StoreUnavailable, redis_client

__all__ = [
    "BreakerPermit",
    "BreakerState",
    "BudgetLedger",
    "BudgetRejection",
    "CircuitBreakerStore",
    "MemoryBudgetLedger",
    "MemoryCircuitBreakerStore",
    "MemoryResponseCache",
    "MemoryResultStore",
    "MemorySemanticCacheStore",
    "RedisBudgetLedger",
    "RedisCircuitBreakerStore",
    "RedisResponseCache",
    "RedisResultStore",
    "RedisSemanticCacheStore",
    "Reservation",
    "ResponseCache",
    "ResultStore",
    "SemanticCacheStore",
    "SemanticHit",
    "StoreUnavailable",
    "Stores",
    "Transition",
    "connect",
]


@dataclass(frozen=True)
class Stores:
    """The five stores one pipeline uses; ``redis`` is their shared client (None in memory)."""

    budgets: BudgetLedger
    cache: ResponseCache
    breakers: CircuitBreakerStore
    results: ResultStore
    semantic: SemanticCacheStore
    redis: Redis | None = None

    async def aclose(self) -> None:
        """Close the Redis connection pool, if any."""
        if self.redis is not None:
            await self.redis.aclose()


def connect(
    url: str | None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Stores:
    """Redis-backed stores when ``url`` is given (required with more than one replica), else
    in-process ones. Connecting is lazy: an unreachable Redis shows up on first use."""
    if url is None:
        return Stores(
            MemoryBudgetLedger(),
            MemoryResponseCache(),
            MemoryCircuitBreakerStore(),
            MemoryResultStore(),
            MemorySemanticCacheStore(),
        )
    client = redis_client(url, timeout_s)
    return Stores(
        RedisBudgetLedger(client, namespace),
        RedisResponseCache(client, namespace),
        RedisCircuitBreakerStore(client, namespace),
        RedisResultStore(client, namespace),
        RedisSemanticCacheStore(client, namespace),
        client,
    )
