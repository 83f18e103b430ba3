"""Recorded outcomes by command id: a command redelivered after a crash re-emits what its first
run decided instead of paying a provider twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from processors.foundation.stores._records import MemoryRecords, RedisRecords
from processors.foundation.stores._redis import DEFAULT_NAMESPACE

__all__ = ["MemoryResultStore", "RedisResultStore", "ResultStore"]


class ResultStore(Protocol):
    async def get(self, command_id: str) -> bytes | None:
        """The outcome recorded for the command, or None if it has not run (or it expired)."""
        ...

    async def put(self, command_id: str, value: bytes, ttl_s: float) -> None:
        """Record the command's outcome for ``ttl_s`` seconds (longer than redelivery can take)."""
        ...


class RedisResultStore(RedisRecords):
    """Shared by all replicas under ``<namespace>:result:``, so whichever replica takes over a
    partition finds the outcome."""

    def __init__(self, client: Redis, namespace: str = DEFAULT_NAMESPACE) -> None:
        super().__init__(client, f"{namespace}:result", "results")


class MemoryResultStore(MemoryRecords):
    """One process's outcomes; past ``max_entries`` the oldest are dropped, which can only cost
    a second provider call for a very old redelivery."""

    def __init__(
        self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(max_entries, clock)
