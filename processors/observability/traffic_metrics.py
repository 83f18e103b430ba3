"""LLM traffic as Prometheus metrics, counted from the terminal and side events of each run on
``events.llm`` (after the client has its answer, so the request path pays nothing).

Requests, cost, cache hits, fallbacks, guardrail violations and provider attempt failures are
counters by tenant; latency and token usage are the OpenTelemetry GenAI semantic conventions'
``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage`` histograms, with a
``tenant`` label added so SLOs can be per tenant. The latency buckets are the bounds the
projections count under (``LATENCY_BUCKETS_MS``), so every latency SLO threshold is a bucket
bound. A run that fails before it reaches a provider counts under provider and model ``""``.

Counting happens once per delivery: a redelivered event (after a crash) counts again, as
Prometheus counters of any at-least-once consumer do."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from processors.observability.config import LATENCY_BUCKETS_MS
from streams.envelope import Envelope

__all__ = [
    "ATTEMPT_FAILURES",
    "COUNTED",
    "DURATION",
    "FALLBACKS",
    "GUARDRAIL_VIOLATIONS",
    "REQUESTS",
    "VERDICTS",
    "TrafficMetrics",
]

_COMPLETED = "llm.request.completed"
_FAILED = "llm.request.failed"
_FALLBACK = "router.fallback.triggered"
_VIOLATION = "guardrail.violation.detected"
_ATTEMPT_FAILED = "llm.attempt.failed"
_VERDICTS = "eval.result.recorded"
COUNTED = frozenset({_COMPLETED, _FAILED, _FALLBACK, _VIOLATION, _ATTEMPT_FAILED})
"""The message types the processor reads to count them (it counts the verdicts it writes too)."""

# The names Prometheus shows that rules select (a histogram adds _bucket, _count and _sum).
REQUESTS = "platform_llm_requests_total"
DURATION = "gen_ai_client_operation_duration_seconds"
FALLBACKS = "platform_llm_fallbacks_total"
GUARDRAIL_VIOLATIONS = "platform_guardrail_violations_total"
ATTEMPT_FAILURES = "platform_llm_attempt_failures_total"
VERDICTS = "platform_eval_verdicts_total"

_OPERATION = "chat"  # gen_ai.operation.name: every run is a chat completion
_GEN_AI = ("tenant", "gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
# The semantic conventions' advice for gen_ai.client.token.usage.
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)

_Metric = TypeVar("_Metric", Counter, Histogram)


class _Children(Generic[_Metric]):
    """A labelled metric's children by label values, each looked up once: ``labels()`` takes
    a lock and formats every value, microseconds per call."""

    def __init__(self, metric: _Metric) -> None:
        self._metric: _Metric = metric
        self._known: dict[tuple[str, ...], _Metric] = {}

    def __call__(self, *values: str) -> _Metric:
        child = self._known.get(values)
        if child is None:
            child = self._known[values] = self._metric.labels(*values)
        return child


def _counter(
    registry: CollectorRegistry, name: str, what: str, labels: tuple[str, ...]
) -> _Children[Counter]:
    # prometheus_client appends _total to a counter's name itself.
    return _Children(Counter(name.removesuffix("_total"), what, labels, registry=registry))


class TrafficMetrics:
    """The metrics, registered in ``registry`` (a private one in tests)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        target = ("tenant", "provider", "model")
        self._requests = _counter(
            registry, REQUESTS, "Finished LLM runs", (*target, "outcome", "error_code")
        )
        self._cost = _counter(
            registry, "platform_llm_cost_usd_total", "Cost of completed runs in USD", target
        )
        self._cache_hits = _counter(
            registry, "platform_llm_cache_hits_total", "Runs answered from the cache", target
        )
        self._fallbacks = _counter(
            registry,
            FALLBACKS,
            "Fallbacks, under the target given up on",
            (*target, "reason"),
        )
        self._violations = _counter(
            registry,
            GUARDRAIL_VIOLATIONS,
            "Guardrail rule violations",
            ("tenant", "stage", "rule", "action"),
        )
        self._attempt_failures = _counter(
            registry,
            ATTEMPT_FAILURES,
            "Failed provider attempts (each retry counts)",
            (*target, "failure_kind"),
        )
        self._verdicts = _counter(
            registry,
            VERDICTS,
            "Online evaluators' verdicts on runs",
            (*target, "evaluator", "passed"),
        )
        self._duration = _Children(
            Histogram(
                DURATION,
                "GenAI operation duration in seconds (gen_ai.client.operation.duration)",
                (*_GEN_AI, "error_type"),
                registry=registry,
                buckets=tuple(bound / 1000 for bound in LATENCY_BUCKETS_MS),
            )
        )
        self._tokens = _Children(
            Histogram(
                "gen_ai_client_token_usage",
                "GenAI tokens used per run (gen_ai.client.token.usage)",
                (*_GEN_AI, "gen_ai_token_type"),
                registry=registry,
                buckets=_TOKEN_BUCKETS,
            )
        )
        self._by_type: dict[str, Callable[[str, Mapping[str, Any]], None]] = {
            _COMPLETED: self._completed,
            _FAILED: self._failed,
            _FALLBACK: self._fallback,
            _VIOLATION: self._violation,
            _ATTEMPT_FAILED: self._attempt_failed,
            _VERDICTS: self._verdict,
        }

    def count(self, event: Envelope) -> None:
        counted = self._by_type.get(event.message_type)
        if counted is not None:
            counted(event.tenant_id, event.payload)

    def _completed(self, tenant: str, run: Mapping[str, Any]) -> None:
        provider, model = run["provider"], run["model"]
        self._requests(tenant, provider, model, "completed", "").inc()
        self._duration(tenant, _OPERATION, provider, model, "").observe(run["latency_ms"] / 1000)
        self._tokens(tenant, _OPERATION, provider, model, "input").observe(run["prompt_tokens"])
        self._tokens(tenant, _OPERATION, provider, model, "output").observe(
            run["completion_tokens"]
        )
        if run["cost_usd"] > 0:  # a counter refuses to go down; a refund is not a run's cost
            self._cost(tenant, provider, model).inc(run["cost_usd"])
        if run["cache_hit"]:
            self._cache_hits(tenant, provider, model).inc()

    def _failed(self, tenant: str, run: Mapping[str, Any]) -> None:
        provider, model = run.get("provider") or "", run.get("model") or ""
        code = run["error_code"]
        self._requests(tenant, provider, model, "failed", code).inc()
        self._duration(tenant, _OPERATION, provider, model, code).observe(run["latency_ms"] / 1000)

    def _fallback(self, tenant: str, fallback: Mapping[str, Any]) -> None:
        given_up = (fallback["from_provider"], fallback["from_model"])
        self._fallbacks(tenant, *given_up, fallback["reason"]).inc()

    def _violation(self, tenant: str, violation: Mapping[str, Any]) -> None:
        stage, rule, action = violation["stage"], violation["rule"], violation["action"]
        self._violations(tenant, stage, rule, action).inc()

    def _attempt_failed(self, tenant: str, attempt: Mapping[str, Any]) -> None:
        target = (attempt["provider"], attempt["model"])
        self._attempt_failures(tenant, *target, attempt["failure_kind"]).inc()

    def _verdict(self, tenant: str, judged: Mapping[str, Any]) -> None:
        target = (judged.get("provider") or "", judged.get("model") or "")
        for verdict in judged["results"]:
            passed = "true" if verdict["passed"] else "false"
            self._verdicts(tenant, *target, verdict["evaluator"], passed).inc()
