"""``Idempotency-Key``: per tenant, the first request with a key claims it for its run; a retry
with the same key (and the same body) gets that run's result instead of starting another.

The record holds the run's ids, a fingerprint of the request (the same key with another body
is a client bug: 409), whether the broker acknowledged the command, and the terminal event once
a replica has answered with it. Redis when ``REDIS_URL`` is set (every replica sees the claim),
this process otherwise."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from redis.asyncio import Redis

from api.redis_client import NAMESPACE
from streams.redis_state import reaching

__all__ = [
    "IdempotencyRecord",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "RedisIdempotencyStore",
    "fingerprint",
]


def fingerprint(route: str, body: Any) -> str:
    return hashlib.sha256(json.dumps([route, body], sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class IdempotencyRecord:
    """``published``: the broker acknowledged the command; while False a retry re-sends the
    same command (same id, which the foundation layer deduplicates), so nothing is paid twice."""

    correlation_id: str
    command_id: str
    fingerprint: str
    published: bool = False
    result: dict[str, Any] | None = None  # the terminal event, as JSON

    def with_changes(self, **changes: Any) -> IdempotencyRecord:
        return replace(self, **changes)


class IdempotencyStore(Protocol):
    async def claim(
        self, tenant: str, key: str, record: IdempotencyRecord
    ) -> IdempotencyRecord | None:
        """Store ``record`` unless the key is taken; return the existing record if it is."""
        ...

    async def save(self, tenant: str, key: str, record: IdempotencyRecord) -> None: ...


def _key(tenant: str, key: str) -> str:
    return f"{NAMESPACE}:idem:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"


class MemoryIdempotencyStore:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._records: dict[str, tuple[float, IdempotencyRecord]] = {}

    async def claim(
        self, tenant: str, key: str, record: IdempotencyRecord
    ) -> IdempotencyRecord | None:
        now = self._clock()
        self._records = {k: v for k, v in self._records.items() if v[0] > now}
        found = self._records.get(_key(tenant, key))
        if found is not None:
            return found[1]
        self._records[_key(tenant, key)] = (now + self._ttl_s, record)
        return None

    async def save(self, tenant: str, key: str, record: IdempotencyRecord) -> None:
        expires = self._records.get(_key(tenant, key), (self._clock() + self._ttl_s, record))[0]
        self._records[_key(tenant, key)] = (expires, record)


_CLAIM = """
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""


class RedisIdempotencyStore:
    """Raises ``StoreUnavailable`` when Redis does not answer: a key that cannot be checked
    cannot be honoured, so the request fails (503) rather than risk paying twice."""

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._claim = redis.register_script(_CLAIM)

    async def claim(
        self, tenant: str, key: str, record: IdempotencyRecord
    ) -> IdempotencyRecord | None:
        with reaching("idempotency"):
            found = await self._claim(keys=[_key(tenant, key)], args=[_dump(record), self._ttl_s])
        return _load(found) if found else None

    async def save(self, tenant: str, key: str, record: IdempotencyRecord) -> None:
        with reaching("idempotency"):
            await self._redis.set(_key(tenant, key), _dump(record), keepttl=True)


def _dump(record: IdempotencyRecord) -> str:
    return json.dumps(asdict(record))


def _load(raw: bytes | str) -> IdempotencyRecord:
    return IdempotencyRecord(**json.loads(raw))
