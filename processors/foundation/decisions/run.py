"""One run of ``llm.chat.requested``, decided: guard input -> route -> cache -> reserve budget ->
call (retries, fallbacks, breakers) -> guard output -> settle budget -> cache the answer, and
exactly one terminal event. ``decide`` is pure: it yields effects (``effects.py``) and is sent
their outcomes, so the same command, config and outcomes always give the same events."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processors.foundation.config import FoundationConfig, GuardrailPolicy, Route, TenantBudget
from processors.foundation.decisions.cache import CachedAnswer, CacheKeys, find_answer, keep_answer
from processors.foundation.decisions.calls import CallSpec, Charge, Tally, call_reliably
from processors.foundation.decisions.effects import (
    UNAVAILABLE,
    ChargeBudget,
    Checkpoint,
    Decisions,
    Emit,
    Now,
    ReleaseBudget,
    ReserveBudget,
    SettleBudget,
    ask,
)
from processors.foundation.decisions.payloads import (
    budget_checked,
    completed,
    failed,
    violation_detected,
)
from processors.foundation.guardrails import GuardrailOutcome, check_input, check_output
from processors.foundation.providers import ChatMessage, Usage, cost_usd, count_tokens
from processors.foundation.request import ParsedRequest, parse_request
from processors.foundation.stores import BudgetRejection, Reservation
from streams.envelope import Envelope
from streams.errors import ErrorCode, PlatformError

__all__ = ["DEFAULT_TIMEOUT_S", "Conditions", "decide", "interrupted"]

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Conditions:
    """What the edge knows when the run starts, besides the config."""

    timeouts_s: Mapping[str, float]  # the providers that can be called, and their timeouts
    latency_ms: Mapping[str, float]  # observed latency per target


@dataclass(frozen=True)
class _Admission:
    route: Route
    reservation: Reservation | None
    degraded: bool


@dataclass
class _Run:
    command: Envelope
    config: FoundationConfig
    conditions: Conditions
    started_at: float
    tally: Tally

    def elapsed_ms(self, now: float) -> int:
        return int((now - self.started_at) * 1000)


def decide(command: Envelope, config: FoundationConfig, conditions: Conditions) -> Decisions[None]:
    """The run's events, ending with one terminal event and a checkpoint."""
    payload = command.payload
    run = _Run(command, config, conditions, (yield from ask(Now())), Tally())
    yield Emit(
        "llm.request.started",
        {
            "model": payload.get("model"),
            "mode": str(payload["mode"]),
            "message_count": len(payload["messages"]),
            "stream": bool(payload.get("stream")),
        },
    )
    try:
        yield from _serve(run)
    except PlatformError as error:
        yield from _fail(run, error)
    except Exception:
        log.exception("foundation decision bug", extra={"correlation_id": command.correlation_id})
        yield from _fail(run, PlatformError(ErrorCode.INTERNAL, "internal error"))
    yield Checkpoint()


def interrupted(command: Envelope) -> Envelope:
    """The terminal event of a run whose log shows it unfinished: its writer died or lost the
    command mid-run, so nobody knows what it would have decided; the client may retry."""
    error = PlatformError(ErrorCode.RUN_INTERRUPTED, "the run was interrupted; retry it")
    return command.derive("llm.request.failed", failed(error, latency_ms=0, attempts=0))


def _serve(run: _Run) -> Decisions[None]:
    command, config = run.command, run.config
    request = parse_request(command.payload, command.timestamp, DEFAULT_TIMEOUT_S)
    deadline = (
        request.deadline.timestamp() if request.deadline else run.started_at + DEFAULT_TIMEOUT_S
    )
    policy_name, policy = _policy(config, command.tenant_id)
    budget = config.budgets.budget_for(command.tenant_id)
    if budget is None:
        raise PlatformError(ErrorCode.UNKNOWN_TENANT, f"no budget for tenant {command.tenant_id!r}")
    guarded = check_input(request.chat.messages, request.model_hint, policy, policy_name)
    flags = yield from _violations(guarded)
    if guarded.blocked:
        raise PlatformError(ErrorCode.GUARDRAIL_BLOCKED, f"blocked by {guarded.blocked_by}")
    messages = guarded.messages
    route = config.routing.route_for(request.mode, command.tenant_id, request.model_hint)
    if route is None:
        raise PlatformError(ErrorCode.NO_ROUTE, f"no route for mode {request.mode!r}")
    keys = CacheKeys.of(command.tenant_id, route, request, messages)
    now = yield from ask(Now())
    cached = yield from find_answer(route, request, keys, now)
    if cached is not None:
        now = yield from ask(Now())
        yield Emit("llm.request.completed", _echoing(command, _from_cache(run, cached, flags, now)))
        return
    admission = yield from _admit(run, route, budget, request, messages)
    spec = CallSpec(
        command.message_id,
        run.conditions.timeouts_s,
        run.conditions.latency_ms,
        lambda model: request.for_target(model, messages),
        request.stream,
        policy,
        deadline,
        config.routing.breaker,
        config.providers.continuing(),
    )
    try:
        outcome = yield from call_reliably(admission.route, spec, run.tally)
    except PlatformError:
        if admission.reservation is not None:
            yield ReleaseBudget(admission.reservation)
        raise
    usage = _total_usage(outcome.charges)
    cost = sum(cost_usd(config.providers.price(c.target), c.usage) for c in outcome.charges)
    yield from _settle(run, admission, usage, cost)
    answer = check_output(outcome.result.text or "", policy, policy_name)
    flags += yield from _violations(answer)
    if answer.blocked:
        raise PlatformError(ErrorCode.GUARDRAIL_BLOCKED, f"answer blocked by {answer.blocked_by}")
    now = yield from ask(Now())
    done = completed(
        outcome.target,
        outcome.result,
        usage,
        cost,
        answer.text,
        latency_ms=run.elapsed_ms(now),
        attempts=run.tally.attempts,
        fallback_used=outcome.fallback_used,
        flags=flags,
        degraded=admission.degraded,
    )
    yield from keep_answer(route, request, keys, done, now)
    yield Emit("llm.request.completed", _echoing(command, done))


def _echoing(command: Envelope, completed: Mapping[str, Any]) -> dict[str, Any]:
    """The answer with the request's metadata, by which whoever asked (layer 3, a client)
    finds it; left out when there is none, as most runs have."""
    metadata = command.payload.get("metadata")
    return {**completed, "metadata": dict(metadata)} if metadata else dict(completed)


def _admit(
    run: _Run,
    route: Route,
    budget: TenantBudget,
    request: ParsedRequest,
    messages: list[ChatMessage],
) -> Decisions[_Admission]:
    config = run.config
    primary = route.policy.primary
    prompt_tokens = count_tokens(primary.model, messages)
    tokens = prompt_tokens + request.expected_completion_tokens()
    price = config.providers.price(primary)
    cost = cost_usd(price, Usage(prompt_tokens, request.expected_completion_tokens(), False))
    _check_request_caps(request, tokens, cost)
    now = yield from ask(Now())
    decision = yield from ask(ReserveBudget(run.command.tenant_id, tokens, cost, budget, now))
    if decision is UNAVAILABLE:
        reason = "budget store unavailable"
        yield Emit("budget.check.completed", budget_checked("error", tokens, cost, reason=reason))
        if config.budgets.on_store_unavailable == "fail_open":
            return _Admission(route, None, degraded=False)
        raise PlatformError(ErrorCode.DEPENDENCY_UNAVAILABLE, reason)
    if isinstance(decision, BudgetRejection):
        reason = f"{decision.limit} limit reached"
        if budget.on_exceeded == "degrade" and budget.degrade_route is not None:
            degraded = config.routing.route_by_id(budget.degrade_route)
            if degraded is not None and degraded.id != route.id:
                event = budget_checked("degraded", tokens, cost, decision.limit, reason)
                yield Emit("budget.check.completed", event)
                return _Admission(degraded, None, degraded=True)
        event = budget_checked("rejected", tokens, cost, decision.limit, reason)
        yield Emit("budget.check.completed", event)
        raise PlatformError(ErrorCode.BUDGET_EXCEEDED, reason)
    yield Emit(
        "budget.check.completed",
        {
            **budget_checked("admitted", tokens, cost, decision.window),
            "remaining_tokens": decision.remaining_tokens,
            "remaining_cost_usd": decision.remaining_cost_usd,
        },
    )
    return _Admission(route, decision, degraded=False)


def _settle(run: _Run, admission: _Admission, usage: Usage, cost: float) -> Decisions[None]:
    """Replace the estimate with the real usage; a degraded (unreserved) run is charged."""
    if admission.reservation is not None:
        yield SettleBudget(admission.reservation, usage.total_tokens, cost)
    elif admission.degraded:
        now = yield from ask(Now())
        yield ChargeBudget(run.command.tenant_id, usage.total_tokens, cost, now)


def _violations(outcome: GuardrailOutcome) -> Decisions[list[str]]:
    """Each violation an event; the rules that only flag, for the answer's ``safety_flags``."""
    for violation in outcome.violations:
        yield Emit("guardrail.violation.detected", violation_detected(violation))
    return [v.rule for v in outcome.violations if v.action == "flag"]


def _fail(run: _Run, error: PlatformError) -> Decisions[None]:
    now = yield from ask(Now())
    yield Emit("llm.request.failed", failed(error, run.elapsed_ms(now), run.tally.attempts))


def _policy(config: FoundationConfig, tenant: str) -> tuple[str, GuardrailPolicy]:
    found = config.guardrails.policy_for(tenant)
    if found is None:
        raise PlatformError(ErrorCode.UNKNOWN_TENANT, f"no guardrail policy for tenant {tenant!r}")
    return found


def _check_request_caps(request: ParsedRequest, tokens: int, cost: float) -> None:
    if request.max_total_tokens is not None and tokens > request.max_total_tokens:
        raise PlatformError(
            ErrorCode.BUDGET_EXCEEDED,
            f"estimated {tokens} tokens exceed the request's budget of {request.max_total_tokens}",
        )
    if request.max_cost_usd is not None and cost > request.max_cost_usd:
        raise PlatformError(
            ErrorCode.BUDGET_EXCEEDED,
            f"estimated ${cost:.6f} exceeds the request's budget of ${request.max_cost_usd}",
        )


def _total_usage(charges: tuple[Charge, ...]) -> Usage:
    """A continued answer's tokens: every attempt it is made of was paid for."""
    return Usage(
        sum(c.usage.prompt_tokens for c in charges),
        sum(c.usage.completion_tokens for c in charges),
        reported_by_provider=all(c.usage.reported_by_provider for c in charges),
    )


def _from_cache(run: _Run, cached: CachedAnswer, flags: list[str], now: float) -> dict[str, Any]:
    return {
        **cached.fields,
        "latency_ms": run.elapsed_ms(now),
        "cost_usd": 0.0,
        "cache_hit": True,
        "saved_cost_usd": cached.fields["cost_usd"],
        "fallback_used": False,
        "attempts": 0,
        "safety_flags": flags,
    }
