"""Answers served again: the exact cache (same normalized request) and, where a route opts in,
the semantic cache (a close enough prompt). Both are tenant-scoped and fail open."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from processors.foundation.config import Route
from processors.foundation.embedding import embed, to_bytes
from processors.foundation.providers import ChatMessage
from processors.foundation.request import ParsedRequest, exact_cache_key
from processors.foundation.run import RunRecord
from processors.foundation.stores import Stores, StoreUnavailable

__all__ = ["CACHED_FIELDS", "AnswerCache", "CacheKeys", "CachedAnswer"]

log = logging.getLogger(__name__)

CACHED_FIELDS = (
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "status",
    "output_text",
    "tool_calls_json",
    "finish_reason",
)


@dataclass(frozen=True)
class CacheKeys:
    """``exact``: the whole normalized request; ``scope``: everything but the messages, so a
    semantic match never crosses tenants, routes, models or parameters; ``prompt``: the text
    compared semantically (after redaction)."""

    exact: str
    scope: str
    prompt: str

    @classmethod
    def of(
        cls, tenant: str, route: Route, request: ParsedRequest, messages: list[ChatMessage]
    ) -> CacheKeys:
        chat = replace(request.chat, messages=messages)
        return cls(
            exact=exact_cache_key(tenant, route.id, request.model_hint, chat),
            scope=exact_cache_key(tenant, route.id, request.model_hint, replace(chat, messages=[])),
            prompt="\n".join(f"{m.role}: {m.content or ''}" for m in messages),
        )


@dataclass(frozen=True)
class CachedAnswer:
    fields: dict[str, Any]  # CACHED_FIELDS of the original completion


class AnswerCache:
    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def lookup(
        self, run: RunRecord, route: Route, request: ParsedRequest, keys: CacheKeys, now: float
    ) -> CachedAnswer | None:
        """Exact first, then semantic; each lookup is a ``cache.lookup.completed`` event."""
        if request.bypass_cache or not (route.cache.exact or route.cache.semantic):
            run.emit("cache.lookup.completed", _event("exact", "bypass", keys.exact))
            return None
        if route.cache.exact:
            found = await self._exact(run, keys)
            if found is not None:
                return found
        if route.cache.semantic:
            return await self._semantic(run, route, keys, now)
        return None

    async def store(
        self,
        route: Route,
        request: ParsedRequest,
        keys: CacheKeys,
        completed: dict[str, Any],
        now: float,
    ) -> None:
        if request.bypass_cache:
            return
        entry = json.dumps({k: completed[k] for k in CACHED_FIELDS}).encode()
        try:
            if route.cache.exact:
                await self._stores.cache.put(keys.exact, entry, route.cache.ttl_s)
            if route.cache.semantic:
                vector = to_bytes(embed(keys.prompt))
                await self._stores.semantic.add(keys.scope, vector, entry, route.cache.ttl_s, now)
        except StoreUnavailable:
            log.warning("cache write skipped: store unavailable")

    async def _exact(self, run: RunRecord, keys: CacheKeys) -> CachedAnswer | None:
        try:
            cached = await self._stores.cache.get(keys.exact)
        except StoreUnavailable:
            run.emit("cache.lookup.completed", _event("exact", "error", keys.exact))
            return None
        if cached is None:
            run.emit("cache.lookup.completed", _event("exact", "miss", keys.exact))
            return None
        answer = CachedAnswer(json.loads(cached))
        run.emit("cache.lookup.completed", _event("exact", "hit", keys.exact, answer))
        return answer

    async def _semantic(
        self, run: RunRecord, route: Route, keys: CacheKeys, now: float
    ) -> CachedAnswer | None:
        threshold = route.cache.semantic_threshold
        try:
            hit = await self._stores.semantic.nearest(
                keys.scope, embed(keys.prompt), threshold, now
            )
        except StoreUnavailable:
            run.emit("cache.lookup.completed", _event("semantic", "error", keys.exact))
            return None
        if hit is None:
            run.emit("cache.lookup.completed", _event("semantic", "miss", keys.exact))
            return None
        answer = CachedAnswer(json.loads(hit.answer))
        event = _event("semantic", "hit", keys.exact, answer)
        run.emit("cache.lookup.completed", {**event, "similarity": hit.similarity})
        return answer


def _event(
    cache: str, outcome: str, key: str, answer: CachedAnswer | None = None
) -> dict[str, Any]:
    return {
        "cache": cache,
        "outcome": outcome,
        "key_hash": key.split(":", 1)[-1],
        "similarity": None,
        "saved_cost_usd": answer.fields["cost_usd"] if answer is not None else 0.0,
    }
