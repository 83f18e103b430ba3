import random

import pytest

from processors.foundation.config import Route
from processors.foundation.router import LatencyTracker, backoff_s, plan_candidates

ALL = frozenset({"a", "b", "c"})


def route(strategy: str = "ordered", **extra: object) -> Route:
    return Route.model_validate(
        {
            "id": "r",
            "strategy": strategy,
            "policy": {
                "primary": {"provider": "a", "model": "m", "weight": 1},
                "fallbacks": [
                    {"provider": "b", "model": "m", "weight": 3},
                    {"provider": "c", "model": "m"},
                ],
            },
            **extra,
        }
    )


def providers(candidates: list) -> list[str]:  # type: ignore[type-arg]
    return [c.target.provider for c in candidates]


def test_ordered_keeps_primary_then_fallbacks() -> None:
    assert providers(plan_candidates(route(), random.Random(0), {}, ALL)) == ["a", "b", "c"]


def test_weighted_picks_the_first_by_weight() -> None:
    firsts = [
        providers(plan_candidates(route("weighted"), random.Random(seed), {}, ALL))[0]
        for seed in range(2_000)
    ]
    share_b = firsts.count("b") / len(firsts)
    assert 3 / 5 - 0.05 < share_b < 3 / 5 + 0.05
    assert all(
        len(set(providers(plan_candidates(route("weighted"), random.Random(s), {}, ALL)))) == 3
        for s in range(20)
    )


def test_lowest_latency_prefers_the_fastest_observed() -> None:
    observed = {"a/m": 300.0, "b/m": 100.0, "c/m": 200.0}
    assert providers(plan_candidates(route("lowest_latency"), random.Random(0), observed, ALL)) == [
        "b",
        "c",
        "a",
    ]


def test_disabled_and_too_slow_targets_are_skipped_with_a_reason() -> None:
    slow = route(constraints={"max_latency_ms": 150})
    candidates = plan_candidates(slow, random.Random(0), {"a/m": 400.0}, frozenset({"a", "c"}))
    assert [(c.target.provider, c.eligible, c.skip_reason) for c in candidates] == [
        ("a", False, "over_max_latency"),
        ("b", False, "provider_disabled"),
        ("c", True, None),
    ]


def test_when_every_target_is_too_slow_none_is_skipped_for_latency() -> None:
    slow = route(constraints={"max_latency_ms": 10})
    observed = {"a/m": 50.0, "b/m": 50.0, "c/m": 50.0}
    assert all(c.eligible for c in plan_candidates(slow, random.Random(0), observed, ALL))


@pytest.mark.parametrize("attempt", [1, 2, 3, 6])
def test_backoff_is_full_jitter_under_the_exponential_cap(attempt: int) -> None:
    rng = random.Random(attempt)
    delays = [backoff_s(attempt, 100, 1_000, rng) for _ in range(500)]
    cap = min(1.0, 0.1 * 2 ** (attempt - 1))
    assert all(0 <= d <= cap for d in delays)
    assert max(delays) > cap * 0.9 and min(delays) < cap * 0.1


def test_retry_after_is_a_floor() -> None:
    assert backoff_s(1, 100, 1_000, random.Random(0), retry_after_s=2.0) == 2.0


def test_latency_tracker_is_an_ewma() -> None:
    tracker = LatencyTracker(alpha=0.5)
    tracker.observe("a/m", 100)
    tracker.observe("a/m", 200)
    assert tracker.snapshot() == {"a/m": 150.0}
