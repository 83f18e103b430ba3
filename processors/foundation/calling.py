"""The reliable call: candidates in strategy order, retries with backoff on retryable failures,
fallback to the next target, circuit breakers shared by all replicas, every step an event."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

from processors.foundation.config import BreakerSettings, GuardrailPolicy, Route, RouteTarget
from processors.foundation.guardrails import StreamGuard
from processors.foundation.providers import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    FailureKind,
    Provider,
    ProviderError,
    Usage,
)
from processors.foundation.router import (
    Candidate,
    LatencyTracker,
    backoff_s,
    plan_candidates,
    target_key,
)
from processors.foundation.run import RunRecord
from processors.foundation.stores import CircuitBreakerStore, StoreUnavailable
from streams.errors import ErrorCode, PlatformError

__all__ = ["CallOutcome", "CallSpec", "ReliableCaller"]

_KIND_TO_CODE = {
    FailureKind.TIMEOUT: ErrorCode.PROVIDER_TIMEOUT,
    FailureKind.RATE_LIMITED: ErrorCode.RATE_LIMITED,
    FailureKind.CLIENT_ERROR: ErrorCode.INVALID_REQUEST,
}


@dataclass(frozen=True)
class CallOutcome:
    result: ChatResult
    target: RouteTarget
    fallback_used: bool


@dataclass(frozen=True)
class CallSpec:
    """Everything one run's call needs besides the route."""

    providers: Mapping[str, Provider]
    timeouts_s: Mapping[str, float]
    request_for: Callable[[str], ChatRequest]  # model name -> the request for that model
    stream: bool
    output_policy: GuardrailPolicy  # guards each attempt's deltas afresh: its answer starts over
    deadline: float  # epoch seconds
    breaker: BreakerSettings


@dataclass
class _Progress:
    """What the call has learnt so far: for events and for the final error."""

    rng: random.Random
    candidates: list[Candidate]
    skipped: dict[str, str] = field(default_factory=dict)
    failures: list[ProviderError] = field(default_factory=list)
    tried: list[RouteTarget] = field(default_factory=list)


class ReliableCaller:
    def __init__(
        self,
        breakers: CircuitBreakerStore,
        latency: LatencyTracker,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._breakers = breakers
        self._latency = latency
        self._wall_clock = wall_clock
        self._sleep = sleep

    async def call(self, run: RunRecord, route: Route, spec: CallSpec) -> CallOutcome:
        """Try candidates until one answers; raise ``PlatformError`` with the mapped code."""
        rng = random.Random(run.command.message_id)  # noqa: S311 - jitter, not secrets
        enabled = frozenset(spec.providers)
        progress = _Progress(rng, plan_candidates(route, rng, self._latency.snapshot(), enabled))
        first_choice = progress.candidates[0].target
        for candidate in progress.candidates:
            if candidate.eligible:
                result = await self._try_target(run, route, spec, candidate, progress)
                if result is not None:
                    return CallOutcome(result, candidate.target, candidate.target != first_choice)
        raise _final_error(progress.tried, progress.failures, progress.skipped)

    async def _try_target(
        self,
        run: RunRecord,
        route: Route,
        spec: CallSpec,
        candidate: Candidate,
        progress: _Progress,
    ) -> ChatResult | None:
        """Up to ``retry.max_attempts`` calls to one target; None when it is given up on."""
        key = target_key(candidate.target)
        for retry in range(route.retry.max_attempts):
            if not await self._admitted(key, spec.breaker):
                progress.skipped[key] = "breaker_open"  # opened by us or by another replica
                return None
            if retry == 0:
                if progress.tried:
                    reason = (
                        progress.failures[-1].kind.value if progress.failures else "breaker_open"
                    )
                    fallback = _fallback(progress.tried[-1], candidate.target, reason)
                    run.emit("router.fallback.triggered", fallback)
                progress.tried.append(candidate.target)
            run.attempts += 1
            run.emit("router.decision.made", _decision(route, progress, candidate, run, retry))
            try:
                return await self._attempt(run, route, spec, candidate, key)
            except ProviderError as error:
                progress.failures.append(error)
                delay = self._retry_delay(route, error, retry, progress.rng, spec.deadline)
                if delay is None:
                    return None
                await self._sleep(delay)
        return None

    async def _attempt(
        self, run: RunRecord, route: Route, spec: CallSpec, candidate: Candidate, key: str
    ) -> ChatResult:
        target = candidate.target
        remaining = spec.deadline - self._wall_clock()
        if remaining <= 0:
            raise PlatformError(ErrorCode.DEADLINE_EXCEEDED, "deadline passed before the call")
        timeout = min(spec.timeouts_s[target.provider], remaining, _constraint_s(route))
        started = self._wall_clock()
        provider = spec.providers[target.provider]
        deltas = _DeltaEvents(run, target, StreamGuard(spec.output_policy))
        request = spec.request_for(target.model)
        await run.checkpoint()  # the decision to call is logged before anyone is paid
        try:
            result = await _invoke(provider, request, spec.stream, timeout, deltas.on_delta)
        except ProviderError as error:
            if error.provider_fault:
                await self._record(run, key, target, False, spec.breaker)
            ended = self._wall_clock()
            run.emit(
                "llm.attempt.failed", _attempt_failed(target, run.attempts, error, started, ended)
            )
            raise
        if spec.stream:
            deltas.on_end()
        await self._record(run, key, target, True, spec.breaker)
        self._latency.observe(key, result.latency_ms)
        return result

    def _retry_delay(
        self, route: Route, error: ProviderError, retry: int, rng: random.Random, deadline: float
    ) -> float | None:
        """Backoff before the next try of the same target, or None to move on: not retryable,
        out of attempts, or the wait would pass the deadline."""
        if not error.retryable or retry + 1 >= route.retry.max_attempts:
            return None
        delay = backoff_s(
            retry + 1,
            route.retry.base_delay_ms,
            route.retry.max_delay_ms,
            rng,
            error.retry_after_s,
        )
        return None if self._wall_clock() + delay >= deadline else delay

    async def _admitted(self, key: str, breaker: BreakerSettings) -> bool:
        try:
            permit = await self._breakers.acquire(key, breaker, self._wall_clock())
        except StoreUnavailable:
            return True  # breakers fail open: a shared-state outage must not stop all traffic
        return permit.allowed

    async def _record(
        self, run: RunRecord, key: str, target: RouteTarget, success: bool, breaker: BreakerSettings
    ) -> None:
        try:
            transition = await self._breakers.record(key, success, breaker, self._wall_clock())
        except StoreUnavailable:
            return
        if transition is not None:
            run.emit(
                "breaker.state.changed",
                {
                    "provider": target.provider,
                    "model": target.model,
                    "from_state": transition.from_state,
                    "to_state": transition.to_state,
                    "failures": transition.failures,
                },
            )


async def _invoke(
    provider: Provider,
    request: ChatRequest,
    stream: bool,
    timeout_s: float,
    on_delta: Callable[[int, ChatDelta], None],
) -> ChatResult:
    """A hard bound on the call even if an adapter misbehaves; a stream's deltas go to
    ``on_delta`` as they arrive and are aggregated into the result."""
    try:
        if not stream:
            return await asyncio.wait_for(provider.complete(request, timeout_s), timeout_s + 0.5)
        collected = _collect(provider, request, timeout_s, on_delta)
        return await asyncio.wait_for(collected, timeout_s + 0.5)
    except TimeoutError:
        raise ProviderError(FailureKind.TIMEOUT, f"no answer within {timeout_s:.1f}s") from None


async def _collect(
    provider: Provider,
    request: ChatRequest,
    timeout_s: float,
    on_delta: Callable[[int, ChatDelta], None],
) -> ChatResult:
    started = time.monotonic()
    first: float | None = None
    text: list[str] = []
    tool_calls = None
    finish_reason = None
    usage = None
    async for index, delta in _enumerate(provider.stream(request, timeout_s)):
        if first is None:
            first = time.monotonic()
        on_delta(index, delta)
        text.append(delta.text or "")
        tool_calls = delta.tool_calls or tool_calls
        finish_reason = delta.finish_reason or finish_reason
        usage = delta.usage or usage
    elapsed = int((time.monotonic() - started) * 1000)
    return ChatResult(
        text="".join(text) or None,
        tool_calls=tool_calls,
        finish_reason=finish_reason,
        usage=usage or Usage(0, 0, reported_by_provider=False),
        latency_ms=elapsed,
        time_to_first_token_ms=int((first - started) * 1000) if first is not None else None,
    )


@dataclass
class _DeltaEvents:
    """One attempt's ``llm.delta.generated`` events: the text its output guard releases as the
    provider's deltas arrive (``index`` is the delta that released it), tool calls as they
    come, then the held-back rest once the stream has ended (``index`` one past the last). A
    failed attempt never releases its rest; what it did release stays, as with any retry."""

    run: RunRecord
    target: RouteTarget
    guard: StreamGuard
    count: int = 0

    def on_delta(self, index: int, delta: ChatDelta) -> None:
        self.count = index + 1
        self._emit(index, replace(delta, text=self.guard.push(delta.text or "")))

    def on_end(self) -> None:
        self._emit(self.count, ChatDelta(text=self.guard.finish()))

    def _emit(self, index: int, delta: ChatDelta) -> None:
        if delta.text or delta.tool_calls:
            attempt = self.run.attempts
            self.run.emit_live(  # unlogged: deltas are not decisions (see the run log)
                "llm.delta.generated",
                _delta(index, delta, self.target, attempt),
                f"delta/{attempt}/{index}",
            )


async def _enumerate(deltas: AsyncIterator[ChatDelta]) -> AsyncIterator[tuple[int, ChatDelta]]:
    index = 0
    async for delta in deltas:
        yield index, delta
        index += 1


def _delta(index: int, delta: ChatDelta, target: RouteTarget, attempt: int) -> dict[str, object]:
    return {
        "index": index,
        "text": delta.text or None,
        "tool_calls_json": json.dumps(delta.tool_calls) if delta.tool_calls else None,
        "provider": target.provider,
        "model": target.model,
        "attempt": attempt,
    }


def _constraint_s(route: Route) -> float:
    limit = route.constraints.max_latency_ms
    return limit / 1000 if limit is not None else float("inf")


def _final_error(
    tried: list[RouteTarget], failures: list[ProviderError], skipped: dict[str, str]
) -> PlatformError:
    if not tried:
        reasons = ", ".join(f"{k}: {v}" for k, v in skipped.items()) or "no eligible target"
        return PlatformError(ErrorCode.ALL_ROUTES_FAILED, f"no target available ({reasons})")
    last = failures[-1]
    if len(tried) == 1:
        code = _KIND_TO_CODE.get(last.kind, ErrorCode.PROVIDER_ERROR)
        return PlatformError(code, f"{target_key(tried[0])}: {last.detail}")
    return PlatformError(
        ErrorCode.ALL_ROUTES_FAILED,
        f"{len(tried)} targets failed; last {target_key(tried[-1])}: {last.kind.value}",
    )


def _fallback(previous: RouteTarget, target: RouteTarget, reason: str) -> dict[str, object]:
    return {
        "from_provider": previous.provider,
        "from_model": previous.model,
        "to_provider": target.provider,
        "to_model": target.model,
        "reason": reason,
    }


def _decision(
    route: Route, progress: _Progress, chosen: Candidate, run: RunRecord, retry: int
) -> dict[str, object]:
    reason = "retry" if retry else ("primary" if len(progress.tried) == 1 else "fallback")
    return {
        "route_id": route.id,
        "strategy": route.strategy,
        "candidates": [
            {
                "provider": c.target.provider,
                "model": c.target.model,
                "eligible": c.eligible and target_key(c.target) not in progress.skipped,
                "skip_reason": c.skip_reason or progress.skipped.get(target_key(c.target)),
            }
            for c in progress.candidates
        ],
        "chosen_provider": chosen.target.provider,
        "chosen_model": chosen.target.model,
        "reason": reason,
        "attempt": run.attempts,
    }


def _attempt_failed(
    target: RouteTarget, attempt: int, error: ProviderError, started: float, now: float
) -> dict[str, object]:
    return {
        "provider": target.provider,
        "model": target.model,
        "attempt": attempt,
        "failure_kind": error.kind.value,
        "status": error.status,
        "latency_ms": int((now - started) * 1000),
        "retry_after_ms": int(error.retry_after_s * 1000)
        if error.retry_after_s is not None
        else None,
        "detail": error.detail[:500],
    }
