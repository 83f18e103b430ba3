"""Schema-valid synthetic runs: the workload the projector benchmark and tests share.

Each run is the event sequence the foundation layer emits (docs/FOUNDATION.md): started, input
guardrails, cache lookup, budget check, one decision per attempt with failures, breaker changes
and fallbacks between them, stream deltas, output guardrails, one terminal event. Outcomes,
tenants, targets, latencies and tokens vary, all drawn from ``random.Random(seed)``, so the same
arguments always give the same envelopes (ids and timestamps included). Every envelope fits its
schema: the serde validates on encode."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streams.envelope import Envelope, derived_id

TENANTS = ("acme", "globex", "initech", "umbrella")
TARGETS = (
    ("openai", "gpt-4.1-mini"),
    ("openai", "gpt-4.1"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("simulated", "sim-1"),
)
_PRICE_PER_MTOK = {"gpt-4.1-mini": (0.4, 1.6), "gpt-4.1": (2.0, 8.0), "sim-1": (0.1, 0.1)}
_PRICE_PER_MTOK.update({"claude-sonnet-4-5": (3.0, 15.0), "claude-haiku-4-5": (1.0, 5.0)})
_FAILURES = ("timeout", "rate_limited", "server_error", "connection")


@dataclass
class _Run:
    """Builds one run's envelopes in order; each gets the next position's deterministic id."""

    correlation_id: str
    tenant: str
    at: datetime
    rng: random.Random
    events: list[Envelope] = field(default_factory=list)

    def emit(self, message_type: str, payload: dict[str, Any], after_ms: float = 1.0) -> None:
        self.at += timedelta(microseconds=int(after_ms * 1000))
        parent = self.events[-1].message_id if self.events else None
        self.events.append(
            Envelope(
                message_type=message_type,
                message_id=derived_id(self.correlation_id, len(self.events)),
                timestamp=self.at,
                correlation_id=self.correlation_id,
                tenant_id=self.tenant,
                payload=payload,
                service_name="foundation",
                layer=1,
                env="dev",
                causation_id=parent,
            )
        )


def mixed_events(
    count: int, start: datetime, seed: int = 0, spacing_ms: float = 50.0
) -> list[Envelope]:
    """``count`` envelopes of whole runs (the last run may be cut short), runs ``spacing_ms``
    apart from ``start``, in the order the foundation layer would emit them."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    events: list[Envelope] = []
    for index in _count():
        run = _Run(
            f"req_{seed:04x}{index:012x}",
            rng.choice(TENANTS),
            start + timedelta(milliseconds=index * spacing_ms),
            rng,
        )
        _play(run)
        events.extend(run.events[: count - len(events)])
        if len(events) >= count:
            return events
    raise AssertionError("unreachable")


def _count() -> Iterator[int]:
    index = 0
    while True:
        yield index
        index += 1


def _play(run: _Run) -> None:
    rng = run.rng
    stream = rng.random() < 0.2
    hint = rng.choice((None, *[model for _, model in TARGETS]))
    mode = rng.choices(("direct", "workflow", "rag"), (8, 1, 1))[0]
    run.emit(
        "llm.request.started", {"model": hint, "mode": mode, "message_count": 2, "stream": stream}
    )
    if rng.random() < 0.08:
        action = rng.choice(("redact", "block", "flag"))
        run.emit("guardrail.violation.detected", _violation(run, "input", action))
        if action == "block":
            return _fail(run, "GUARDRAIL_BLOCKED", None, attempts=0)
    hit = rng.random() < 0.15
    saved = round(rng.uniform(0.0001, 0.01), 6) if hit else 0.0
    run.emit("cache.lookup.completed", _cache(run, hit, saved))
    if hit:
        return _complete(run, rng.choice(TARGETS), attempts=0, cache_hit=True, saved=saved)
    decision = rng.choices(("admitted", "rejected", "degraded"), (90, 5, 5))[0]
    run.emit("budget.check.completed", _budget(rng, decision))
    if decision == "rejected":
        return _fail(run, "BUDGET_EXCEEDED", None, attempts=0)
    _call(run, stream)


def _call(run: _Run, stream: bool) -> None:
    rng = run.rng
    targets = rng.sample(TARGETS, 3)
    attempt = 0
    cut_after = 0  # characters a stream cut short had streamed: the next attempt resumes there
    for index, target in enumerate(targets):
        attempt += 1
        reason = "primary" if index == 0 else "fallback after timeout"
        run.emit("router.decision.made", _decision(targets, target, reason, attempt))
        if cut_after:
            run.emit("llm.stream.resumed", _resumed(target, attempt, cut_after))
        if rng.random() < 0.85:
            if stream:
                for delta in range(rng.randint(2, 4)):
                    run.emit("llm.delta.generated", _delta(target, attempt, delta), after_ms=30)
            return _complete(run, target, attempt, cache_hit=False, fallback=index > 0)
        if stream and _cut_mid_stream(run, attempt):
            run.emit("llm.delta.generated", _delta(target, attempt, 0), after_ms=30)
            cut_after += len(_delta(target, attempt, 0)["text"])
        kind = rng.choice(_FAILURES)
        latency = rng.randint(50, 3000)
        run.emit("llm.attempt.failed", _attempt_failed(target, attempt, kind, latency), latency)
        if rng.random() < 0.3:
            run.emit("breaker.state.changed", _breaker(target))
        if index + 1 < len(targets):
            run.emit("router.fallback.triggered", _fallback(target, targets[index + 1], kind))
    _fail(run, "PROVIDER_TIMEOUT", targets[-1], attempts=attempt)


def _complete(
    run: _Run,
    target: tuple[str, str],
    attempts: int,
    cache_hit: bool,
    fallback: bool = False,
    saved: float = 0.0,
) -> None:
    rng = run.rng
    prompt, completion = rng.randint(20, 4000), rng.randint(1, 1500)
    price_in, price_out = _PRICE_PER_MTOK[target[1]]
    cost = 0.0 if cache_hit else (prompt * price_in + completion * price_out) / 1_000_000
    flags = [] if rng.random() > 0.05 else ["pii.email"]
    if flags:
        run.emit("guardrail.violation.detected", _violation(run, "output", "flag"))
    latency = 2 if cache_hit else int(rng.lognormvariate(6.5, 0.6))
    run.emit(
        "llm.request.completed",
        {
            "provider": target[0],
            "model": target[1],
            "latency_ms": latency,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cost_usd": cost,
            "cache_hit": cache_hit,
            "saved_cost_usd": saved,
            "fallback_used": fallback,
            "attempts": attempts,
            "status": "ok",
            "output_text": f"Answer {run.correlation_id}: " + "lorem ipsum " * rng.randint(1, 12),
            "tool_calls_json": None,
            "finish_reason": "stop",
            "safety_flags": flags,
        },
        latency,
    )


def _fail(run: _Run, code: str, target: tuple[str, str] | None, attempts: int) -> None:
    run.emit(
        "llm.request.failed",
        {
            "error_code": code,
            "message": f"{code.lower().replace('_', ' ')}",
            "retryable": code == "PROVIDER_TIMEOUT",
            "provider": target[0] if target else None,
            "model": target[1] if target else None,
            "latency_ms": run.rng.randint(1, 5000),
            "attempts": attempts,
        },
    )


def _violation(run: _Run, stage: str, action: str) -> dict[str, Any]:
    rule = run.rng.choice(("pii.email", "pii.credit_card", "injection.role_override", "terms.deny"))
    digest = hashlib.sha256(f"{run.correlation_id}{stage}".encode()).hexdigest()
    return {
        "stage": stage,
        "policy": "default",
        "rule": rule,
        "action": action,
        "spans": [{"message_index": 0, "start": 3, "end": 17}],
        "value_hash": digest,
        "score": 0.91 if rule.startswith("injection") else None,
    }


def _cache(run: _Run, hit: bool, saved: float) -> dict[str, Any]:
    return {
        "cache": "exact",
        "outcome": "hit" if hit else run.rng.choice(("miss", "miss", "bypass")),
        "key_hash": hashlib.sha256(run.correlation_id.encode()).hexdigest(),
        "similarity": None,
        "saved_cost_usd": saved,
    }


def _budget(rng: random.Random, decision: str) -> dict[str, Any]:
    return {
        "decision": decision,
        "policy": "default",
        "window": "day",
        "reserved_tokens": 0 if decision == "rejected" else rng.randint(100, 5000),
        "reserved_cost_usd": 0.0 if decision == "rejected" else 0.002,
        "remaining_tokens": rng.randint(0, 1_000_000),
        "remaining_cost_usd": round(rng.uniform(0, 50), 4),
        "reason": "day token cap" if decision != "admitted" else None,
    }


def _decision(
    targets: list[tuple[str, str]], chosen: tuple[str, str], reason: str, attempt: int
) -> dict[str, Any]:
    return {
        "route_id": "default",
        "strategy": "ordered",
        "candidates": [
            {"provider": p, "model": m, "eligible": True, "skip_reason": None} for p, m in targets
        ],
        "chosen_provider": chosen[0],
        "chosen_model": chosen[1],
        "reason": reason,
        "attempt": attempt,
    }


def _attempt_failed(
    target: tuple[str, str], attempt: int, kind: str, latency: int
) -> dict[str, Any]:
    return {
        "provider": target[0],
        "model": target[1],
        "attempt": attempt,
        "failure_kind": kind,
        "status": {"rate_limited": 429, "server_error": 503}.get(kind),
        "latency_ms": latency,
        "retry_after_ms": 1000 if kind == "rate_limited" else None,
        "detail": f"{kind} from {target[0]}",
    }


def _breaker(target: tuple[str, str]) -> dict[str, Any]:
    return {
        "provider": target[0],
        "model": target[1],
        "from_state": "closed",
        "to_state": "open",
        "failures": 5,
    }


def _fallback(source: tuple[str, str], target: tuple[str, str], kind: str) -> dict[str, Any]:
    return {
        "from_provider": source[0],
        "from_model": source[1],
        "to_provider": target[0],
        "to_model": target[1],
        "reason": kind,
    }


def _cut_mid_stream(run: _Run, attempt: int) -> bool:
    """Half the failed streamed attempts were cut after some text; drawn apart from the run's
    own sequence, so the rest of the workload is what it was before cuts were modelled."""
    return random.Random(f"{run.correlation_id}/{attempt}").random() < 0.5  # noqa: S311


def _resumed(target: tuple[str, str], attempt: int, after_chars: int) -> dict[str, Any]:
    return {
        "provider": target[0],
        "model": target[1],
        "attempt": attempt,
        "continues_attempt": attempt - 1,
        "after_chars": after_chars,
        "sent_chars": after_chars,
    }


def _delta(target: tuple[str, str], attempt: int, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "text": f"chunk {index} ",
        "tool_calls_json": None,
        "provider": target[0],
        "model": target[1],
        "attempt": attempt,
    }
