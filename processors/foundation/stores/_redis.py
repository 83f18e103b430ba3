"""How every store talks to Redis: one client with short timeouts and no retries, and one
translation of transport failures into ``StoreUnavailable``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError

from processors.foundation.stores.errors import StoreUnavailable

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TIMEOUT_S",
    "reaching",
    "redis_client",
    "ttl_ms",
]

DEFAULT_NAMESPACE = "llmrp"
DEFAULT_TIMEOUT_S = 0.5
DEFAULT_MAX_CONNECTIONS = 64


def redis_client(
    url: str, timeout_s: float = DEFAULT_TIMEOUT_S, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> Redis:
    """A client whose every call fails within about ``timeout_s`` when Redis is down or stalled:
    no retries, so an outage costs a request one timeout, not a backoff schedule. The pool is
    bounded; a call waits at most ``timeout_s`` for a free connection, so a burst of concurrent
    requests queues briefly instead of opening sockets without limit."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)


@contextmanager
def reaching(store: str) -> Iterator[None]:
    """Turn transport failures (refused, timed out, read-only replica) into ``StoreUnavailable``;
    anything else (a script error) is a bug and propagates as is."""
    try:
        yield
    except (ConnectionError, TimeoutError, ReadOnlyError) as error:
        raise StoreUnavailable(store, str(error) or type(error).__name__) from error


def ttl_ms(seconds: float) -> int:
    """A Redis PX/PEXPIRE argument: whole milliseconds, never below one."""
    return max(1, math.ceil(seconds * 1000))
