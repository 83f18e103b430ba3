"""The run log: each command's decided outputs, by command id, in segments. A segment is logged
before any of its outputs is sent, so a command redelivered after a crash or a rebalance resends
exactly what was sent (same ids, same content) instead of deciding again or paying a provider
twice.

The log is fenced by content: a writer extends it with its whole history, and the extension
takes only when the log so far is a prefix of that history. A writer whose history diverges
(another replica decided the same command) learns it from the answer, sends nothing of its own
and resends the log instead, so two writers can never send different content under one id."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from redis.asyncio import Redis

from processors.foundation.stores._redis import DEFAULT_NAMESPACE, ttl_ms
from streams.redis_state import reaching

__all__ = ["MemoryResultStore", "RedisResultStore", "ResultStore"]


class ResultStore(Protocol):
    async def extend(self, command_id: str, history: Sequence[bytes], ttl_s: float) -> list[bytes]:
        """Make the command's log ``history`` if the log so far is a prefix of it, and keep it
        ``ttl_s`` seconds. Returns the log as it now is: equal to ``history`` when this writer
        holds it (a retry whose first reply was lost included), another writer's log when not.
        A log that lost entries (expired, an emptied Redis) is a prefix too: the writer's own
        history is written back."""
        ...

    async def read(self, command_id: str) -> list[bytes]:
        """The command's log in order; empty if it never ran (or the log expired)."""
        ...


def _check_ttl(ttl_s: float) -> None:
    if ttl_s <= 0:
        raise ValueError(f"a TTL must be positive, got {ttl_s}")


# One round trip per decision point: the prefix check, the extension and the TTL in one script.
_EXTEND_LUA = """
local log = redis.call('LRANGE', KEYS[1], 0, -1)
local wanted = #ARGV - 1
for i = 1, #log do
    if i > wanted or log[i] ~= ARGV[i + 1] then
        return log
    end
end
for i = #log + 1, wanted do
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return redis.call('LRANGE', KEYS[1], 0, -1)
"""


class RedisResultStore:
    """One list per command under ``<namespace>:result:``, shared by all replicas, so whichever
    replica takes over a partition finds what the previous owner sent."""

    def __init__(self, client: Redis, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._client = client
        self._prefix = f"{namespace}:result"
        self._extend = client.register_script(_EXTEND_LUA)

    async def extend(self, command_id: str, history: Sequence[bytes], ttl_s: float) -> list[bytes]:
        _check_ttl(ttl_s)
        key = f"{self._prefix}:{command_id}"
        with reaching("results"):
            log = await self._extend(keys=[key], args=[ttl_ms(ttl_s), *history])
        return cast(list[bytes], log)  # the client does not decode responses

    async def read(self, command_id: str) -> list[bytes]:
        with reaching("results"):
            items = await self._client.lrange(f"{self._prefix}:{command_id}", 0, -1)
        return cast(list[bytes], items)


class MemoryResultStore:
    """One process's logs (a single replica); past ``max_entries`` commands the oldest logs are
    dropped, which can only cost a second decision for a very old redelivery."""

    def __init__(
        self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._max_entries = max_entries
        self._clock = clock
        self._logs: dict[str, tuple[list[bytes], float]] = {}  # insertion order = first write

    async def extend(self, command_id: str, history: Sequence[bytes], ttl_s: float) -> list[bytes]:
        _check_ttl(ttl_s)
        log = await self.read(command_id)
        if log != list(history[: len(log)]):
            return log
        self._logs.pop(command_id, None)
        self._logs[command_id] = (list(history), self._clock() + ttl_s)
        while len(self._logs) > self._max_entries:
            del self._logs[next(iter(self._logs))]
        return list(history)

    async def read(self, command_id: str) -> list[bytes]:
        entry = self._logs.get(command_id)
        if entry is None:
            return []
        items, expires_at = entry
        if self._clock() >= expires_at:
            del self._logs[command_id]
            return []
        return list(items)
