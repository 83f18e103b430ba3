"""The offline evals' pure parts: each evaluator, the specs a user writes, the aggregates a run
reports, an item's report when its call failed, the gate, and a dataset version's validation
and content hash (the API side)."""

from __future__ import annotations

from typing import Any

import pytest

from api.dataset_items import content_version, validated_items
from api.errors import ApiError
from processors.observability.evals.client import ChatAnswer
from processors.observability.evals.gate import breaches, changes, not_comparable, report
from processors.observability.evals.judging import judge_chat_request
from processors.observability.evals.runner import chat_request, outcome
from processors.observability.evals.scorers import (
    NO_EXPECTED,
    aggregate,
    check_of,
    parse_specs,
    score,
    token_f1,
)


def verdict(spec: str, answer: str, expected: str | None) -> tuple[float, bool, str | None]:
    found = check_of(spec)(answer, expected)
    return found["score"], found["passed"], found.get("label")


def test_exact_ignores_spacing_but_not_case() -> None:
    assert verdict("exact", "  Paris \n", "Paris") == (1.0, True, None)
    assert verdict("exact", "paris", "Paris") == (0.0, False, "differs from expected")
    assert verdict("exact", "Paris", None) == (0.0, False, NO_EXPECTED)


def test_contains_ignores_case_and_spacing() -> None:
    assert verdict("contains", "The capital is  PARIS, France", "paris, france")[1]
    assert verdict("contains", "Lyon", "Paris") == (0.0, False, "expected text not found")


def test_regex_searches_and_needs_no_expected_answer() -> None:
    assert verdict(r"regex:\d{4}-\d{2}", "due 2024-05", None) == (1.0, True, None)
    assert verdict(r"regex:^\d+$", "12a", None) == (0.0, False, "no match")


def test_json_is_validity_and_with_an_expected_json_answer_equality() -> None:
    assert verdict("json", '{"a": 1}', None) == (1.0, True, None)
    assert verdict("json", '```json\n{"b": [1, 2], "a": 1}\n```', '{"a":1,"b":[1,2]}')[1]
    assert verdict("json", '{"a": 2}', '{"a": 1}') == (0.0, False, "JSON differs from expected")
    assert verdict("json", "{a: 1}", None) == (0.0, False, "not JSON")
    assert verdict("json", "[]", "plain words") == (1.0, True, "valid JSON; expected is not JSON")


def test_similarity_is_token_set_f1_against_a_threshold() -> None:
    assert token_f1("the cat sat", "The cat sat.") == 1.0
    assert token_f1("a b", "c d") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "x") == 0.0
    # answer {a, b, c}, expected {a, b, d, e}: precision 2/3, recall 1/2, F1 4/7
    assert token_f1("a b c", "a b d e") == pytest.approx(4 / 7)
    assert verdict("similarity", "a b c", "a b d e")[1] is True
    assert verdict("similarity:0.6", "a b c", "a b d e") == (
        pytest.approx(4 / 7),
        False,
        "F1 0.57",
    )
    assert verdict("similarity", "x", None) == (0.0, False, NO_EXPECTED)


def test_specs_split_at_commas_but_a_regex_keeps_its_commas() -> None:
    assert parse_specs(["exact,similarity:0.8", r"json,regex:^\d{1,3}(,\d{3})*$"]) == [
        "exact",
        "similarity:0.8",
        "json",
        r"regex:^\d{1,3}(,\d{3})*$",
    ]
    for bad in (["fuzzy"], ["regex:("], ["similarity:2"], ["exact,exact"], ["exact:x"]):
        with pytest.raises(ValueError):
            parse_specs(bad)


def test_aggregates_per_evaluator() -> None:
    specs = ["exact", "similarity"]
    verdicts = [score(specs, "a b", "a b"), score(specs, "a c", "a b"), score(specs, "z", "a b")]
    exact, similarity = aggregate(specs, verdicts)
    assert exact == {
        "evaluator": "exact",
        "items": 3,
        "passed": 1,
        "pass_rate": pytest.approx(1 / 3),
        "mean_score": pytest.approx(1 / 3),
    }
    assert similarity["passed"] == 2 and similarity["mean_score"] == pytest.approx(0.5)
    assert aggregate(["json"], [])[0]["pass_rate"] == 0.0


def test_a_failed_call_fails_every_evaluator_with_its_error() -> None:
    item = {"id": "q1", "input": "hi", "expected": "hi"}
    answer = ChatAnswer(None, "req_1", None, "BUDGET_EXCEEDED", "over budget", 12)
    report_, verdicts = outcome(item, answer, ["exact", "regex:."])
    assert [(v["passed"], v["label"]) for v in verdicts] == [(False, "BUDGET_EXCEEDED")] * 2
    assert report_["error_code"] == "BUDGET_EXCEEDED" and report_["run_id"] == "req_1"


def test_an_item_becomes_a_chat_request_tied_to_its_run() -> None:
    asked = chat_request({"id": "q1", "input": "2+2?"}, "sim-small", "evr_1")
    assert asked["messages"] == [{"role": "user", "content": "2+2?"}]
    assert asked["metadata"] == {"eval_run_id": "evr_1", "eval_item_id": "q1"}
    chat = [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}]
    assert chat_request({"id": "q2", "input": chat}, "m", "evr_1")["messages"] == chat


def test_the_judge_grades_through_the_chat_api_with_the_rubric_and_the_reference() -> None:
    assert parse_specs(["exact,judge:sim-large", "judge"]) == ["exact", "judge:sim-large", "judge"]
    item = {
        "id": "q1",
        "input": "capital of France?",
        "expected": "Paris",
        "rubric": "Is it right?",
    }
    asked = judge_chat_request("judge:sim-large", item, "Lyon", "evr_1")
    system, user = asked["messages"]
    assert "Is it right?" in system["content"] and "SCORE" in system["content"]
    assert "Lyon" in user["content"] and "Paris" in user["content"]
    assert asked["model"] == "sim-large" and asked["metadata"]["judge"] == "judge:sim-large"
    assert "model" not in judge_chat_request("judge", {"id": "q2", "input": "x"}, "y", "evr_1")
    answer = ChatAnswer("Lyon", "req_1", "m", None, None, 30)
    graded = {
        "judge:sim-large": ChatAnswer("SCORE: 2\nREASON: wrong city", "req_2", "m", None, None, 9)
    }
    _, verdicts = outcome(item, answer, ["exact", "judge:sim-large"], graded)
    assert [(v["evaluator"], v["passed"], v["label"]) for v in verdicts] == [
        ("exact", False, "differs from expected"),
        ("judge:sim-large", False, "wrong city"),
    ]
    refused = {"judge": ChatAnswer(None, "req_3", None, "BUDGET_EXCEEDED", "over", 3)}
    _, verdicts = outcome(item, answer, ["judge"], refused)
    assert verdicts == [
        {"evaluator": "judge", "score": 0.0, "passed": False,
         "label": "judge call failed: BUDGET_EXCEEDED"}
    ]  # fmt: skip


def run(run_id: str, **rates: float) -> dict[str, Any]:
    return {
        "eval_run_id": run_id,
        "dataset": "qa",
        "dataset_version": "0123456789abcdef",
        "model": "m",
        "item_count": 10,
        "failed_calls": 0,
        "status": "completed",
        "aggregates": [
            {"evaluator": name, "items": 10, "passed": int(rate * 10), "pass_rate": rate,
             "mean_score": rate}
            for name, rate in rates.items()
        ],
    }  # fmt: skip


def comparison(baseline: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    return {"baseline": baseline, "candidate": candidate, "regressions": [], "regressions_total": 0}


def test_the_gate_fails_only_on_a_drop_beyond_the_threshold() -> None:
    steady = comparison(run("a", exact=0.9, json=1.0), run("b", exact=0.85, json=1.0, regex=0))
    assert [c.evaluator for c in changes(steady, "pass_rate")] == ["exact", "json"]
    assert breaches(steady, "pass_rate", 0.05) == []  # a drop of exactly the threshold passes
    assert [c.evaluator for c in breaches(steady, "pass_rate", 0.04)] == ["exact"]
    worse = comparison(run("a", exact=0.9), run("b", exact=0.5))
    assert report(worse, "pass_rate", 0.05)[-1].startswith("gate: FAILED")
    assert report(steady, "pass_rate", 0.05)[-1].startswith("gate: passed")
    better = comparison(run("a", exact=0.5), run("b", exact=1.0))
    assert breaches(better, "mean_score", 0.0) == []


def test_the_gate_refuses_runs_it_cannot_judge() -> None:
    running = run("b", exact=1.0) | {"status": "running"}
    assert (
        not_comparable(comparison(run("a", exact=1.0), running)) == "candidate b has not completed"
    )
    assert not_comparable(comparison(run("a", exact=1.0), run("b", json=1.0))) == (
        "the runs share no evaluator"
    )
    assert not_comparable(comparison(run("a", exact=1.0), run("b", exact=0.0))) is None


def test_a_version_is_named_by_its_items() -> None:
    items = [{"id": "q1", "input": "hi", "expected": "hello"}, {"id": "q2", "input": "bye"}]
    version = content_version(validated_items(items))
    assert len(version) == 16
    assert content_version(validated_items([dict(i) for i in items])) == version
    assert content_version(validated_items(items[::-1])) != version
    changed = [items[0], {**items[1], "expected": "ciao"}]
    assert content_version(validated_items(changed)) != version


def test_every_bad_item_and_field_is_named() -> None:
    items: list[Any] = [
        {"id": "ok", "input": "fine"},
        {"id": "q2", "input": [{"role": "robot", "content": "x"}]},
        {"id": "ok", "input": "again"},
        {"input": "no id", "expected": 3},
        "not an object",
    ]
    with pytest.raises(ApiError) as raised:
        validated_items(items)
    error = raised.value
    assert error.status == 422
    found = {(p.item, p.item_id, p.field.split(".")[0]) for p in error.details or []}
    assert {
        (1, "q2", "input"),
        (2, "ok", "id"),
        (3, None, "id"),
        (3, None, "expected"),
        (4, None, "item"),
    } <= found
    assert 0 not in {p.item for p in error.details or []}
