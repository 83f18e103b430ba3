"""LLM traffic counted as Prometheus metrics from the events of finished runs, read back from a
private registry; and the processor that wires it still judges completed runs only."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.utils import floatToGoString

from processors.observability.config import LATENCY_BUCKETS_MS
from processors.observability.processor import PROCESSOR
from processors.observability.traffic_metrics import COUNTED, TrafficMetrics
from schemas import default_catalog
from streams.envelope import Envelope, WriterIdentity, new_message
from tests.factories import completed_payload, sample_envelope

WRITER = WriterIdentity("foundation", 1, "dev")
GEN_AI = {"tenant": "acme", "gen_ai_operation_name": "chat"}


def event(message_type: str, payload: dict[str, Any], tenant: str = "acme") -> Envelope:
    return new_message(
        message_type, payload, correlation_id="req_1", tenant_id=tenant, writer=WRITER
    )


def completed(**changes: Any) -> Envelope:
    usage = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
    target = {"provider": "openai", "model": "gpt-4o-mini", "cost_usd": 0.25, "latency_ms": 800}
    payload = completed_payload(**{**usage, **target, **changes})
    return event("llm.request.completed", payload)


def failed(code: str, provider: str | None = "openai", latency_ms: int = 30_000) -> Envelope:
    payload = {
        "error_code": code,
        "message": "no answer",
        "retryable": True,
        "provider": provider,
        "model": "gpt-4o-mini" if provider else None,
        "latency_ms": latency_ms,
        "attempts": 2,
    }
    return event("llm.request.failed", payload)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def counted(registry: CollectorRegistry, *events: Envelope) -> CollectorRegistry:
    metrics = TrafficMetrics(registry)
    for one in events:
        metrics.count(one)
    return registry


def test_runs_count_by_tenant_target_outcome_and_code(registry: CollectorRegistry) -> None:
    counted(
        registry,
        completed(),
        completed(),
        completed(cache_hit=True, cost_usd=0.0),
        failed("PROVIDER_TIMEOUT"),
        failed("BUDGET_EXCEEDED", provider=None),
    )
    target = {"tenant": "acme", "provider": "openai", "model": "gpt-4o-mini"}
    requests = "platform_llm_requests_total"
    ok = {**target, "outcome": "completed", "error_code": ""}
    assert registry.get_sample_value(requests, ok) == 3
    timeout = {**target, "outcome": "failed", "error_code": "PROVIDER_TIMEOUT"}
    assert registry.get_sample_value(requests, timeout) == 1
    budget = {"tenant": "acme", "provider": "", "model": ""}
    assert (
        registry.get_sample_value(
            requests, {**budget, "outcome": "failed", "error_code": "BUDGET_EXCEEDED"}
        )
        == 1
    )
    assert registry.get_sample_value("platform_llm_cost_usd_total", target) == 0.5
    assert registry.get_sample_value("platform_llm_cache_hits_total", target) == 1


def test_duration_follows_the_gen_ai_conventions_with_every_slo_threshold_a_bucket(
    registry: CollectorRegistry,
) -> None:
    counted(registry, completed(latency_ms=800), completed(latency_ms=10_000), failed("INTERNAL"))
    name = "gen_ai_client_operation_duration_seconds"
    ok = {**GEN_AI, "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini"}
    fine = {**ok, "error_type": ""}
    assert registry.get_sample_value(f"{name}_count", fine) == 2
    assert registry.get_sample_value(f"{name}_sum", fine) == pytest.approx(10.8)
    for bound in LATENCY_BUCKETS_MS:  # a latency SLO's threshold is one of these
        le = floatToGoString(bound / 1000)
        expected = (bound >= 800) + (bound >= 10_000)
        assert registry.get_sample_value(f"{name}_bucket", {**fine, "le": le}) == expected
    failure = {**ok, "error_type": "INTERNAL"}
    assert registry.get_sample_value(f"{name}_count", failure) == 1
    assert registry.get_sample_value(f"{name}_sum", failure) == 30


def test_token_usage_by_type(registry: CollectorRegistry) -> None:
    counted(registry, completed(prompt_tokens=12, completion_tokens=30), completed())
    target = {**GEN_AI, "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini"}
    name = "gen_ai_client_token_usage"
    used = {"input": 24, "output": 60}
    for kind, tokens in used.items():
        labels = {**target, "gen_ai_token_type": kind}
        assert registry.get_sample_value(f"{name}_sum", labels) == tokens
        assert registry.get_sample_value(f"{name}_count", labels) == 2
        assert registry.get_sample_value(f"{name}_bucket", {**labels, "le": "16.0"}) == (
            2 if kind == "input" else 0
        )


def test_fallbacks_violations_and_attempt_failures(registry: CollectorRegistry) -> None:
    fallback = {
        "from_provider": "openai",
        "from_model": "gpt-4o-mini",
        "to_provider": "anthropic",
        "to_model": "claude-haiku",
        "reason": "timeout",
    }
    violation = {
        "stage": "input",
        "policy": "default",
        "rule": "pii",
        "action": "redact",
        "spans": [],
        "value_hash": "h",
    }
    attempt = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "attempt": 1,
        "failure_kind": "timeout",
        "latency_ms": 5000,
        "detail": "no answer in 5s",
    }
    counted(
        registry,
        event("router.fallback.triggered", fallback),
        event("guardrail.violation.detected", violation, tenant="beta"),
        event("llm.attempt.failed", attempt),
        event("llm.attempt.failed", attempt),
    )
    target = {"tenant": "acme", "provider": "openai", "model": "gpt-4o-mini"}
    fallbacks = {**target, "reason": "timeout"}
    assert registry.get_sample_value("platform_llm_fallbacks_total", fallbacks) == 1
    flagged = {"tenant": "beta", "stage": "input", "rule": "pii", "action": "redact"}
    assert registry.get_sample_value("platform_guardrail_violations_total", flagged) == 1
    timeouts = {**target, "failure_kind": "timeout"}
    assert registry.get_sample_value("platform_llm_attempt_failures_total", timeouts) == 2
    requests = {**target, "outcome": "completed", "error_code": ""}
    assert registry.get_sample_value("platform_llm_requests_total", requests) is None


def test_any_schema_valid_event_of_a_counted_type_counts_and_others_are_ignored(
    registry: CollectorRegistry,
) -> None:
    catalog = default_catalog()
    metrics = TrafficMetrics(registry)
    for message_type in sorted(COUNTED):
        for n in range(20):  # random payloads: negative costs, empty names, missing options
            metrics.count(sample_envelope(catalog.latest(message_type), n=n))
    before = [s for m in registry.collect() for s in m.samples]
    metrics.count(sample_envelope(catalog.latest("llm.request.started")))
    assert [s for m in registry.collect() for s in m.samples] == before


def test_the_processor_counts_every_outcome_and_judges_completed_runs_only() -> None:
    assert {"llm.request.completed", "llm.request.failed"} <= PROCESSOR.accepts
    handle = PROCESSOR.handler
    [verdict] = handle(completed())  # type: ignore[misc]
    assert verdict.message_type == "eval.result.recorded"
    assert handle(failed("PROVIDER_TIMEOUT")) == []
