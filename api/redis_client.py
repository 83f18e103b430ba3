"""The API's one Redis client (rate limits, idempotency keys), shared by all replicas: short
timeouts and no retries, so an outage costs a request one timeout, never a hang."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError

__all__ = ["NAMESPACE", "StateUnavailable", "connect_redis", "reaching_redis"]

NAMESPACE = "llmrp:api"
_TIMEOUT_S = 0.5
_MAX_CONNECTIONS = 64


class StateUnavailable(RuntimeError):
    """Redis did not answer in time; callers decide whether to fail open or closed."""


def connect_redis(url: str) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=_MAX_CONNECTIONS,
        timeout=_TIMEOUT_S,
        socket_timeout=_TIMEOUT_S,
        socket_connect_timeout=_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)


@contextmanager
def reaching_redis() -> Iterator[None]:
    try:
        yield
    except (ConnectionError, TimeoutError, ReadOnlyError) as error:
        raise StateUnavailable(str(error) or type(error).__name__) from error
