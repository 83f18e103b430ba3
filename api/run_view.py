"""A run as clients see it, folded from its events: status, output or error, usage and cost,
router decisions, guardrail flags, trace ids. One fold serves the run query
(``GET /v1/runs/{id}``, over the projected events) and the feed's ``run.state`` messages (over
live ones), so both always agree."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from schemas.chat_run import COMPLETED, DELTA, FAILED, STARTED, TERMINAL
from schemas.payloads import LlmRequestCompletedPayload, LlmRequestFailedPayload

__all__ = ["RunSummary"]

Status = Literal["running", "completed", "failed"]
SCORED = "eval.score.recorded"
JUDGED = "eval.result.recorded"  # online verdicts: per evaluator, the latest event wins


_Rank = tuple[Any, ...]
_NO_RANK: _Rank = ()


@dataclass
class RunSummary:
    """The projection's rule (``projections/migrations/0002_runs.sql``) in Python, for events
    the projector has not written yet: the outcome is the terminal event with the highest
    (timestamp, event id), which no later non-terminal event overtakes; provider and model
    come from the highest-ranked event naming a target; attempts, cache hit and fallback are
    maxima. So any order of arrival, and duplicates, give the same state as ``runs_latest``."""

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
    attempts: int = 0
    cache_hit: bool = False
    fallback_used: bool = False
    router_decisions: list[dict[str, Any]] = field(default_factory=list)
    guardrail_flags: list[dict[str, Any]] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    _started: datetime | None = field(default=None, repr=False)
    _outcome_rank: _Rank = field(default=_NO_RANK, repr=False)
    _target_rank: _Rank = field(default=_NO_RANK, repr=False)
    _decisions: dict[str, tuple[_Rank, dict[str, Any]]] = field(default_factory=dict, repr=False)
    _flags: dict[str, tuple[_Rank, dict[str, Any]]] = field(default_factory=dict, repr=False)
    _scores: dict[str, tuple[_Rank, dict[str, Any]]] = field(default_factory=dict, repr=False)
    _evals: dict[str, tuple[_Rank, dict[str, Any]]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, events: Iterable[Mapping[str, Any]]) -> RunSummary | None:
        summary: RunSummary | None = None
        for event in events:
            summary = summary or cls(str(event["correlation_id"]), str(event["tenant_id"]))
            summary.apply(event)
        return summary

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Fold one event in (in any order, any number of times); True when the status
        changed."""
        before = self.status
        self.status = self.status or "running"
        kind, payload, event_id = event["event_type"], event["payload"], str(event["event_id"])
        at = datetime.fromisoformat(str(event["timestamp"]))
        if self._started is None or at < self._started:
            self._started, self.started_at = at, str(event["timestamp"])
        trace_id = event.get("trace_id")
        if trace_id and trace_id not in self.trace_ids:
            self.trace_ids = sorted([*self.trace_ids, trace_id])
        terminal = kind in TERMINAL
        self.attempts = max(self.attempts, _attempt_of(kind, payload))
        self.cache_hit = self.cache_hit or _cache_hit(kind, payload)
        self.fallback_used = self.fallback_used or _fallback(kind, payload)
        provider, model = _target_of(kind, payload)
        target_rank = (provider != "", terminal, at, event_id)
        if target_rank > self._target_rank:
            self._target_rank = target_rank
            self.provider, self.model = provider or None, model or None
        if kind == "router.decision.made":
            decision = {k: payload[k] for k in ("attempt", "route_id", "strategy", "reason")}
            decision |= {"provider": payload["chosen_provider"], "model": payload["chosen_model"]}
            self._decisions[event_id] = ((payload["attempt"], at, event_id), decision)
            self.router_decisions = _in_order(self._decisions)
        elif kind == "guardrail.violation.detected":
            flag = {k: payload[k] for k in ("stage", "policy", "rule", "action", "score")}
            self._flags[event_id] = ((at, event_id), flag)
            self.guardrail_flags = _in_order(self._flags)
        elif kind == SCORED:
            self._score(payload, (at, event_id), str(event["timestamp"]))
        elif kind == JUDGED:
            self._judged(payload, (at, event_id))
        elif terminal and (at, event_id) > self._outcome_rank:
            self._outcome_rank = (at, event_id)
            self._end(kind, payload, str(event["timestamp"]))
        return self.status != before

    def _score(self, payload: Mapping[str, Any], rank: _Rank, at: str) -> None:
        """The latest word on each score id: a score sent again replaces it."""
        known = self._scores.get(payload["score_id"])
        if known is None or rank > known[0]:
            fields = ("score_id", "name", "value", "label", "comment", "source", "scored_by")
            score = {k: payload.get(k) for k in fields} | {"scored_at": at}
            self._scores[payload["score_id"]] = (rank, score)
            self.scores = _in_order(self._scores)

    def _judged(self, payload: Mapping[str, Any], rank: _Rank) -> None:
        """The inline checks arrive in one event, the LLM judge's verdict in a later one: each
        evaluator keeps its latest verdict, listed in the order the checks ran."""
        for position, verdict in enumerate(payload["results"]):
            known = self._evals.get(verdict["evaluator"])
            if known is None or (*rank, position) > known[0]:
                self._evals[verdict["evaluator"]] = ((*rank, position), dict(verdict))
        self.evals = _in_order(self._evals)

    def _end(self, kind: str, payload: Mapping[str, Any], at: str) -> None:
        self.ended_at = at
        self.latency_ms = payload.get("latency_ms")
        if kind == FAILED:
            failure = cast(LlmRequestFailedPayload, payload)
            self.status = "failed"
            self.error = {
                "error_code": failure["error_code"],
                "message": failure["message"],
                "retryable": failure["retryable"],
            }
            self.output, self.usage, self.cost_usd, self.saved_cost_usd = None, None, 0.0, 0.0
            return
        done = cast(LlmRequestCompletedPayload, payload)
        self.status = "completed"
        self.error = None
        calls = done.get("tool_calls_json")
        self.output = {
            "text": done.get("output_text"),
            "tool_calls": json.loads(calls) if calls else None,
            "finish_reason": done.get("finish_reason"),
            "status": done["status"],
            "safety_flags": list(done["safety_flags"]),
        }
        self.usage = {
            "prompt_tokens": done["prompt_tokens"],
            "completion_tokens": done["completion_tokens"],
            "total_tokens": done["total_tokens"],
        }
        self.cost_usd = float(done["cost_usd"])
        self.saved_cost_usd = float(done["saved_cost_usd"])

    def state(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


def _in_order(items: Mapping[str, tuple[_Rank, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [item for _, item in sorted(items.values(), key=lambda ranked: ranked[0])]


def _target_of(kind: str, payload: Mapping[str, Any]) -> tuple[str, str]:
    """The (provider, model) an event names, as the projection's ``event_target``."""
    if kind == "router.decision.made":
        return payload["chosen_provider"] or "", payload["chosen_model"] or ""
    if kind == "router.fallback.triggered":
        return payload["to_provider"] or "", payload["to_model"] or ""
    if kind in _TARGETED:
        return payload.get("provider") or "", payload.get("model") or ""
    if kind == STARTED:
        return "", payload.get("model") or ""
    return "", ""


def _attempt_of(kind: str, payload: Mapping[str, Any]) -> int:
    if kind in TERMINAL:
        return int(payload.get("attempts") or 0)
    if kind in _NUMBERED:
        return int(payload.get("attempt") or 0)
    return 0


def _cache_hit(kind: str, payload: Mapping[str, Any]) -> bool:
    if kind == COMPLETED:
        return bool(payload["cache_hit"])
    return kind == "cache.lookup.completed" and payload.get("outcome") == "hit"


def _fallback(kind: str, payload: Mapping[str, Any]) -> bool:
    if kind == COMPLETED:
        return bool(payload.get("fallback_used"))
    return kind == "router.fallback.triggered"


_TARGETED = frozenset({COMPLETED, FAILED, "llm.attempt.failed", DELTA})
_NUMBERED = frozenset({"router.decision.made", "llm.attempt.failed", DELTA})
