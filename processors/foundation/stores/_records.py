"""Opaque byte records with a time to live, the shape both the response cache and the result
store have: one implementation per backend serves both, under different key prefixes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from redis.asyncio import Redis

from processors.foundation.stores._redis import ttl_ms
from streams.redis_state import reaching

__all__ = ["MemoryRecords", "RedisRecords"]


def _check_ttl(ttl_s: float) -> None:
    if ttl_s <= 0:
        raise ValueError(f"a TTL must be positive, got {ttl_s}")


class RedisRecords:
    """Records under ``prefix:``; Redis itself expires them (PX), so every replica sees one
    copy that disappears on time without any sweeping."""

    def __init__(self, client: Redis, prefix: str, store: str) -> None:
        self._client = client
        self._prefix = prefix
        self._store = store

    async def get(self, key: str) -> bytes | None:
        with reaching(self._store):
            value = await self._client.get(f"{self._prefix}:{key}")
        return cast(bytes | None, value)  # the client does not decode responses

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        _check_ttl(ttl_s)
        with reaching(self._store):
            await self._client.set(f"{self._prefix}:{key}", value, px=ttl_ms(ttl_s))


class MemoryRecords:
    """One process's records. The clock is injected (monotonic by default) so tests can move
    time; ``max_entries`` bounds memory by dropping the oldest writes first."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[bytes, float]] = {}  # insertion order = write order

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        return value

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        _check_ttl(ttl_s)
        self._entries.pop(key, None)
        self._entries[key] = (value, self._clock() + ttl_s)
        while len(self._entries) > self._max_entries:
            del self._entries[next(iter(self._entries))]
