"""The shared-state stores against a real redis-server, and the same behaviour from their
in-memory twins (shared tests run on both), so a single process behaves like a cluster."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from processors.foundation.config import BreakerSettings, TenantBudget
from processors.foundation.stores import (
    BudgetRejection,
    Reservation,
    Stores,
    StoreUnavailable,
    Transition,
    connect,
)
from streams.local_jvm import free_ports

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 14, 12, 0, 30, tzinfo=UTC).timestamp()  # 30 s into a minute
MINUTE_START = NOW - 30
BREAKER = BreakerSettings(failure_threshold=3, window_s=10, open_for_s=5, half_open_probes=2)
KEY = "openai/gpt-4.1-mini"


def budget(**config: Any) -> TenantBudget:
    return TenantBudget.model_validate(config)


@pytest.fixture(params=["memory", "redis"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """None for the in-memory twins, else the test Redis (started only when needed)."""
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


@pytest.fixture
async def stores(backend_url: str | None, store_namespace: str) -> AsyncIterator[Stores]:
    """One replica's stores on either backend; Redis ones under the test's own namespace."""
    bundle = connect(backend_url, namespace=store_namespace)
    yield bundle
    await discard(bundle, store_namespace)


@pytest.fixture
async def replicas(redis_url: str, store_namespace: str) -> AsyncIterator[tuple[Stores, Stores]]:
    """Two replicas: separate Redis clients (connection pools) on one namespace."""
    first = connect(redis_url, namespace=store_namespace)
    second = connect(redis_url, namespace=store_namespace)
    yield first, second
    await discard(first, store_namespace)
    await second.aclose()


async def discard(stores: Stores, namespace: str) -> None:
    """Delete the test's keys (a configured REDIS_URL may be long-lived) and close the client."""
    if stores.redis is not None:
        async for key in stores.redis.scan_iter(match=f"{namespace}*"):
            await stores.redis.delete(key)
    await stores.aclose()


def admitted(decision: Reservation | BudgetRejection) -> Reservation:
    assert isinstance(decision, Reservation), decision
    return decision


def rejected(decision: Reservation | BudgetRejection) -> BudgetRejection:
    assert isinstance(decision, BudgetRejection), decision
    return decision


# --- budgets -------------------------------------------------------------------------------


async def test_concurrent_reservations_admit_exactly_what_fits(stores: Stores) -> None:
    limits = budget(windows={"minute": {"tokens": 5_000}})
    decisions = await asyncio.gather(
        *(stores.budgets.reserve("acme", 100, 0.001, limits, NOW) for _ in range(200))
    )
    reservations = [d for d in decisions if isinstance(d, Reservation)]
    rejections = [d for d in decisions if isinstance(d, BudgetRejection)]
    assert len(reservations) == 50
    assert {(r.limit, r.metric, r.cap) for r in rejections} == {("minute", "tokens", 5_000)}
    tokens, cost = await stores.budgets.spend("acme", "minute", NOW)
    assert tokens == 5_000
    assert cost == pytest.approx(0.05)

    rng = random.Random(7)
    actual = [(rng.randint(0, 300), rng.randint(0, 10_000) / 1e6) for _ in reservations]
    await asyncio.gather(
        *(stores.budgets.settle(r, t, c) for r, (t, c) in zip(reservations, actual, strict=True))
    )
    for window in ("minute", "day", "month"):
        tokens, cost = await stores.budgets.spend("acme", window, NOW)
        assert tokens == sum(t for t, _ in actual)
        assert cost == pytest.approx(sum(c for _, c in actual), abs=1e-9)


async def test_a_rejection_names_the_limit_and_what_is_left(stores: Stores) -> None:
    limits = budget(windows={"minute": {"tokens": 10_000}, "day": {"cost_usd": 1.0}})
    admitted(await stores.budgets.reserve("acme", 100, 0.75, limits, NOW))
    refusal = rejected(await stores.budgets.reserve("acme", 100, 0.5, limits, NOW))
    assert (refusal.limit, refusal.metric) == ("day", "cost_usd")
    assert refusal.cap == 1.0
    assert refusal.spent == pytest.approx(0.75)
    assert refusal.remaining == pytest.approx(0.25)
    assert refusal.requested == pytest.approx(0.5)


async def test_a_reservation_charges_every_window_or_none(stores: Stores) -> None:
    limits = budget(windows={"minute": {"tokens": 1_000}, "month": {"tokens": 1_500}})
    admitted(await stores.budgets.reserve("acme", 900, 0.0, limits, NOW))
    later = NOW + 120  # a fresh minute, the same month
    assert rejected(await stores.budgets.reserve("acme", 700, 0.0, limits, later)).limit == "month"
    assert await stores.budgets.spend("acme", "minute", later) == (0, 0.0)
    assert await stores.budgets.spend("acme", "month", later) == (900, 0.0)


async def test_a_reservation_reports_the_window_that_will_refuse_first(stores: Stores) -> None:
    limits = budget(
        windows={"minute": {"tokens": 10_000}, "day": {"tokens": 1_000, "cost_usd": 2.0}}
    )
    reservation = admitted(await stores.budgets.reserve("acme", 400, 0.5, limits, NOW))
    assert reservation.window == "day"
    assert reservation.remaining_tokens == 600
    assert reservation.remaining_cost_usd == pytest.approx(1.5)
    unlimited = admitted(await stores.budgets.reserve("other", 400, 0.5, budget(), NOW))
    assert (unlimited.window, unlimited.remaining_tokens, unlimited.remaining_cost_usd) == (
        None,
        None,
        None,
    )


async def test_burst_limit_counts_requests_per_second(stores: Stores) -> None:
    limits = budget(burst={"requests_per_second": 3})
    for _ in range(3):
        admitted(await stores.budgets.reserve("acme", 10, 0.0, limits, NOW + 0.1))
    refusal = rejected(await stores.budgets.reserve("acme", 10, 0.0, limits, NOW + 0.9))
    assert (refusal.limit, refusal.metric, refusal.cap, refusal.spent) == (
        "burst",
        "requests",
        3,
        3,
    )
    assert await stores.budgets.spend("acme", "minute", NOW) == (30, 0.0)  # refusal charged none
    admitted(await stores.budgets.reserve("acme", 10, 0.0, limits, NOW + 1.0))


async def test_per_request_caps_refuse_without_charging(stores: Stores) -> None:
    limits = budget(per_request={"max_tokens": 1_000, "max_cost_usd": 0.01})
    tokens = rejected(await stores.budgets.reserve("acme", 1_001, 0.0, limits, NOW))
    assert (tokens.limit, tokens.metric, tokens.cap, tokens.requested) == (
        "per_request",
        "tokens",
        1_000,
        1_001,
    )
    cost = rejected(await stores.budgets.reserve("acme", 10, 0.02, limits, NOW))
    assert (cost.limit, cost.metric, cost.cap) == ("per_request", "cost_usd", 0.01)
    assert await stores.budgets.spend("acme", "minute", NOW) == (0, 0.0)
    admitted(await stores.budgets.reserve("acme", 1_000, 0.01, limits, NOW))


async def test_windows_roll_over_at_their_boundary(stores: Stores) -> None:
    limits = budget(windows={"minute": {"tokens": 100}, "month": {"tokens": 250}})
    next_month = datetime(2026, 2, 1, tzinfo=UTC).timestamp()  # a new minute, day and month
    end_of_month = next_month - 0.001
    admitted(await stores.budgets.reserve("acme", 100, 0.0, limits, end_of_month - 1))
    assert rejected(await stores.budgets.reserve("acme", 1, 0.0, limits, end_of_month)).limit == (
        "minute"
    )
    admitted(await stores.budgets.reserve("acme", 100, 0.0, limits, next_month))
    for window in ("minute", "day", "month"):
        assert await stores.budgets.spend("acme", window, end_of_month) == (100, 0.0)
        assert await stores.budgets.spend("acme", window, next_month) == (100, 0.0)


async def test_settle_lands_in_the_windows_reserved_even_after_rollover(stores: Stores) -> None:
    limits = budget(windows={"minute": {"tokens": 1_000}})
    reservation = admitted(await stores.budgets.reserve("acme", 500, 0.5, limits, NOW))
    admitted(await stores.budgets.reserve("acme", 50, 0.0, limits, NOW + 60))  # next minute
    await stores.budgets.settle(reservation, 120, 0.125)
    assert await stores.budgets.spend("acme", "minute", NOW) == (120, 0.125)
    assert await stores.budgets.spend("acme", "minute", NOW + 60) == (50, 0.0)
    assert await stores.budgets.spend("acme", "day", NOW) == (170, 0.125)


async def test_release_gives_the_estimate_back(stores: Stores) -> None:
    limits = budget(windows={"minute": {"tokens": 100}})
    reservation = admitted(await stores.budgets.reserve("acme", 100, 0.2, limits, NOW))
    await stores.budgets.release(reservation)
    assert await stores.budgets.spend("acme", "minute", NOW) == (0, 0.0)
    admitted(await stores.budgets.reserve("acme", 100, 0.2, limits, NOW))


async def test_tenants_have_separate_budgets(stores: Stores) -> None:
    limits = budget(windows={"minute": {"tokens": 100}})
    admitted(await stores.budgets.reserve("acme", 100, 0.0, limits, NOW))
    admitted(await stores.budgets.reserve("globex", 100, 0.0, limits, NOW))


# --- breakers ------------------------------------------------------------------------------


async def open_breaker(stores: Stores, at: float) -> None:
    for offset in (0.0, 1.0):
        assert await stores.breakers.record(KEY, False, BREAKER, at + offset) is None
    assert await stores.breakers.record(KEY, False, BREAKER, at + 2) == Transition(
        "closed", "open", 3
    )


async def test_breaker_opens_after_threshold_failures_within_the_window(stores: Stores) -> None:
    permit = await stores.breakers.acquire(KEY, BREAKER, NOW)
    assert (permit.allowed, permit.state, permit.is_probe) == (True, "closed", False)
    await open_breaker(stores, NOW)
    permit = await stores.breakers.acquire(KEY, BREAKER, NOW + 2 + 4.9)
    assert (permit.allowed, permit.state) == (False, "open")


async def test_failures_spread_beyond_the_window_keep_it_closed(stores: Stores) -> None:
    for at in (0.0, 6.0, 10.0, 16.0, 20.0):  # never three within 10 s
        assert await stores.breakers.record(KEY, False, BREAKER, NOW + at) is None
    assert (await stores.breakers.acquire(KEY, BREAKER, NOW + 20)).allowed


async def test_half_open_admits_exactly_the_probe_slots(stores: Stores) -> None:
    await open_breaker(stores, NOW)
    permits = await asyncio.gather(
        *(stores.breakers.acquire(KEY, BREAKER, NOW + 7) for _ in range(10))
    )
    probes = [p for p in permits if p.allowed]
    assert len(probes) == BREAKER.half_open_probes
    assert all(p.is_probe and p.state == "half_open" for p in probes)
    assert [p.transition for p in permits if p.transition] == [Transition("open", "half_open", 3)]
    assert {p.state for p in permits} == {"half_open"}


async def test_a_probe_success_closes_the_breaker(stores: Stores) -> None:
    await open_breaker(stores, NOW)
    assert (await stores.breakers.acquire(KEY, BREAKER, NOW + 7)).is_probe
    assert await stores.breakers.record(KEY, True, BREAKER, NOW + 8) == Transition(
        "half_open", "closed", 3
    )
    permit = await stores.breakers.acquire(KEY, BREAKER, NOW + 8)
    assert (permit.allowed, permit.state) == (True, "closed")
    # the failures were forgotten: two more do not reopen it
    assert await stores.breakers.record(KEY, False, BREAKER, NOW + 9) is None
    assert await stores.breakers.record(KEY, False, BREAKER, NOW + 9) is None


async def test_a_probe_failure_opens_it_again(stores: Stores) -> None:
    await open_breaker(stores, NOW)
    assert (await stores.breakers.acquire(KEY, BREAKER, NOW + 7)).is_probe
    assert await stores.breakers.record(KEY, False, BREAKER, NOW + 8) == Transition(
        "half_open", "open", 3
    )
    assert not (await stores.breakers.acquire(KEY, BREAKER, NOW + 12.9)).allowed
    assert (await stores.breakers.acquire(KEY, BREAKER, NOW + 13)).is_probe


async def test_a_lost_probe_frees_its_slot_after_open_for(stores: Stores) -> None:
    await open_breaker(stores, NOW)
    for _ in range(BREAKER.half_open_probes):
        assert (await stores.breakers.acquire(KEY, BREAKER, NOW + 7)).is_probe
    assert not (await stores.breakers.acquire(KEY, BREAKER, NOW + 11.9)).allowed
    assert (await stores.breakers.acquire(KEY, BREAKER, NOW + 12)).is_probe


async def test_results_outside_half_open_never_close(stores: Stores) -> None:
    await open_breaker(stores, NOW)
    assert await stores.breakers.record(KEY, True, BREAKER, NOW + 3) is None  # a late success
    assert await stores.breakers.record(KEY, False, BREAKER, NOW + 3) is None  # already open
    assert (await stores.breakers.acquire(KEY, BREAKER, NOW + 4)).state == "open"


async def test_breakers_are_per_target(stores: Stores) -> None:
    await open_breaker(stores, NOW)
    assert (await stores.breakers.acquire("anthropic/claude", BREAKER, NOW + 3)).allowed


async def test_a_raised_threshold_keeps_more_failures(stores: Stores) -> None:
    breakers = stores.breakers
    two = BreakerSettings(failure_threshold=2, window_s=60, open_for_s=5)
    three = two.model_copy(update={"failure_threshold": 3})
    assert await breakers.record("t", False, two, 0) is None
    assert await breakers.record("t", False, two, 100) is None  # the first fell out of the window
    assert await breakers.record("t", False, three, 101) is None
    assert await breakers.record("t", False, three, 102) == Transition("closed", "open", 3)


async def test_replicas_share_breaker_state(replicas: tuple[Stores, Stores]) -> None:
    first, second = replicas
    await open_breaker(first, NOW)
    assert (await second.breakers.acquire(KEY, BREAKER, NOW + 3)).state == "open"
    permits = await asyncio.gather(
        *(replica.breakers.acquire(KEY, BREAKER, NOW + 7) for replica in replicas * 5)
    )
    assert sum(p.allowed for p in permits) == BREAKER.half_open_probes
    assert await second.breakers.record(KEY, True, BREAKER, NOW + 8) == Transition(
        "half_open", "closed", 3
    )
    assert (await first.breakers.acquire(KEY, BREAKER, NOW + 8)).state == "closed"


async def test_replicas_share_budgets(replicas: tuple[Stores, Stores]) -> None:
    limits = budget(windows={"minute": {"tokens": 1_000}})
    decisions = await asyncio.gather(
        *(replica.budgets.reserve("acme", 100, 0.0, limits, NOW) for replica in replicas * 10)
    )
    assert sum(isinstance(d, Reservation) for d in decisions) == 10


# --- cache and recorded results ------------------------------------------------------------


async def test_cache_and_results_round_trip(stores: Stores) -> None:
    assert await stores.cache.get("k") is None
    await stores.cache.put("k", b"first", 60)
    await stores.cache.put("k", b"\x00answer", 60)
    assert await stores.cache.get("k") == b"\x00answer"
    assert await stores.results.read("k") == []  # same key, other store
    assert await stores.results.extend("cmd-1", [b"first"], 60) == [b"first"]
    assert await stores.results.extend("cmd-1", [b"first", b"second"], 60) == [b"first", b"second"]
    assert await stores.results.read("cmd-1") == [b"first", b"second"]


async def test_a_run_log_extension_is_idempotent_and_fenced(stores: Stores) -> None:
    """A retried extension (its first reply lost) is not logged twice; a writer whose history
    diverges from the log (another replica decided the command) is told the log that holds and
    changes nothing; a log that lost entries takes the writer's history back."""
    assert await stores.results.extend("cmd", [b"first"], 60) == [b"first"]
    assert await stores.results.extend("cmd", [b"first"], 60) == [b"first"]  # the retry
    assert await stores.results.extend("cmd", [b"first", b"mine"], 60) == [b"first", b"mine"]
    theirs = [b"first", b"theirs", b"end"]
    assert await stores.results.extend("cmd", theirs, 60) == [b"first", b"mine"]
    assert await stores.results.extend("cmd", [b"first"], 60) == [b"first", b"mine"]  # behind
    assert await stores.results.read("cmd") == [b"first", b"mine"]
    assert await stores.results.extend("new", [b"a", b"b"], 60) == [b"a", b"b"]


async def test_a_ttl_must_be_positive(stores: Stores) -> None:
    with pytest.raises(ValueError, match="positive"):
        await stores.cache.put("k", b"v", 0)


async def test_redis_expires_records_after_their_ttl(redis_url: str, store_namespace: str) -> None:
    stores = connect(redis_url, namespace=store_namespace)
    assert stores.redis is not None
    try:
        await stores.cache.put("long", b"v", 3_600)
        remaining_ms = await stores.redis.pttl(f"{store_namespace}:cache:long")
        assert 3_599_000 < remaining_ms <= 3_600_000
        await stores.results.extend("short", [b"v"], 0.05)
        await stores.cache.put("short", b"v", 0.05)
        await poll_until(lambda: gone(stores, "short"), within_s=5)
    finally:
        await discard(stores, store_namespace)


async def gone(stores: Stores, key: str) -> bool:
    return await stores.cache.get(key) is None and await stores.results.read(key) == []


async def poll_until(check: Callable[[], Awaitable[bool]], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, f"not true within {within_s} s"
        await asyncio.sleep(0.01)  # poll interval, bounded by the deadline


async def test_namespaces_isolate_keys(redis_url: str, store_namespace: str) -> None:
    mine = connect(redis_url, namespace=store_namespace)
    theirs = connect(redis_url, namespace=f"{store_namespace}x")
    try:
        await mine.cache.put("shared-key", b"mine", 60)
        assert await theirs.cache.get("shared-key") is None
        limits = budget(windows={"minute": {"tokens": 100}})
        admitted(await mine.budgets.reserve("acme", 100, 0.0, limits, NOW))
        admitted(await theirs.budgets.reserve("acme", 100, 0.0, limits, NOW))
        await open_breaker(mine, NOW)
        assert (await theirs.breakers.acquire(KEY, BREAKER, NOW + 3)).allowed
    finally:
        await discard(mine, store_namespace)  # both namespaces start with it
        await theirs.aclose()


# --- Redis unreachable or stalled ----------------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


def every_method(stores: Stores) -> list[Callable[[], Awaitable[object]]]:
    reservation = Reservation("acme", 1, 0.0, ("minute:0",), None, None, None)
    return [
        lambda: stores.budgets.reserve("acme", 1, 0.0, budget(), NOW),
        lambda: stores.budgets.settle(reservation, 1, 0.0),
        lambda: stores.budgets.release(reservation),
        lambda: stores.budgets.spend("acme", "minute", NOW),
        lambda: stores.cache.get("k"),
        lambda: stores.cache.put("k", b"v", 1),
        lambda: stores.breakers.acquire(KEY, BREAKER, NOW),
        lambda: stores.breakers.record(KEY, False, BREAKER, NOW),
        lambda: stores.results.extend("c", [b"v"], 1),
        lambda: stores.results.read("c"),
    ]


@pytest.mark.parametrize("server", ["closed_port", "silent_port"])
async def test_unreachable_redis_raises_store_unavailable_promptly(
    server: str, request: pytest.FixtureRequest
) -> None:
    port = free_ports(1)[0] if server == "closed_port" else request.getfixturevalue(server)
    stores = connect(f"redis://127.0.0.1:{port}/0")
    try:
        for call in every_method(stores):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await call()
            assert time.monotonic() - started < 1.0
            # a silent Redis times out (worth another try), a closed port refuses (down)
            assert caught.value.transient is (server == "silent_port")
    finally:
        await stores.aclose()
