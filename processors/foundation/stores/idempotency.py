"""A write-ahead log of each command's outputs, by command id: every output is appended
before it is sent, so a command redelivered after a crash re-emits exactly what was sent (same
ids, same content) instead of deciding again or paying a provider twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, cast

from redis.asyncio import Redis

from processors.foundation.stores._redis import DEFAULT_NAMESPACE, reaching, ttl_ms
from processors.foundation.stores.errors import StoreUnavailable

__all__ = ["LayeredResultStore", "MemoryResultStore", "RedisResultStore", "ResultStore"]


class ResultStore(Protocol):
    async def append(self, command_id: str, position: int, item: bytes, ttl_s: float) -> None:
        """Put the command's output number ``position`` in its log, kept ``ttl_s`` seconds
        after the last append. Idempotent: a position already logged is left as it is (a
        retried call whose first reply was lost), and one past a gap is not logged (the log
        stays a prefix of what was sent, so positions in it always match)."""
        ...

    async def read(self, command_id: str) -> list[bytes]:
        """The command's log in append order; empty if it never ran (or the log expired)."""
        ...


def _check_ttl(ttl_s: float) -> None:
    if ttl_s <= 0:
        raise ValueError(f"a TTL must be positive, got {ttl_s}")


# One round trip per output: the positional append and the TTL refresh in one script call.
_APPEND_LUA = """
if redis.call('LLEN', KEYS[1]) == tonumber(ARGV[3]) then
    redis.call('RPUSH', KEYS[1], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


class RedisResultStore:
    """One list per command under ``<namespace>:result:``, shared by all replicas, so whichever
    replica takes over a partition finds what the previous owner sent."""

    def __init__(self, client: Redis, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._client = client
        self._prefix = f"{namespace}:result"
        self._append = client.register_script(_APPEND_LUA)

    async def append(self, command_id: str, position: int, item: bytes, ttl_s: float) -> None:
        _check_ttl(ttl_s)
        key = f"{self._prefix}:{command_id}"
        with reaching("results"):
            await self._append(keys=[key], args=[item, ttl_ms(ttl_s), position])

    async def read(self, command_id: str) -> list[bytes]:
        with reaching("results"):
            items = await self._client.lrange(f"{self._prefix}:{command_id}", 0, -1)
        return cast(list[bytes], items)  # the client does not decode responses


class MemoryResultStore:
    """One process's logs; past ``max_entries`` commands the oldest logs are dropped, which can
    only cost a second decision for a very old redelivery."""

    def __init__(
        self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._max_entries = max_entries
        self._clock = clock
        self._logs: dict[str, tuple[list[bytes], float]] = {}  # insertion order = first write

    async def append(self, command_id: str, position: int, item: bytes, ttl_s: float) -> None:
        _check_ttl(ttl_s)
        items = await self.read(command_id)
        if len(items) == position:
            items.append(item)
        self._logs.pop(command_id, None)
        self._logs[command_id] = (items, self._clock() + ttl_s)
        while len(self._logs) > self._max_entries:
            del self._logs[next(iter(self._logs))]

    async def read(self, command_id: str) -> list[bytes]:
        entry = self._logs.get(command_id)
        if entry is None:
            return []
        items, expires_at = entry
        if self._clock() >= expires_at:
            del self._logs[command_id]
            return []
        return list(items)


class LayeredResultStore:
    """The shared log backed by this process's own copy: a Redis call that times out (a stalled
    event loop, a Redis blip) must not make this process decide a redelivered command again, so
    every output is also kept locally and a read prefers whichever log knows more. Only a
    redelivery to another replica still depends on the shared log alone."""

    def __init__(self, shared: ResultStore, local: ResultStore) -> None:
        self._shared = shared
        self._local = local

    async def append(self, command_id: str, position: int, item: bytes, ttl_s: float) -> None:
        """Raises ``StoreUnavailable`` when the shared log missed the item (kept locally)."""
        await self._local.append(command_id, position, item, ttl_s)
        await self._shared.append(command_id, position, item, ttl_s)

    async def read(self, command_id: str) -> list[bytes]:
        """Raises ``StoreUnavailable`` when the shared log cannot be read and this process has
        no copy: an empty answer would make the caller decide the command again."""
        local = await self._local.read(command_id)
        try:
            shared = await self._shared.read(command_id)
        except StoreUnavailable:
            if local:
                return local
            raise
        return shared if len(shared) >= len(local) else local
