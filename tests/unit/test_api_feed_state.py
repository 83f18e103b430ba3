"""The feed's bookkeeping: resume tokens, the per-tenant buffer's coverage, and the run fold
behind ``run.state`` and ``GET /v1/runs``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from api.recent_events import (
    FeedEvent,
    Mark,
    RawEvent,
    RecentEvents,
    decode_token,
    encode_token,
    merged,
)
from api.run_view import RunSummary


def event(kind: str, payload: dict[str, Any], run: str = "r1", tenant: str = "t") -> dict[str, Any]:
    return {
        "event_id": f"{run}-{kind}-{len(payload)}",
        "event_type": kind,
        "timestamp": "2026-11-26T12:00:00+00:00",
        "trace_id": "ab" * 16,
        "correlation_id": run,
        "tenant_id": tenant,
        "payload": payload,
    }


def test_tokens_round_trip_and_garbage_is_refused() -> None:
    positions = {("events.llm", 0): Mark(12, 1_700_000), ("events.llm", 3): Mark(0)}
    assert decode_token(encode_token(positions)) == positions
    for garbage in ("", "not-base64!", encode_token({("e", 0): Mark(1)})[:-3], "W1stMV1d"):
        with pytest.raises(ValueError):
            decode_token(garbage)


def test_merged_keeps_the_later_mark_per_partition() -> None:
    a = {("e", 0): Mark(5, 50), ("e", 1): Mark(9, 90)}
    b = {("e", 0): Mark(7, 70), ("e", 2): Mark(1, 10)}
    assert merged(a, b) == {("e", 0): Mark(7, 70), ("e", 1): Mark(9, 90), ("e", 2): Mark(1, 10)}


def test_the_buffer_knows_from_where_it_is_complete() -> None:
    recent = RecentEvents(per_tenant=2)
    start = {("e", 0): Mark(100), ("e", 1): Mark(200)}
    for offset in (100, 101, 102):
        recent.add(FeedEvent("e", 0, offset, offset, event("x", {}, run=f"r{offset}")))
    recent.add(FeedEvent("e", 1, 200, 0, event("x", {}, tenant="other")))
    assert [e.offset for e in recent.of_tenant("t")] == [101, 102]
    assert recent.complete_from("t", start) == {("e", 0): Mark(101, 100), ("e", 1): Mark(200)}
    assert recent.complete_from("other", start) == start
    assert [e.offset for e in recent.of_run("t", "r102")] == [102]


def test_a_run_folds_to_its_state_outputs_and_decisions() -> None:
    decision = {
        "attempt": 1,
        "route_id": "default",
        "strategy": "ordered",
        "reason": "primary",
        "chosen_provider": "sim",
        "chosen_model": "large",
        "candidates": [],
    }
    flag = {"stage": "input", "policy": "p", "rule": "pii.email", "action": "redact", "score": None}
    done = {
        "provider": "sim",
        "model": "large",
        "latency_ms": 40,
        "attempts": 1,
        "cache_hit": False,
        "fallback_used": False,
        "output_text": "hi",
        "tool_calls_json": None,
        "finish_reason": "stop",
        "status": "ok",
        "safety_flags": [],
        "prompt_tokens": 3,
        "completion_tokens": 1,
        "total_tokens": 4,
        "cost_usd": 0.5,
        "saved_cost_usd": 0.0,
    }
    summary = RunSummary("r1", "t")
    assert summary.apply(event("llm.request.started", {})) is True  # nothing -> running
    assert summary.apply(event("router.decision.made", decision)) is False
    assert summary.apply(event("guardrail.violation.detected", flag)) is False
    assert summary.apply(event("llm.request.completed", done)) is True
    state = summary.state()
    assert state["status"] == "completed"
    assert state["output"]["text"] == "hi" and state["usage"]["total_tokens"] == 4
    assert state["router_decisions"] == [
        {
            "attempt": 1,
            "route_id": "default",
            "strategy": "ordered",
            "reason": "primary",
            "provider": "sim",
            "model": "large",
        }
    ]
    assert state["guardrail_flags"][0]["rule"] == "pii.email"
    assert state["trace_ids"] == ["ab" * 16] and state["cost_usd"] == 0.5


def test_a_failed_run_carries_its_error() -> None:
    failed = {"error_code": "NO_ROUTE", "message": "none", "retryable": False, "attempts": 0}
    summary = RunSummary.of([event("llm.request.failed", failed)])
    assert summary is not None and summary.status == "failed"
    assert summary.error == {"error_code": "NO_ROUTE", "message": "none", "retryable": False}
    assert RunSummary.of([]) is None


def test_undecoded_events_are_decoded_only_when_read_and_garbage_is_skipped() -> None:
    decoded: list[bytes] = []

    def decode(value: bytes) -> Mapping[str, Any] | None:
        decoded.append(value)
        return json.loads(value) if value.startswith(b"{") else None

    recent = RecentEvents(per_tenant=10)
    for offset, run in ((1, "r1"), (2, "r2"), (3, "r1")):
        value = json.dumps(event("x", {"n": offset}, run=run)).encode()
        recent.add(RawEvent("e", 0, offset, offset, run, "t", value, decode))
    recent.add(RawEvent("e", 0, 4, 4, "r1", "t", b"not an event", decode))
    fifth = FeedEvent("e", 0, 5, 5, event("y", {}, run="r1"))
    recent.add(fifth)
    recent.add(FeedEvent("e", 0, 6, 6, event("z", {}, run="r1")))
    assert decoded == []
    assert [e.offset for e in recent.of_run("t", "r1")] == [1, 3, 5, 6]
    assert len(decoded) == 3, "only r1's undecoded events were decoded"
    assert recent.of_run("t", "r1")[0].event["payload"] == {"n": 1}
    assert [e.offset for e in recent.of_run("t", "r1", before=fifth)] == [1, 3]
