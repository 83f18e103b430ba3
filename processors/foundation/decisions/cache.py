"""Answers served again: the exact cache (same normalized request) and, where a route opts in,
the semantic cache (a close enough prompt). Both are tenant-scoped and fail open: a cache that
does not answer is a miss, one that cannot store skips the answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from processors.foundation.config import Route
from processors.foundation.decisions.effects import (
    UNAVAILABLE,
    Decisions,
    Emit,
    FindCached,
    FindSimilar,
    StoreAnswer,
    ask,
)
from processors.foundation.decisions.payloads import cache_looked_up
from processors.foundation.embedding import embed, to_bytes
from processors.foundation.providers import ChatMessage
from processors.foundation.request import ParsedRequest, exact_cache_key
from schemas.payloads import (
    CacheKind,
    CacheLookupCompletedPayload,
    CacheOutcome,
    LlmRequestCompletedPayload,
)

__all__ = ["CACHED_FIELDS", "CacheKeys", "CachedAnswer", "find_answer", "keep_answer"]

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


def find_answer(
    route: Route, request: ParsedRequest, keys: CacheKeys, now: float
) -> Decisions[CachedAnswer | None]:
    """Exact first, then semantic; each lookup is a ``cache.lookup.completed`` event."""
    if request.bypass_cache or not (route.cache.exact or route.cache.semantic):
        yield Emit("cache.lookup.completed", cache_looked_up("exact", "bypass", keys.exact))
        return None
    if route.cache.exact:
        found = yield from ask(FindCached(keys.exact))
        if isinstance(found, bytes):
            answer = CachedAnswer(json.loads(found))
            yield Emit("cache.lookup.completed", _hit("exact", keys, answer))
            return answer
        outcome: CacheOutcome = "error" if found is UNAVAILABLE else "miss"
        yield Emit("cache.lookup.completed", cache_looked_up("exact", outcome, keys.exact))
    if not route.cache.semantic:
        return None
    similar = FindSimilar(keys.scope, embed(keys.prompt), route.cache.semantic_threshold, now)
    hit = yield from ask(similar)
    if hit is None or hit is UNAVAILABLE:
        missed: CacheOutcome = "error" if hit is UNAVAILABLE else "miss"
        yield Emit("cache.lookup.completed", cache_looked_up("semantic", missed, keys.exact))
        return None
    answer = CachedAnswer(json.loads(hit.answer))
    yield Emit("cache.lookup.completed", _hit("semantic", keys, answer, hit.similarity))
    return answer


def keep_answer(
    route: Route,
    request: ParsedRequest,
    keys: CacheKeys,
    completed: LlmRequestCompletedPayload,
    now: float,
) -> Decisions[None]:
    if request.bypass_cache or not (route.cache.exact or route.cache.semantic):
        return
    fields: Mapping[str, Any] = completed
    entry = json.dumps({k: fields[k] for k in CACHED_FIELDS}).encode()
    semantic = (keys.scope, to_bytes(embed(keys.prompt))) if route.cache.semantic else None
    exact = keys.exact if route.cache.exact else None
    yield StoreAnswer(exact, semantic, entry, route.cache.ttl_s, now)


def _hit(
    cache: CacheKind, keys: CacheKeys, answer: CachedAnswer, similarity: float | None = None
) -> CacheLookupCompletedPayload:
    saved = answer.fields["cost_usd"]
    return cache_looked_up(cache, "hit", keys.exact, saved, similarity)
