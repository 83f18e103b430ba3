"""The exact response cache: answers by an opaque, already tenant-scoped key built by the
caller, so a repeated request costs nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from processors.foundation.stores._records import MemoryRecords, RedisRecords
from processors.foundation.stores._redis import DEFAULT_NAMESPACE

__all__ = ["MemoryResponseCache", "RedisResponseCache", "ResponseCache"]


class ResponseCache(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The cached answer, or None when absent or expired."""
        ...

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store (or replace) the answer for ``ttl_s`` seconds."""
        ...


class RedisResponseCache(RedisRecords):
    """Shared by all replicas under ``<namespace>:cache:``."""

    def __init__(self, client: Redis, namespace: str = DEFAULT_NAMESPACE) -> None:
        super().__init__(client, f"{namespace}:cache", "cache")


class MemoryResponseCache(MemoryRecords):
    """One process's cache, bounded to ``max_entries`` answers."""

    def __init__(
        self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(max_entries, clock)
