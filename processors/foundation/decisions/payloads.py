"""The payloads of the events a run emits, built from the decisions' own values (pure)."""

from __future__ import annotations

import json
from typing import Any

from processors.foundation.config import Route, RouteTarget
from processors.foundation.guardrails import Violation
from processors.foundation.providers import ChatResult, ProviderError, Usage
from processors.foundation.router import Candidate, target_key
from processors.foundation.stores import Transition
from schemas.payloads import (
    BreakerStateChangedPayload,
    BudgetCheckCompletedPayload,
    BudgetDecision,
    CacheKind,
    CacheLookupCompletedPayload,
    CacheOutcome,
    GuardrailViolationDetectedPayload,
    LlmAttemptFailedPayload,
    LlmDeltaGeneratedPayload,
    LlmRequestCompletedPayload,
    LlmRequestFailedPayload,
    LlmStreamResumedPayload,
    RouterDecisionMadePayload,
    RouterFallbackTriggeredPayload,
)
from streams.errors import PlatformError

__all__ = [
    "attempt_failed",
    "breaker_changed",
    "budget_checked",
    "cache_looked_up",
    "completed",
    "decision_made",
    "delta_generated",
    "failed",
    "fallback_triggered",
    "stream_resumed",
    "violation_detected",
]


def failed(error: PlatformError, latency_ms: int, attempts: int) -> LlmRequestFailedPayload:
    return {
        "error_code": error.code.value,
        "message": error.message,
        "retryable": error.retryable,
        "provider": None,
        "model": None,
        "latency_ms": latency_ms,
        "attempts": attempts,
    }


def completed(
    target: RouteTarget,
    result: ChatResult,
    usage: Usage,
    cost: float,
    text: str,
    *,
    latency_ms: int,
    attempts: int,
    fallback_used: bool,
    flags: list[str],
    degraded: bool,
) -> LlmRequestCompletedPayload:
    return {
        "provider": target.provider,
        "model": target.model,
        "latency_ms": latency_ms,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost_usd": cost,
        "cache_hit": False,
        "saved_cost_usd": 0.0,
        "fallback_used": fallback_used,
        "attempts": attempts,
        "status": "degraded" if degraded else "ok",
        "output_text": text if result.text is not None else None,
        "tool_calls_json": json.dumps(result.tool_calls) if result.tool_calls else None,
        "finish_reason": result.finish_reason,
        "safety_flags": flags,
    }


def cache_looked_up(
    cache: CacheKind,
    outcome: CacheOutcome,
    key: str,
    saved_cost_usd: float = 0.0,
    similarity: float | None = None,
) -> CacheLookupCompletedPayload:
    return {
        "cache": cache,
        "outcome": outcome,
        "key_hash": key.split(":", 1)[-1],
        "similarity": similarity,
        "saved_cost_usd": saved_cost_usd,
    }


def budget_checked(
    decision: BudgetDecision,
    tokens: int,
    cost: float,
    window: str | None = None,
    reason: str | None = None,
) -> BudgetCheckCompletedPayload:
    return {
        "decision": decision,
        "policy": "budgets.yaml",
        "window": window,
        "reserved_tokens": tokens if decision == "admitted" else 0,
        "reserved_cost_usd": cost if decision == "admitted" else 0.0,
        "remaining_tokens": None,
        "remaining_cost_usd": None,
        "reason": reason,
    }


def violation_detected(violation: Violation) -> GuardrailViolationDetectedPayload:
    return {
        "stage": violation.stage,
        "policy": violation.policy,
        "rule": violation.rule,
        "action": violation.action,
        "spans": [{"message_index": i, "start": s, "end": e} for i, s, e in violation.spans],
        "value_hash": violation.value_hash,
        "score": violation.score,
    }


def fallback_triggered(
    previous: RouteTarget, target: RouteTarget, reason: str
) -> RouterFallbackTriggeredPayload:
    return {
        "from_provider": previous.provider,
        "from_model": previous.model,
        "to_provider": target.provider,
        "to_model": target.model,
        "reason": reason,
    }


def decision_made(
    route: Route,
    candidates: list[Candidate],
    skipped: dict[str, str],
    chosen: RouteTarget,
    reason: str,
    attempt: int,
) -> RouterDecisionMadePayload:
    return {
        "route_id": route.id,
        "strategy": route.strategy,
        "candidates": [
            {
                "provider": c.target.provider,
                "model": c.target.model,
                "eligible": c.eligible and target_key(c.target) not in skipped,
                "skip_reason": c.skip_reason or skipped.get(target_key(c.target)),
            }
            for c in candidates
        ],
        "chosen_provider": chosen.provider,
        "chosen_model": chosen.model,
        "reason": reason,
        "attempt": attempt,
    }


def attempt_failed(
    target: RouteTarget, attempt: int, error: ProviderError, latency_ms: int
) -> LlmAttemptFailedPayload:
    return {
        "provider": target.provider,
        "model": target.model,
        "attempt": attempt,
        "failure_kind": error.kind.value,
        "status": error.status,
        "latency_ms": latency_ms,
        "retry_after_ms": int(error.retry_after_s * 1000)
        if error.retry_after_s is not None
        else None,
        "detail": error.detail[:500],
    }


def delta_generated(
    index: int,
    text: str,
    tool_calls: list[dict[str, Any]] | None,
    target: RouteTarget,
    attempt: int,
) -> LlmDeltaGeneratedPayload:
    return {
        "index": index,
        "text": text or None,
        "tool_calls_json": json.dumps(tool_calls) if tool_calls else None,
        "provider": target.provider,
        "model": target.model,
        "attempt": attempt,
    }


def stream_resumed(
    target: RouteTarget, attempt: int, continues_attempt: int, after_chars: int, sent_chars: int
) -> LlmStreamResumedPayload:
    return {
        "provider": target.provider,
        "model": target.model,
        "attempt": attempt,
        "continues_attempt": continues_attempt,
        "after_chars": after_chars,
        "sent_chars": sent_chars,
    }


def breaker_changed(target: RouteTarget, transition: Transition) -> BreakerStateChangedPayload:
    return {
        "provider": target.provider,
        "model": target.model,
        "from_state": transition.from_state,
        "to_state": transition.to_state,
        "failures": transition.failures,
    }
