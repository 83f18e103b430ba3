"""A run as clients see it, folded from its events in log order: status, output or error,
usage and cost, router decisions, guardrail flags, trace ids. One fold serves the run query
(``GET /v1/runs/{id}``, over the projected events) and the feed's ``run.state`` messages (over
live ones), so both always agree."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from schemas.chat_run import FAILED, TERMINAL
from streams.envelope import Envelope

__all__ = ["RunSummary", "envelope_json"]

Status = Literal["running", "completed", "failed"]


def envelope_json(envelope: Envelope) -> dict[str, Any]:
    """The envelope as JSON, in the wire's field names (``event_id``, ``event_type``, ...)."""
    return {
        "event_id": envelope.message_id,
        "event_type": envelope.message_type,
        "schema_version": envelope.schema_version,
        "timestamp": envelope.timestamp.isoformat(),
        "layer": envelope.layer,
        "service_name": envelope.service_name,
        "env": envelope.env,
        "trace_id": envelope.trace_id,
        "span_id": envelope.span_id,
        "correlation_id": envelope.correlation_id,
        "tenant_id": envelope.tenant_id,
        "causation_id": envelope.causation_id,
        "payload": json.loads(json.dumps(envelope.payload, default=_jsonable)),
    }


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass
class RunSummary:
    correlation_id: str
    tenant_id: str
    status: Status | None = None  # "running" from the first event on
    started_at: str | None = None
    ended_at: str | None = None
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    cost_usd: float = 0.0
    saved_cost_usd: float = 0.0
    provider: str | None = None
    model: str | None = None
    latency_ms: int | None = None
    attempts: int | None = None
    cache_hit: bool | None = None
    router_decisions: list[dict[str, Any]] = field(default_factory=list)
    guardrail_flags: list[dict[str, Any]] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, events: Iterable[Mapping[str, Any]]) -> RunSummary | None:
        summary: RunSummary | None = None
        for event in events:
            summary = summary or cls(str(event["correlation_id"]), str(event["tenant_id"]))
            summary.apply(event)
        return summary

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Fold one event in; True when the status changed."""
        before = self.status
        self.status = self.status or "running"
        kind, payload = event["event_type"], event["payload"]
        self.started_at = self.started_at or str(event["timestamp"])
        trace_id = event.get("trace_id")
        if trace_id and trace_id not in self.trace_ids:
            self.trace_ids.append(trace_id)
        if kind == "router.decision.made":
            self.router_decisions.append(
                {k: payload[k] for k in ("attempt", "route_id", "strategy", "reason")}
                | {"provider": payload["chosen_provider"], "model": payload["chosen_model"]}
            )
        elif kind == "guardrail.violation.detected":
            self.guardrail_flags.append(
                {k: payload[k] for k in ("stage", "policy", "rule", "action", "score")}
            )
        elif kind in TERMINAL:
            self._end(kind, payload, str(event["timestamp"]))
        return self.status != before

    def _end(self, kind: str, payload: Mapping[str, Any], at: str) -> None:
        self.ended_at = at
        self.provider, self.model = payload.get("provider"), payload.get("model")
        self.latency_ms, self.attempts = payload.get("latency_ms"), payload.get("attempts")
        if kind == FAILED:
            self.status = "failed"
            self.error = {k: payload[k] for k in ("error_code", "message", "retryable")}
            return
        self.status = "completed"
        calls = payload.get("tool_calls_json")
        self.output = {
            "text": payload.get("output_text"),
            "tool_calls": json.loads(calls) if calls else None,
            "finish_reason": payload.get("finish_reason"),
            "status": payload.get("status"),
            "safety_flags": list(payload.get("safety_flags") or []),
        }
        self.usage = {
            k: int(payload[k]) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        }
        self.cost_usd = float(payload["cost_usd"])
        self.saved_cost_usd = float(payload["saved_cost_usd"])
        self.cache_hit = bool(payload["cache_hit"])

    def state(self) -> dict[str, Any]:
        return asdict(self)
