"""Scores from users: a thumbs, a number, a label and a comment on a run, through the API, are
events on the log, shown on the run, and projected into ``eval_results``; a score sent again
with its id replaces the old one; another tenant's run cannot be scored."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

from streams.projections_client import sql_literal
from tests.integration import test_api_support as support
from tests.integration.test_api_support import Stack

stack = support.stack  # the module-scoped stack fixture, one per test module


def chat(stack: Stack, tenant: str = "a") -> str:
    response = httpx.post(
        f"{stack.api.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": f"score me {uuid.uuid4()}"}]},
        headers=stack.tenants[tenant].headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["correlation_id"])


def score(stack: Stack, run: str, body: dict[str, Any], tenant: str = "a") -> httpx.Response:
    return httpx.post(
        f"{stack.api.url}/v1/runs/{run}/scores",
        json=body,
        headers=stack.tenants[tenant].headers,
        timeout=10,
    )


def until(check: Any, what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # poll interval of a bounded wait
    return found


def test_a_users_scores_are_shown_on_the_run_and_projected(stack: Stack) -> None:
    run = chat(stack)
    thumbs = score(stack, run, {"name": "thumbs", "value": True, "comment": "spot on"})
    assert thumbs.status_code == 202, thumbs.text
    graded = score(stack, run, {"name": "correctness", "value": 0.4, "label": "partly"})
    assert graded.status_code == 202
    again = score(
        stack,
        run,
        {
            "name": "correctness",
            "value": 0.9,
            "label": "right",
            "score_id": graded.json()["score_id"],
        },
    )
    assert again.json()["score_id"] == graded.json()["score_id"]

    def shown() -> list[dict[str, Any]] | None:
        view = httpx.get(
            f"{stack.api.url}/v1/runs/{run}", headers=stack.tenants["a"].headers, timeout=10
        ).json()
        scores = view.get("scores") or []
        return scores if len(scores) == 2 and scores[-1]["value"] == 0.9 else None

    scores = until(shown, "both scores on the run")
    assert {(s["name"], s["value"], s["label"]) for s in scores} == {
        ("thumbs", 1.0, None),
        ("correctness", 0.9, "right"),
    }
    assert all(s["source"] == "user" and s["scored_by"] == "a" for s in scores)

    def projected() -> list[dict[str, Any]] | None:
        sql = (
            "SELECT evaluator, score, passed, label FROM platform.eval_results FINAL "  # noqa: S608
            f"WHERE correlation_id = {sql_literal(run)} ORDER BY evaluator FORMAT JSONEachRow"
        )
        response = httpx.get(f"http://127.0.0.1:{stack.query_port}/", params={"query": sql})
        if response.status_code != 200:
            return None
        rows = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        return rows if len(rows) == 2 and rows[0]["score"] == 0.9 else None

    rows = until(projected, "the scores in eval_results")
    assert [(r["evaluator"], r["passed"], r["label"]) for r in rows] == [
        ("user:correctness", 1, "right"),
        ("user:thumbs", 1, ""),
    ]


def test_a_score_needs_a_run_of_the_callers_tenant_and_something_scored(stack: Stack) -> None:
    run = chat(stack, tenant="a")
    assert score(stack, run, {"name": "thumbs", "value": False}, tenant="b").status_code == 404
    assert score(stack, "req_nope", {"name": "thumbs", "value": True}).status_code == 404
    assert score(stack, run, {"name": "thumbs"}).status_code == 422
    assert score(stack, run, {"name": "bad name!", "value": 1}).status_code == 422
