"""The semantic cache against a real redis-server and its in-memory twin (shared tests run on
both): similarity threshold, scope isolation, bounded scopes, expiry and outages."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from processors.foundation.embedding import embed, to_bytes
from processors.foundation.stores import (
    MemorySemanticCacheStore,
    RedisSemanticCacheStore,
    SemanticCacheStore,
    SemanticHit,
    Stores,
    StoreUnavailable,
    connect,
)
from streams.local_jvm import free_ports

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC).timestamp()
ACME = "acme|chat|gpt-4.1-mini|p0"  # scopes as the caller builds them
GLOBEX = "globex|chat|gpt-4.1-mini|p0"
FRANCE = "What is the capital of France?"
PYTHON = "How do I reverse a list in Python?"

StoreFactory = Callable[..., SemanticCacheStore]


def vector(text: str) -> bytes:
    return to_bytes(embed(text))


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest, store_namespace: str) -> AsyncIterator[Stores]:
    """One replica's stores on either backend; Redis ones under the test's own namespace."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    bundle = connect(url, namespace=store_namespace)
    yield bundle
    if bundle.redis is not None:
        async for key in bundle.redis.scan_iter(match=f"{store_namespace}:*"):
            await bundle.redis.delete(key)
    await bundle.aclose()


@pytest.fixture
def make_store(stores: Stores, store_namespace: str) -> StoreFactory:
    """A semantic store with non-default bounds on the same backend as ``stores``."""

    def make(**bounds: int) -> SemanticCacheStore:
        if stores.redis is None:
            return MemorySemanticCacheStore(**bounds)
        return RedisSemanticCacheStore(stores.redis, store_namespace, **bounds)

    return make


async def test_the_closest_answer_is_returned_when_it_reaches_the_threshold(
    stores: Stores,
) -> None:
    cache = stores.semantic
    await cache.add(ACME, vector(FRANCE), b"Paris", 3_600, NOW)
    await cache.add(ACME, vector(PYTHON), b"reversed()", 3_600, NOW)
    query = embed("what's the capital of france")
    hit = await cache.nearest(ACME, query, 0.8, NOW + 1)
    assert hit is not None
    assert hit.answer == b"Paris"
    assert 0.8 < hit.similarity < 0.95
    assert await cache.nearest(ACME, query, 0.95, NOW + 1) is None
    assert await cache.nearest(ACME, embed(FRANCE), 1.0, NOW + 1) == SemanticHit(1.0, b"Paris")


async def test_an_empty_scope_has_no_nearest(stores: Stores) -> None:
    assert await stores.semantic.nearest(ACME, embed(FRANCE), 0.1, NOW) is None


async def test_the_newest_of_equally_similar_answers_wins(stores: Stores) -> None:
    await stores.semantic.add(ACME, vector(FRANCE), b"old", 3_600, NOW)
    await stores.semantic.add(ACME, vector(FRANCE), b"new", 3_600, NOW + 1)
    assert await stores.semantic.nearest(ACME, embed(FRANCE), 0.9, NOW + 2) == SemanticHit(
        1.0, b"new"
    )


async def test_another_scope_never_matches(stores: Stores) -> None:
    await stores.semantic.add(ACME, vector(FRANCE), b"acme's answer", 3_600, NOW)
    assert await stores.semantic.nearest(GLOBEX, embed(FRANCE), 0.1, NOW) is None
    assert await stores.semantic.nearest(f"{ACME}x", embed(FRANCE), 0.1, NOW) is None
    hit = await stores.semantic.nearest(ACME, embed(FRANCE), 0.1, NOW)
    assert hit is not None and hit.answer == b"acme's answer"


async def test_a_scope_keeps_only_its_newest_entries(
    stores: Stores, make_store: StoreFactory, store_namespace: str
) -> None:
    cache = make_store(max_entries=3)
    prompts = [f"prompt number {word} about a topic" for word in "one two three four five".split()]
    for at, prompt in enumerate(prompts):
        await cache.add(ACME, vector(prompt), prompt.encode(), 3_600, NOW + at)
    for prompt in prompts[:2]:
        assert await cache.nearest(ACME, embed(prompt), 1.0, NOW + 9) is None
    for prompt in prompts[2:]:
        assert await cache.nearest(ACME, embed(prompt), 1.0, NOW + 9) == (1.0, prompt.encode())
    if stores.redis is not None:  # trimmed in storage, not just hidden: 3 entries + 2 counters
        assert await stores.redis.hlen(f"{store_namespace}:semantic:{ACME}") == 3 * 3 + 2


async def test_entries_expire_after_their_ttl(stores: Stores) -> None:
    await stores.semantic.add(ACME, vector(FRANCE), b"short", 60, NOW)
    await stores.semantic.add(ACME, vector(PYTHON), b"long", 3_600, NOW)
    assert await stores.semantic.nearest(ACME, embed(FRANCE), 0.9, NOW + 59.9) == (1.0, b"short")
    assert await stores.semantic.nearest(ACME, embed(FRANCE), 0.9, NOW + 60) is None
    assert await stores.semantic.nearest(ACME, embed(PYTHON), 0.9, NOW + 60) == (1.0, b"long")


async def test_a_redis_scope_lives_as_long_as_its_longest_entry(
    redis_url: str, store_namespace: str
) -> None:
    stores = connect(redis_url, namespace=store_namespace)
    assert stores.redis is not None
    key = f"{store_namespace}:semantic:{ACME}"
    try:
        await stores.semantic.add(ACME, vector(FRANCE), b"a", 60, NOW)
        assert 59_000 < await stores.redis.pttl(key) <= 60_000
        await stores.semantic.add(ACME, vector(PYTHON), b"b", 3_600, NOW)
        assert 3_599_000 < await stores.redis.pttl(key) <= 3_600_000
        await stores.semantic.add(ACME, vector(FRANCE), b"c", 60, NOW)
        assert 3_599_000 < await stores.redis.pttl(key) <= 3_600_000
    finally:
        await stores.redis.delete(key)
        await stores.aclose()


async def test_all_scopes_together_stay_within_the_memory_bound() -> None:
    cache = MemorySemanticCacheStore(max_entries=3, max_total=4)
    for at, text in enumerate(["alpha one", "alpha two", "alpha three"]):
        await cache.add(ACME, vector(text), text.encode(), 3_600, NOW + at)
    await cache.add(GLOBEX, vector("beta one"), b"beta one", 3_600, NOW + 3)
    await cache.add(GLOBEX, vector("beta two"), b"beta two", 3_600, NOW + 4)
    assert await cache.nearest(ACME, embed("alpha one"), 1.0, NOW + 5) is None
    for scope, text in [(ACME, "alpha two"), (ACME, "alpha three"), (GLOBEX, "beta one")]:
        assert await cache.nearest(scope, embed(text), 1.0, NOW + 5) == (1.0, text.encode())


async def test_vectors_of_another_dimension_never_match(stores: Stores) -> None:
    await stores.semantic.add(ACME, to_bytes([1.0, 0.0]), b"other embedder", 3_600, NOW)
    assert await stores.semantic.nearest(ACME, embed(FRANCE), 0.01, NOW) is None
    assert await stores.semantic.nearest(ACME, [1.0, 0.0], 0.99, NOW) == (1.0, b"other embedder")


async def test_unusable_entries_are_refused(stores: Stores) -> None:
    with pytest.raises(ValueError, match="positive"):
        await stores.semantic.add(ACME, vector(FRANCE), b"a", 0, NOW)
    with pytest.raises(ValueError):
        await stores.semantic.add(ACME, b"\x00\x00\x80", b"a", 60, NOW)
    assert await stores.semantic.nearest(ACME, embed(FRANCE), 0.01, NOW) is None


async def test_replicas_share_the_semantic_cache(redis_url: str, store_namespace: str) -> None:
    first = connect(redis_url, namespace=store_namespace)
    second = connect(redis_url, namespace=store_namespace)
    try:
        await first.semantic.add(ACME, vector(FRANCE), b"Paris", 3_600, NOW)
        hit = await second.semantic.nearest(ACME, embed("what's the capital of france"), 0.8, NOW)
        assert hit is not None and hit.answer == b"Paris"
    finally:
        assert first.redis is not None
        await first.redis.delete(f"{store_namespace}:semantic:{ACME}")
        await first.aclose()
        await second.aclose()


async def test_an_unreachable_redis_raises_store_unavailable_promptly() -> None:
    stores = connect(f"redis://127.0.0.1:{free_ports(1)[0]}/0")
    calls = [
        lambda: stores.semantic.add(ACME, vector(FRANCE), b"a", 60, NOW),
        lambda: stores.semantic.nearest(ACME, embed(FRANCE), 0.9, NOW),
    ]
    try:
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="semantic"):
                await call()
            assert time.monotonic() - started < 1.0
    finally:
        await stores.aclose()
