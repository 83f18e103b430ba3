"""How every layer reaches Redis (shared state: budgets, caches, breakers, rate limits): one
client with short timeouts and no retries, so an outage costs a call one timeout, never a
backoff schedule or a hang, and one list of the failures that mean "Redis is not there"."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT_S",
    "StoreUnavailable",
    "reaching",
    "redis_client",
]

DEFAULT_TIMEOUT_S = 0.5
DEFAULT_MAX_CONNECTIONS = 64
# Refused, timed out, or a read-only replica: transport trouble, not a bug in a script.
_UNREACHABLE = (ConnectionError, TimeoutError, ReadOnlyError)
_NO_FREE_CONNECTION = "No connection available"  # the bounded pool's wait timed out


class StoreUnavailable(Exception):
    """A store in Redis could not be reached or did not answer within its timeout, so each
    caller decides once whether the outage fails open (caches, breakers, rate limits) or
    closed (budgets, idempotency keys). ``transient``: it timed out or had no free connection
    (often our own loop's lag under load, so trying again may well work) rather than refusing
    the connection (down)."""

    def __init__(self, store: str, detail: str, *, transient: bool = False) -> None:
        super().__init__(f"{store} store unavailable: {detail}")
        self.store = store
        self.transient = transient


@contextmanager
def reaching(store: str) -> Iterator[None]:
    """Turn transport failures (refused, timed out, read-only replica) into ``StoreUnavailable``;
    anything else (a script error) is a bug and propagates as is."""
    try:
        yield
    except _UNREACHABLE as error:
        detail = str(error) or type(error).__name__
        transient = isinstance(error, TimeoutError) or _NO_FREE_CONNECTION in detail
        raise StoreUnavailable(store, detail, transient=transient) from error


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
