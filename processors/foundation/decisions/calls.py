"""The reliable call: candidates in strategy order, retries with backoff on retryable failures,
fallback to the next target, circuit breakers shared by all replicas, every step an event.
A stream cut after some text is continued by the next attempt, not restarted (``_Answer``)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from processors.foundation.config import BreakerSettings, GuardrailPolicy, Route, RouteTarget
from processors.foundation.decisions.effects import (
    UNAVAILABLE,
    AcquireBreaker,
    CallProvider,
    Checkpoint,
    Decisions,
    Emit,
    EmitLive,
    NextDelta,
    Now,
    ObserveLatency,
    OpenStream,
    RecordBreaker,
    Sleep,
    StreamEnd,
    ask,
)
from processors.foundation.decisions.payloads import (
    attempt_failed,
    breaker_changed,
    decision_made,
    delta_generated,
    fallback_triggered,
    stream_resumed,
)
from processors.foundation.guardrails import StreamGuard
from processors.foundation.providers import (
    ChatRequest,
    ChatResult,
    FailureKind,
    ProviderError,
    Usage,
    estimated_usage,
)
from processors.foundation.router import Candidate, backoff_s, plan_candidates, target_key
from streams.errors import ErrorCode, PlatformError

__all__ = ["CallOutcome", "CallSpec", "Charge", "Tally", "call_reliably"]

_KIND_TO_CODE = {
    FailureKind.TIMEOUT: ErrorCode.PROVIDER_TIMEOUT,
    FailureKind.RATE_LIMITED: ErrorCode.RATE_LIMITED,
    FailureKind.CLIENT_ERROR: ErrorCode.INVALID_REQUEST,
}


@dataclass(frozen=True)
class Charge:
    """What one attempt whose text is in the answer used, at its target's price."""

    target: RouteTarget
    usage: Usage


@dataclass(frozen=True)
class CallOutcome:
    result: ChatResult
    target: RouteTarget
    fallback_used: bool
    charges: tuple[Charge, ...]  # every attempt the answer is made of: cut ones, then the last


@dataclass(frozen=True)
class CallSpec:
    """Everything one run's call needs besides the route."""

    seed: str  # the command id: the same command draws the same jitter and weighted choice
    timeouts_s: Mapping[str, float]  # enabled providers only
    latency_ms: Mapping[str, float]  # observed latency per target, for the strategy
    request_for: Callable[[str], ChatRequest]  # model name -> the request for that model
    stream: bool
    output_policy: GuardrailPolicy  # guards each attempt's deltas afresh: its answer starts over
    deadline: float  # epoch seconds
    breaker: BreakerSettings
    continuing: frozenset[str]  # providers whose models can go on from a cut answer


@dataclass
class Tally:
    """The run's attempts so far, across every target (events number them)."""

    attempts: int = 0


@dataclass
class _Progress:
    """What the call has learnt so far: for events and for the final error."""

    rng: random.Random
    candidates: list[Candidate]
    skipped: dict[str, str] = field(default_factory=dict)
    failures: list[ProviderError] = field(default_factory=list)
    tried: list[RouteTarget] = field(default_factory=list)
    answer: _Answer | None = None  # the latest streamed attempt's answer


@dataclass
class _Answer:
    """A streamed answer across the attempts that continue it: the raw text they generated, the
    output guard that has read all of it (so what the client was sent stays a prefix of the
    redacted whole), and the attempts cut short so far, whose tokens were paid for."""

    guard: StreamGuard
    pieces: list[str] = field(default_factory=list)
    continuable: bool = True
    attempt: int = 0  # the latest attempt that generated text
    cut: list[Charge] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def add(self, raw: str) -> str:
        """Take the providers' next text; what the guard releases of it."""
        if not raw:
            return ""
        self.pieces.append(raw)
        return self.guard.push(raw)


def call_reliably(route: Route, spec: CallSpec, tally: Tally) -> Decisions[CallOutcome]:
    """Try candidates until one answers; raise ``PlatformError`` with the mapped code."""
    rng = random.Random(spec.seed)  # noqa: S311 - jitter, not secrets
    enabled = frozenset(spec.timeouts_s)
    progress = _Progress(rng, plan_candidates(route, rng, spec.latency_ms, enabled))
    first_choice = progress.candidates[0].target
    for candidate in progress.candidates:
        if candidate.eligible:
            result = yield from _try_target(route, spec, candidate.target, progress, tally)
            if result is not None:
                return _outcome(result, candidate.target, first_choice, progress.answer)
    raise _final_error(progress.tried, progress.failures, progress.skipped)


def _try_target(
    route: Route, spec: CallSpec, target: RouteTarget, progress: _Progress, tally: Tally
) -> Decisions[ChatResult | None]:
    """Up to ``retry.max_attempts`` calls to one target; None when it is given up on."""
    key = target_key(target)
    for retry in range(route.retry.max_attempts):
        now = yield from ask(Now())
        permit = yield from ask(AcquireBreaker(key, spec.breaker, now))
        if permit is False:  # open, by us or by another replica; a store outage fails open
            progress.skipped[key] = "breaker_open"
            return None
        if retry == 0:
            if progress.tried:
                reason = progress.failures[-1].kind.value if progress.failures else "breaker_open"
                yield Emit(
                    "router.fallback.triggered",
                    fallback_triggered(progress.tried[-1], target, reason),
                )
            progress.tried.append(target)
        tally.attempts += 1
        why = "retry" if retry else ("primary" if len(progress.tried) == 1 else "fallback")
        yield Emit(
            "router.decision.made",
            decision_made(
                route, progress.candidates, progress.skipped, target, why, tally.attempts
            ),
        )
        outcome = yield from _attempt(route, spec, target, tally.attempts, progress)
        if not isinstance(outcome, ProviderError):
            return outcome
        progress.failures.append(outcome)
        now = yield from ask(Now())
        delay = _retry_delay(route, outcome, retry, progress.rng, spec.deadline - now)
        if delay is None:
            return None
        yield Sleep(delay)
    return None


def _outcome(
    result: ChatResult, target: RouteTarget, first_choice: RouteTarget, answer: _Answer | None
) -> CallOutcome:
    cut = tuple(answer.cut) if answer is not None else ()
    return CallOutcome(result, target, target != first_choice, (*cut, Charge(target, result.usage)))


def _attempt(
    route: Route, spec: CallSpec, target: RouteTarget, attempt: int, progress: _Progress
) -> Decisions[ChatResult | ProviderError]:
    key = target_key(target)
    started = yield from ask(Now())
    remaining = spec.deadline - started
    if remaining <= 0:
        raise PlatformError(ErrorCode.DEADLINE_EXCEEDED, "deadline passed before the call")
    timeout = min(spec.timeouts_s[target.provider], remaining, _constraint_s(route))
    request = spec.request_for(target.model)
    answer = None
    if spec.stream:
        answer = progress.answer = _answer_for(route, spec, target, progress.answer)
        if answer.pieces:
            request = replace(request, continue_from=answer.text)
            yield Emit(
                "llm.stream.resumed",
                stream_resumed(
                    target,
                    attempt,
                    answer.attempt,
                    len(request.continue_from or ""),
                    answer.guard.released_chars,
                ),
            )
    yield Checkpoint()  # the decision to call is logged before anyone is paid
    if answer is not None:
        outcome = yield from _streamed(target, request, timeout, answer, attempt)
    else:
        outcome = yield from ask(CallProvider(target.provider, request, timeout))
    if isinstance(outcome, ProviderError):
        if outcome.provider_fault:
            yield from _record(key, target, False, spec.breaker)
        ended = yield from ask(Now())
        failure = attempt_failed(target, attempt, outcome, int((ended - started) * 1000))
        yield Emit("llm.attempt.failed", failure)
        return outcome
    yield from _record(key, target, True, spec.breaker)
    yield ObserveLatency(key, outcome.latency_ms)
    return outcome


def _answer_for(
    route: Route, spec: CallSpec, target: RouteTarget, previous: _Answer | None
) -> _Answer:
    """The cut answer, when this attempt may continue it; else a new one, guarded afresh."""
    if (
        previous is not None
        and previous.pieces
        and previous.continuable
        and route.stream_resume == "continue"
        and target.provider in spec.continuing
    ):
        return previous
    return _Answer(StreamGuard(spec.output_policy))


def _streamed(
    target: RouteTarget, request: ChatRequest, timeout_s: float, answer: _Answer, attempt: int
) -> Decisions[ChatResult | ProviderError]:
    """One streamed attempt, adding to ``answer`` (a continuation's adapter has stitched the
    seam): each delta's text passes the output guard, and what it releases is sent at once as
    ``llm.delta.generated`` (``index`` is the delta that released it; tool calls go as they
    come); what is held back follows the stream's end (``index`` one past the last). A cut
    attempt leaves what is held back for a continuation, or for nobody."""
    yield OpenStream(target.provider, request, timeout_s)
    before = len(answer.pieces)
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    index = 0
    while True:
        piece = yield from ask(NextDelta())
        if isinstance(piece, ProviderError):
            _cut(answer, piece, target, request, "".join(answer.pieces[before:]), attempt)
            return piece
        if isinstance(piece, StreamEnd):
            end = piece
            break
        tool_calls = piece.tool_calls or tool_calls
        finish_reason = piece.finish_reason or finish_reason
        usage = piece.usage or usage
        released = answer.add(piece.text or "")
        if released or piece.tool_calls:
            yield _delta_event(index, released, piece.tool_calls, target, attempt)
        index += 1
    rest = answer.guard.finish()
    if rest:
        yield _delta_event(index, rest, None, target, attempt)
    text = answer.text
    own = "".join(answer.pieces[before:])
    return ChatResult(
        text=text or None,
        tool_calls=tool_calls,
        finish_reason=finish_reason,
        usage=usage or estimated_usage(request, own, tool_calls),
        latency_ms=end.latency_ms,
        time_to_first_token_ms=end.time_to_first_token_ms,
    )


def _cut(
    answer: _Answer,
    error: ProviderError,
    target: RouteTarget,
    request: ChatRequest,
    own: str,
    attempt: int,
) -> None:
    """Note what a cut attempt leaves: its text's tokens (paid, and kept if continued), and
    whether the answer can still be continued."""
    answer.continuable = answer.continuable and error.continuable
    if own:
        answer.attempt = attempt
        answer.cut.append(Charge(target, estimated_usage(request, own, None)))


def _delta_event(
    index: int,
    text: str,
    tool_calls: list[dict[str, Any]] | None,
    target: RouteTarget,
    attempt: int,
) -> EmitLive:
    payload = delta_generated(index, text, tool_calls, target, attempt)
    return EmitLive("llm.delta.generated", payload, f"delta/{attempt}/{index}")


def _record(
    key: str, target: RouteTarget, success: bool, breaker: BreakerSettings
) -> Decisions[None]:
    now = yield from ask(Now())
    transition = yield from ask(RecordBreaker(key, success, breaker, now))
    if transition is not None and transition is not UNAVAILABLE:
        yield Emit("breaker.state.changed", breaker_changed(target, transition))


def _retry_delay(
    route: Route, error: ProviderError, retry: int, rng: random.Random, remaining_s: float
) -> float | None:
    """Backoff before the next try of the same target, or None to move on: not retryable,
    out of attempts, or the wait would pass the deadline."""
    if not error.retryable or retry + 1 >= route.retry.max_attempts:
        return None
    delay = backoff_s(
        retry + 1, route.retry.base_delay_ms, route.retry.max_delay_ms, rng, error.retry_after_s
    )
    return None if delay >= remaining_s else delay


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
