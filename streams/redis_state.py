"""How every layer reaches Redis (shared state: budgets, caches, breakers, rate limits): one
client with short timeouts and no retries, so an outage costs a call one timeout, never a
backoff schedule or a hang, and one list of the failures that mean "Redis is not there"."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError

__all__ = ["DEFAULT_MAX_CONNECTIONS", "DEFAULT_TIMEOUT_S", "UNREACHABLE", "redis_client"]

DEFAULT_TIMEOUT_S = 0.5
DEFAULT_MAX_CONNECTIONS = 64
# Refused, timed out, or a read-only replica: transport trouble, not a bug in a script.
UNREACHABLE = (ConnectionError, TimeoutError, ReadOnlyError)


def redis_client(
    url: str, timeout_s: float = DEFAULT_TIMEOUT_S, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> Redis:
    """A client whose every call fails within about ``timeout_s`` when Redis is down or
    stalled. The pool is bounded; a call waits at most ``timeout_s`` for a free connection,
    so a burst of concurrent calls queues briefly instead of opening sockets without limit."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)
