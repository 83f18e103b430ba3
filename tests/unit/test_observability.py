"""The online evaluators on finished runs: each check's verdict, a reproducible sample, one
event per judged run with a fixed id, and a config whose mistakes name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.run_view import RunSummary
from api.waterfall import waterfall
from processors.observability.config import OnlineEvaluation, load_observability_config
from processors.observability.evaluators import evaluate
from processors.observability.online import judged, sampled
from streams.config import ConfigError
from streams.envelope import WriterIdentity, envelope_json, new_message

WRITER = WriterIdentity("foundation", 1, "dev")
CALL = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}


def completed(**payload: Any) -> dict[str, Any]:
    return {
        "output_text": "Paris is the capital of France.",
        "finish_reason": "stop",
        "safety_flags": [],
        "tool_calls_json": None,
        "provider": "p",
        "model": "m",
        **payload,
    }


def verdicts(**payload: Any) -> dict[str, tuple[bool, str | None]]:
    results = evaluate(completed(**payload), OnlineEvaluation().evaluators)
    return {r["evaluator"]: (r["passed"], r.get("label")) for r in results}


def test_a_good_answer_passes_every_check() -> None:
    assert all(passed for passed, _ in verdicts().values())


@pytest.mark.parametrize(
    ("payload", "failing", "label"),
    [
        ({"output_text": "", "tool_calls_json": None}, "empty", "no text and no tool call"),
        ({"finish_reason": "length"}, "truncated", "stopped at max_tokens"),
        (
            {"output_text": "I'm sorry, but I can't help with that request."},
            "refusal",
            "I'm sorry, but I can't",
        ),
        ({"output_text": "As an AI language model, I cannot browse."}, "refusal", None),
        ({"safety_flags": ["pii", "injection", "pii"]}, "guardrail_flags", "injection,pii"),
        (
            {
                "output_text": None,
                "tool_calls_json": json.dumps(
                    [CALL, {**CALL, "function": {"name": "book", "arguments": '{"city": '}}]
                ),
            },
            "tool_arguments",
            "book",
        ),
    ],
    ids=["empty", "truncated", "refusal", "stock refusal", "flags", "broken tool arguments"],
)
def test_each_check_fails_what_it_is_for_and_nothing_else(
    payload: dict[str, Any], failing: str, label: str | None
) -> None:
    found = verdicts(**payload)
    assert [name for name, (passed, _) in found.items() if not passed] == [failing]
    if label is not None:
        assert found[failing][1] == label


def test_an_apology_that_is_not_a_refusal_passes() -> None:
    assert verdicts(output_text="Sorry for the delay: Paris is the capital.")["refusal"][0]


def test_the_sample_is_reproducible_and_near_its_rate() -> None:
    runs = [f"req_{i}" for i in range(10_000)]
    chosen = [run for run in runs if sampled(run, 0.1)]
    assert chosen == [run for run in runs if sampled(run, 0.1)]
    assert 900 < len(chosen) < 1100
    assert all(sampled(run, 1.0) for run in runs) and not any(sampled(run, 0.0) for run in runs)


def test_a_judged_run_gets_one_event_whose_id_its_terminal_event_fixes() -> None:
    done = new_message(
        "llm.request.completed",
        completed(finish_reason="length"),
        correlation_id="req_1",
        tenant_id="acme",
        writer=WRITER,
    )
    [first] = judged(done, OnlineEvaluation())
    [again] = judged(done, OnlineEvaluation())
    assert first.message_id == again.message_id and first.correlation_id == "req_1"
    assert judged(done, OnlineEvaluation(tenants={"acme": {"sample_rate": 0}})) == []
    summary = RunSummary.of([envelope_json(first)])  # shown on the run as it arrives
    assert summary is not None
    assert {e["evaluator"]: e["passed"] for e in summary.evals}["truncated"] is False


def test_a_broken_config_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "observability.yaml"
    path.write_text("online:\n  sample_rate: 1.0\n  evaluators: [refusal, vibes]\n")
    with pytest.raises(ConfigError) as broken:
        load_observability_config(path)
    message = str(broken.value)
    assert "observability.yaml:3" in message and "evaluators" in message


def test_a_runs_waterfall_has_a_step_per_span_each_under_the_step_that_caused_it() -> None:
    base = {"tenant_id": "acme", "correlation_id": "req_1", "payload": {}}

    def event(n: int, kind: str, span: str, service: str, cause: str, ms: int) -> dict[str, Any]:
        at = f"2026-12-07T10:00:00.{ms:03d}000+00:00"
        return {
            **base,
            "event_id": f"e{n}",
            "event_type": kind,
            "span_id": span,
            "service_name": service,
            "causation_id": cause,
            "timestamp": at,
        }

    events = [
        event(3, "eval.result.recorded", "s2", "observability", "e2", 90),
        event(1, "llm.request.started", "s1", "foundation", "command", 0),
        event(2, "llm.request.completed", "s1", "foundation", "e1", 60),
    ]
    assert waterfall(events) == [
        {
            "span_id": "s1",
            "parent_span_id": None,
            "service": "foundation",
            "start_ms": 0.0,
            "end_ms": 60.0,
            "events": ["llm.request.started", "llm.request.completed"],
        },
        {
            "span_id": "s2",
            "parent_span_id": "s1",
            "service": "observability",
            "start_ms": 90.0,
            "end_ms": 90.0,
            "events": ["eval.result.recorded"],
        },
    ]
    assert waterfall([]) == []
