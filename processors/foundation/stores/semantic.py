"""The semantic response cache: answers a prompt whose embedding is close enough to one answered
before, so a rephrased question costs nothing.

A scope is an opaque string the caller builds (tenant, route, model hint, parameters hash), and
a lookup only ever compares entries of its own scope: an answer never crosses tenants, models or
sampling parameters. Each scope keeps its ``max_entries`` newest entries; an entry is live until
``now`` reaches its ``now + ttl_s`` at writing, the same rule on both backends."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar, cast

from redis.asyncio import Redis

from processors.foundation.embedding import Vector, cosine, from_bytes
from processors.foundation.stores._redis import DEFAULT_NAMESPACE, ttl_ms
from streams.redis_state import reaching

__all__ = [
    "MemorySemanticCacheStore",
    "RedisSemanticCacheStore",
    "SemanticCacheStore",
    "SemanticHit",
]

DEFAULT_MAX_ENTRIES = 256  # per scope: bounds a lookup's work and transfer (~2 KB a vector)


class SemanticHit(NamedTuple):
    similarity: float
    answer: bytes


class SemanticCacheStore(Protocol):
    async def add(self, scope: str, vector: bytes, answer: bytes, ttl_s: int, now: float) -> None:
        """Remember ``answer`` for the prompt embedded as ``vector`` (``to_bytes`` form) for
        ``ttl_s`` seconds, dropping the scope's oldest entry beyond its bound."""
        ...

    async def nearest(
        self, scope: str, query: Sequence[float], threshold: float, now: float
    ) -> SemanticHit | None:
        """The live entry of ``scope`` most similar to ``query`` (the newest among equals), if
        its cosine similarity reaches ``threshold``."""
        ...


_Key = TypeVar("_Key")


def _most_similar(
    query: Sequence[float],
    entries: Iterable[tuple[_Key, float, Vector]],
    threshold: float,
    now: float,
) -> tuple[float, _Key] | None:
    """The rule both backends apply to (key, expires_at, vector) entries, oldest first: expired
    entries and vectors of another dimension (another embedder wrote them) never match."""
    query = tuple(query)  # unboxed once: a third off each comparison with an array query
    best: tuple[float, _Key] | None = None
    for key, expires_at, vector in entries:
        if now >= expires_at or len(vector) != len(query):
            continue
        similarity = cosine(query, vector)
        if best is None or similarity >= best[0]:
            best = (similarity, key)
    return best if best is not None and best[0] >= threshold else None


def _checked(vector: bytes, ttl_s: int) -> Vector:
    """The decoded vector; refuses, before anything is stored, an entry no lookup could use."""
    if ttl_s <= 0:
        raise ValueError(f"a TTL must be positive, got {ttl_s}")
    return from_bytes(vector)


class MemorySemanticCacheStore:
    """One process's semantic cache; atomic because no step awaits. Besides ``max_entries`` per
    scope, ``max_total`` bounds all scopes together by dropping the oldest entries of the
    least recently written scope, since scopes (one per parameters hash) are unbounded."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_total: int = 10_000) -> None:
        if not 1 <= max_entries <= max_total:
            raise ValueError(f"need 1 <= max_entries <= max_total, got {max_entries}, {max_total}")
        self._max_entries = max_entries
        self._max_total = max_total
        self._total = 0
        # scope -> (answer, expires_at, vector), oldest first; scopes in order of last write
        self._scopes: dict[str, deque[tuple[bytes, float, Vector]]] = {}

    async def add(self, scope: str, vector: bytes, answer: bytes, ttl_s: int, now: float) -> None:
        entry = (answer, now + ttl_s, _checked(vector, ttl_s))
        entries = self._scopes.pop(scope, None) or deque(maxlen=self._max_entries)
        self._scopes[scope] = entries
        if len(entries) < self._max_entries:  # a full deque drops its oldest as it appends
            self._total += 1
        entries.append(entry)
        while self._total > self._max_total:
            stale_scope = next(iter(self._scopes))
            stale = self._scopes[stale_scope]
            stale.popleft()
            self._total -= 1
            if not stale:
                del self._scopes[stale_scope]

    async def nearest(
        self, scope: str, query: Sequence[float], threshold: float, now: float
    ) -> SemanticHit | None:
        best = _most_similar(query, self._scopes.get(scope, ()), threshold, now)
        return None if best is None else SemanticHit(*best)


# KEYS[1]: the scope's hash: 'next' (last id given), 'low' (oldest id that may remain) and per
# entry id its vector 'v:<id>', answer 'a:<id>' and expiry 'x:<id>' (the caller's clock).
# ARGV: vector, answer, expires_at, TTL (ms), max_entries. Ids grow by one per add, so the ids
# below next - max_entries + 1 are exactly the ones to drop, all in the same atomic step. The
# hash lives as long as its longest-lived entry, so an abandoned scope disappears on its own.
_ADD_LUA = """
local scope = KEYS[1]
local id = redis.call('HINCRBY', scope, 'next', 1)
redis.call('HSET', scope, 'v:' .. id, ARGV[1], 'a:' .. id, ARGV[2], 'x:' .. id, ARGV[3])
local low = tonumber(redis.call('HGET', scope, 'low') or '1')
local keep_from = id - tonumber(ARGV[5]) + 1
if keep_from > low then
  for old = low, keep_from - 1 do
    redis.call('HDEL', scope, 'v:' .. old, 'a:' .. old, 'x:' .. old)
  end
  redis.call('HSET', scope, 'low', keep_from)
end
if redis.call('PTTL', scope) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', scope, ARGV[4])
end
return id
"""

# KEYS[1]: the scope's hash. Returns {id, expires_at, vector, ...} for every entry, oldest
# first: a lookup's one round trip; the caller compares and asks for the winner's answer.
_LOAD_LUA = """
local bounds = redis.call('HMGET', KEYS[1], 'low', 'next')
local entries = {}
if not bounds[2] then return entries end
for id = tonumber(bounds[1] or '1'), tonumber(bounds[2]) do
  local entry = redis.call('HMGET', KEYS[1], 'x:' .. id, 'v:' .. id)
  if entry[1] then
    entries[#entries + 1] = id
    entries[#entries + 1] = entry[1]
    entries[#entries + 1] = entry[2]
  end
end
return entries
"""


class RedisSemanticCacheStore:
    """The semantic cache shared by all replicas: one hash per scope under
    ``<namespace>:semantic:``, changed only by a Lua script, so adding and trimming are one
    atomic step. A miss costs one round trip, a hit two (the answer is fetched only for the
    winner); an entry dropped in between is a miss."""

    def __init__(
        self,
        client: Redis,
        namespace: str = DEFAULT_NAMESPACE,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._client = client
        self._prefix = f"{namespace}:semantic"
        self._max_entries = max_entries
        self._add_script = client.register_script(_ADD_LUA)
        self._load_script = client.register_script(_LOAD_LUA)

    async def add(self, scope: str, vector: bytes, answer: bytes, ttl_s: int, now: float) -> None:
        _checked(vector, ttl_s)
        args: list[bytes | str | int] = [
            vector,
            answer,
            repr(now + ttl_s),
            ttl_ms(ttl_s),
            self._max_entries,
        ]
        with reaching("semantic"):
            await self._add_script(keys=[self._key(scope)], args=args)

    async def nearest(
        self, scope: str, query: Sequence[float], threshold: float, now: float
    ) -> SemanticHit | None:
        key = self._key(scope)
        with reaching("semantic"):
            flat: list[Any] = await self._load_script(keys=[key])  # [int, bytes, bytes] * n
        entries = (
            (cast(int, entry_id), float(expires_at), from_bytes(vector))
            for entry_id, expires_at, vector in zip(flat[::3], flat[1::3], flat[2::3], strict=True)
        )
        best = _most_similar(query, entries, threshold, now)
        if best is None:
            return None
        similarity, entry_id = best
        with reaching("semantic"):
            answer = cast(bytes | None, await self._client.hget(key, f"a:{entry_id}"))
        return None if answer is None else SemanticHit(similarity, answer)

    def _key(self, scope: str) -> str:
        return f"{self._prefix}:{scope}"
