"""Each alerting indicator's SQL on the real engine counts what the events say: a mixed
workload is projected, and every indicator's bad and total per tenant (and per provider) over
the last hour match the same counts taken from the events in Python."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.projector_workload import mixed_events
from processors.observability.alerting.indicators import (
    CLIENT_CAUSED,
    Counts,
    indicator_query,
    observations,
)
from processors.observability.config import Indicator, OnlineEvaluation, ThresholdRule
from processors.observability.online import judged
from streams.envelope import Envelope
from tests.integration.test_projections_support import projection_db, write

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
HOUR = 60
TERMINAL = ("llm.request.completed", "llm.request.failed")


def _is_bad(event: Envelope, indicator: Indicator) -> bool:
    kind, payload = event.message_type, event.payload
    if indicator == "availability":
        return kind == "llm.request.failed" and payload["error_code"] not in CLIENT_CAUSED
    if indicator == "latency":
        return kind == "llm.request.completed" and payload["latency_ms"] > 1000
    if indicator == "fallback_rate":
        return kind == "router.fallback.triggered"
    if indicator == "guardrail_rate":
        return kind == "guardrail.violation.detected"
    return kind == "llm.attempt.failed" and payload["failure_kind"] == "timeout"


def _counts_in(event: Envelope, indicator: Indicator) -> bool:
    kind, payload = event.message_type, event.payload
    if indicator == "availability":
        return kind in TERMINAL and payload.get("error_code") not in CLIENT_CAUSED
    if indicator == "latency":
        return kind == "llm.request.completed"
    return kind in TERMINAL


def _provider(event: Envelope) -> str:
    if event.message_type == "router.fallback.triggered":
        return str(event.payload["from_provider"])
    return str(event.payload.get("provider") or "")


def expected(
    events: Iterable[Envelope], indicator: Indicator, by_provider: bool
) -> dict[str, Counts]:
    bad: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for event in events:
        group = event.tenant_id + (f"/{_provider(event)}" if by_provider else "")
        bad[group] += _is_bad(event, indicator)
        total[group] += _counts_in(event, indicator)
    return {
        group: Counts(bad[group], total[group]) for group in total if total[group] or bad[group]
    }


@pytest.mark.parametrize(
    "indicator", ["availability", "latency", "fallback_rate", "guardrail_rate", "timeout_rate"]
)
@pytest.mark.parametrize("by_provider", [False, True])
def test_an_indicator_counts_what_the_events_say(
    indicator: Indicator, by_provider: bool, tmp_path: Path
) -> None:
    # Two hours of runs: the first hour's are outside the window.
    events = mixed_events(6000, NOW - timedelta(minutes=2 * HOUR - 1), seed=3, spacing_ms=6000)
    since, until = NOW - timedelta(minutes=HOUR - 1), NOW + timedelta(minutes=1)
    in_window = [e for e in events if since <= e.timestamp < until]
    assert len(events) / 3 < len(in_window) < len(events) * 2 / 3
    rule = ThresholdRule.model_validate(
        {
            "name": "r",
            "indicator": indicator,
            "above": 0.1,
            "window": "1h",
            "threshold_ms": 1000 if indicator == "latency" else None,
            "group_by": ["provider"] if by_provider else [],
        }
    )
    with projection_db(tmp_path) as db:
        write(db, events, batch_size=1500)
        sql = indicator_query(rule, {HOUR}, NOW + timedelta(seconds=59), db.database)
        rows: list[dict[str, Any]] = [
            json.loads(line) for line in db.reader.query(sql, "JSONEachRow").decode().splitlines()
        ]
    found = {
        "/".join(o.labels[k] for k in ("tenant", "provider") if k in o.labels): o.counts[HOUR]
        for o in observations(rule, {HOUR}, rows)
    }
    want = expected(in_window, indicator, by_provider)
    assert {g: c for g, c in found.items() if c.total or c.bad} == want
    assert sum(c.bad for c in want.values()) > 0  # the workload has some of every kind


def test_the_eval_pass_rate_counts_failed_verdicts_of_its_evaluators(tmp_path: Path) -> None:
    events = []
    for i in range(300):
        done = Envelope(
            message_type="llm.request.completed",
            message_id=str(uuid.uuid4()),
            timestamp=NOW - timedelta(minutes=90) + timedelta(seconds=20 * i),
            correlation_id=f"req_{i}",
            tenant_id=("acme", "globex")[i % 2],
            payload={
                "output_text": "I'm sorry, but I can't help." if i % 3 == 0 else "Paris.",
                "finish_reason": "length" if i % 5 == 0 else "stop",
                "safety_flags": [],
                "tool_calls_json": None,
                "provider": "p",
                "model": "m",
            },
            service_name="foundation",
            layer=1,
            env="dev",
        )
        events += judged(done, OnlineEvaluation())
    since, until = NOW - timedelta(minutes=HOUR - 1), NOW + timedelta(minutes=1)
    rule = ThresholdRule.model_validate(
        {
            "name": "r",
            "indicator": "eval_pass_rate",
            "above": 0.1,
            "window": "1h",
            "evaluators": ["refusal", "truncated"],
        }
    )
    with projection_db(tmp_path) as db:
        write(db, events, batch_size=100)
        sql = indicator_query(rule, {HOUR}, NOW + timedelta(seconds=59), db.database)
        rows = [json.loads(line) for line in db.reader.query(sql, "JSONEachRow").decode().split()]
    found = {o.labels["tenant"]: o.counts[HOUR] for o in observations(rule, {HOUR}, rows)}
    want: dict[str, Counts] = {}
    for event in events:
        if since <= event.timestamp < until:
            chosen = [r for r in event.payload["results"] if r["evaluator"] in rule.evaluators]
            known = want.get(event.tenant_id, Counts(0, 0))
            failed = sum(not r["passed"] for r in chosen)
            want[event.tenant_id] = Counts(known.bad + failed, known.total + len(chosen))
    assert found == want and all(c.bad for c in want.values())
