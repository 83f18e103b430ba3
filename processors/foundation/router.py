"""Which provider/model to try, in which order, and how long to wait between tries (pure)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from processors.foundation.config import Route, RouteTarget

__all__ = ["Candidate", "LatencyTracker", "backoff_s", "plan_candidates", "target_key"]


def target_key(target: RouteTarget) -> str:
    return f"{target.provider}/{target.model}"


@dataclass(frozen=True)
class Candidate:
    target: RouteTarget
    eligible: bool
    skip_reason: str | None = None


def plan_candidates(
    route: Route,
    rng: random.Random,
    observed_latency_ms: Mapping[str, float],
    enabled_providers: frozenset[str],
) -> list[Candidate]:
    """Targets in the order the strategy prefers; disabled providers and targets slower than
    the route's ``max_latency_ms`` are marked ineligible (unless every target is too slow)."""
    targets = route.targets()
    if route.strategy == "weighted":
        first = rng.choices(targets, weights=[t.weight for t in targets])[0]
        targets = [first, *(t for t in targets if t is not first)]
    elif route.strategy == "lowest_latency":
        targets = sorted(targets, key=lambda t: observed_latency_ms.get(target_key(t), 0.0))
    limit = route.constraints.max_latency_ms
    too_slow = {
        target_key(t)
        for t in targets
        if limit is not None and observed_latency_ms.get(target_key(t), 0.0) > limit
    }
    if len(too_slow) == len(targets):
        too_slow = set()
    candidates = []
    for target in targets:
        if target.provider not in enabled_providers:
            candidates.append(Candidate(target, False, "provider_disabled"))
        elif target_key(target) in too_slow:
            candidates.append(Candidate(target, False, "over_max_latency"))
        else:
            candidates.append(Candidate(target, True))
    return candidates


def backoff_s(
    attempt: int,
    base_delay_ms: int,
    max_delay_ms: int,
    rng: random.Random,
    retry_after_s: float | None = None,
) -> float:
    """Exponential backoff with full jitter before retry number ``attempt`` (1 = first retry);
    a provider's Retry-After is a floor."""
    cap_s = min(max_delay_ms, base_delay_ms * 2 ** (attempt - 1)) / 1000
    delay = rng.uniform(0, cap_s)
    return max(delay, retry_after_s) if retry_after_s is not None else delay


class LatencyTracker:
    """Observed latency per target (EWMA), for ``lowest_latency`` and ``max_latency_ms``. It is
    a per-process cache: losing it only costs a few calls to relearn."""

    def __init__(self, alpha: float = 0.2) -> None:
        self._alpha = alpha
        self._ewma: dict[str, float] = {}

    def observe(self, key: str, latency_ms: float) -> None:
        previous = self._ewma.get(key)
        self._ewma[key] = (
            latency_ms if previous is None else previous + self._alpha * (latency_ms - previous)
        )

    def snapshot(self) -> dict[str, float]:
        return dict(self._ewma)
