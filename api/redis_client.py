"""The API's Redis state (rate limits, idempotency keys), shared by all replicas through the
one client every layer uses (``streams.redis_state``): an outage costs a request one timeout,
never a hang."""

from __future__ import annotations

from redis.asyncio import Redis

from streams.redis_state import redis_client

__all__ = ["NAMESPACE", "connect_redis"]

NAMESPACE = "llmrp:api"


def connect_redis(url: str) -> Redis:
    return redis_client(url)
