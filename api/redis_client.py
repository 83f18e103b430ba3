"""The API's Redis state (rate limits, idempotency keys), shared by all replicas through the
one client every layer uses (``streams.redis_state``): an outage costs a request one timeout,
never a hang."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis

from streams.redis_state import UNREACHABLE, redis_client

__all__ = ["NAMESPACE", "StateUnavailable", "connect_redis", "reaching_redis"]

NAMESPACE = "llmrp:api"


class StateUnavailable(RuntimeError):
    """Redis did not answer in time; callers decide whether to fail open or closed."""


def connect_redis(url: str) -> Redis:
    return redis_client(url)


@contextmanager
def reaching_redis() -> Iterator[None]:
    try:
        yield
    except UNREACHABLE as error:
        raise StateUnavailable(str(error) or type(error).__name__) from error
