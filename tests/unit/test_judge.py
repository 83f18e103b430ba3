"""The LLM judge (pure): which runs are judged and how the request is capped, the judge's
answer read as a verdict on the judged run, and the run view keeping both the inline checks
and the judge's later verdict."""

from __future__ import annotations

import pytest

from api.run_view import RunSummary
from processors.observability.config import Judge, OnlineEvaluation
from processors.observability.judge import (
    JUDGE_PREFIX,
    is_judge_run,
    judge_request,
    judge_verdict,
    parse_judgement,
)
from processors.observability.online import judged
from streams.envelope import Envelope, WriterIdentity, envelope_json, new_message

WRITER = WriterIdentity("foundation", 1, "dev")
JUDGE = Judge(enabled=True, sample_rate=1.0, model="judge-model", max_tokens=50)


def finished(correlation_id: str, text: str) -> Envelope:
    return new_message(
        "llm.request.completed",
        {
            "output_text": text,
            "finish_reason": "stop",
            "safety_flags": [],
            "tool_calls_json": None,
            "provider": "p",
            "model": "m",
        },
        correlation_id=correlation_id,
        tenant_id="acme",
        writer=WRITER,
    )


def test_a_sampled_run_asks_layer_1_for_a_capped_judgement_once() -> None:
    run = finished("req_1", "Paris is the capital of France." * 500)
    request = judge_request(run, JUDGE)
    assert request is not None and judge_request(run, JUDGE) == request
    assert request.message_type == "llm.chat.requested"
    assert request.correlation_id == JUDGE_PREFIX + "req_1" and request.tenant_id == "acme"
    payload = request.payload
    assert payload["model"] == "judge-model" and payload["cache"] == "bypass"
    assert payload["budget"] == {"max_cost_usd": 0.01} and payload["max_tokens"] == 50
    assert JUDGE.rubric in payload["messages"][0]["content"]
    assert len(payload["messages"][1]["content"]) < JUDGE.max_answer_chars + 100


def test_no_judgement_when_off_unsampled_or_of_a_judgement() -> None:
    run = finished("req_1", "Paris.")
    assert judge_request(run, Judge()) is None  # off by default
    assert judge_request(run, JUDGE.model_copy(update={"sample_rate": 0.0})) is None
    assert judge_request(finished(JUDGE_PREFIX + "req_1", "SCORE: 9"), JUDGE) is None


@pytest.mark.parametrize(
    ("text", "score", "passed", "label"),
    [
        ("SCORE: 8\nREASON: correct and concise", 0.8, True, "correct and concise"),
        ("score=3 reason: misses the point\nmore", 0.3, False, "misses the point"),
        ("SCORE: 7", 0.7, True, "SCORE: 7"),
        ("SCORE: 12", 1.0, True, "SCORE: 12"),
        ("I think it is fine", 0.0, False, "no score in the judge's answer: I think it is fine"),
    ],
)
def test_the_judges_answer_becomes_a_verdict(
    text: str, score: float, passed: bool, label: str
) -> None:
    assert parse_judgement(text, 0.7) == {
        "evaluator": "llm_judge",
        "score": score,
        "passed": passed,
        "label": label,
    }


def test_the_verdict_lands_on_the_judged_run_beside_the_inline_checks() -> None:
    run = finished("req_1", "Paris is the capital of France.")
    [inline] = judged(run, OnlineEvaluation())
    judgement = finished(JUDGE_PREFIX + "req_1", "SCORE: 4\nREASON: vague")
    assert is_judge_run(judgement) and not is_judge_run(run)
    verdict = judge_verdict(judgement, JUDGE)
    assert verdict.correlation_id == "req_1" and verdict.tenant_id == "acme"
    assert judge_verdict(judgement, JUDGE).message_id == verdict.message_id
    summary = RunSummary.of([envelope_json(inline), envelope_json(verdict)])
    assert summary is not None
    shown = {e["evaluator"]: (e["passed"], e.get("label")) for e in summary.evals}
    assert shown["llm_judge"] == (False, "vague") and shown["refusal"] == (True, None)
    assert [e["evaluator"] for e in summary.evals][-1] == "llm_judge"
