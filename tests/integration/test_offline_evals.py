"""Offline evals end to end, through the CLI as a user runs it, against the API, the foundation
processor (simulated providers), the real broker and the projector on chDB: a 200-item dataset
is pushed, answered once to record reference answers, pushed again with them as expected
answers, and replayed three times. The same model again passes the gate; a different model
fails it, in one step (``run --baseline``) and in ``compare``. Every run leaves 200 rows per
evaluator in ``eval_results``; another tenant sees none of it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from streams.projections_client import sql_literal
from tests.integration import test_api_support as support
from tests.integration.processes import REPO
from tests.integration.test_api_support import Stack

stack = support.stack  # the module-scoped stack fixture, one per test module

ITEMS = 200
T = TypeVar("T")


def evals(stack: Stack, *args: str, tenant: str = "a") -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PLATFORM_API_URL": stack.api.url,
        "PLATFORM_API_KEY": stack.tenants[tenant].key,
    }
    return subprocess.run(
        [sys.executable, "-m", "processors.observability.evals", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_id_of(result: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"eval run (evr_[0-9a-f]{32})", result.stdout)
    assert found, result.stdout + result.stderr
    return found.group(1)


def sql(stack: Stack, query: str) -> list[dict[str, Any]] | None:
    response = httpx.get(
        f"http://127.0.0.1:{stack.query_port}/",
        params={"query": f"{query} FORMAT JSONEachRow"},
        timeout=10,
    )
    if response.status_code != 200:
        return None
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def until(check: Callable[[], T | None], what: str, timeout_s: float = 30.0) -> T:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)  # poll interval of a bounded wait
    return found


def rows_per_evaluator(stack: Stack, eval_run_id: str) -> dict[str, int]:
    query = (
        "SELECT evaluator, count() AS n FROM platform.eval_results FINAL "  # noqa: S608
        f"WHERE eval_run_id = {sql_literal(eval_run_id)} GROUP BY evaluator"
    )
    return {row["evaluator"]: int(row["n"]) for row in sql(stack, query) or []}


def write_items(path: Path, expected: dict[str, str] | None = None) -> Path:
    lines = []
    for n in range(ITEMS):
        item: dict[str, Any] = {"id": f"q{n:03d}", "input": f"Question {n}: what happens next?"}
        if n % 2:
            item["input"] = [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": f"Question {n}?"},
            ]
        if expected is not None:
            item["expected"] = expected[item["id"]]
        item["metadata"] = {"topic": "odd" if n % 2 else "even"}
        lines.append(json.dumps(item))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_regression_fails_the_gate_and_a_rerun_passes(stack: Stack, tmp_path: Path) -> None:
    pushed = evals(
        stack, "dataset", "push", str(write_items(tmp_path / "v1.jsonl")), "--name", "qa"
    )
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    reference = evals(
        stack, "run", "--dataset", "qa", "--model", "sim-large", "--evaluators", r"regex:\w",
        "--concurrency", "16",
    )  # fmt: skip
    assert reference.returncode == 0, reference.stdout + reference.stderr
    assert "pass_rate 1.000 (200/200)" in reference.stdout

    # The reference answers become the expected answers of a second version.
    query = (
        "SELECT case_id, JSONExtractString(details, 'output') AS output "  # noqa: S608
        "FROM platform.eval_results FINAL "
        f"WHERE eval_run_id = {sql_literal(run_id_of(reference))}"
    )
    answers = until(
        lambda: (rows := sql(stack, query)) and len(rows) == ITEMS and rows, "reference rows"
    )
    expected = {row["case_id"]: row["output"] for row in answers}
    v2 = write_items(tmp_path / "v2.jsonl", expected)
    pushed = evals(stack, "dataset", "push", str(v2), "--name", "qa", "--description", "answers")
    assert pushed.returncode == 0 and "(published)" in pushed.stdout, pushed.stderr
    again = evals(stack, "dataset", "push", str(v2), "--name", "qa")
    assert again.stdout == pushed.stdout.replace("(published)", "(exists)")

    scoring = ("--evaluators", "exact,similarity:0.9", "--concurrency", "16")
    first = evals(stack, "run", "--dataset", "qa", "--model", "sim-large", *scoring)
    assert first.returncode == 0, first.stdout + first.stderr
    baseline = run_id_of(first)
    rerun = evals(
        stack, "run", "--dataset", "qa", "--model", "sim-large", *scoring,
        "--baseline", baseline, "--max-drop", "0.05",
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "gate: passed" in rerun.stdout
    cheaper = evals(
        stack, "run", "--dataset", "qa", "--model", "sim-small", *scoring,
        "--baseline", baseline, "--max-drop", "0.05",
    )  # fmt: skip
    assert cheaper.returncode == 1, cheaper.stdout + cheaper.stderr
    assert "gate: FAILED" in cheaper.stdout and "regressed items" in cheaper.stdout

    good = evals(stack, "compare", baseline, run_id_of(rerun))
    assert good.returncode == 0, good.stdout + good.stderr
    bad = evals(stack, "compare", baseline, run_id_of(cheaper), "--metric", "mean_score")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert re.search(r"exact .*1\.000 -> 0\.0\d\d", bad.stdout), bad.stdout

    for run in (reference, first, rerun, cheaper):
        counts = until(
            lambda run=run: (
                (c := rows_per_evaluator(stack, run_id_of(run))) and min(c.values()) == ITEMS and c
            ),
            "200 rows per evaluator",
        )
        assert set(counts.values()) == {ITEMS}, counts

    view = httpx.get(
        f"{stack.api.url}/v1/eval-runs/{baseline}", headers=stack.tenants["a"].headers, timeout=10
    ).json()
    assert (view["status"], view["item_count"], view["scored_items"]) == ("completed", 200, 200)
    assert [a["evaluator"] for a in view["aggregates"]] == ["exact", "similarity:0.9"]
    assert view["aggregates"][0]["pass_rate"] == 1.0
    other = stack.tenants["b"].headers
    for path in (
        f"/v1/eval-runs/{baseline}",
        f"/v1/eval-runs/{baseline}/compare/{run_id_of(rerun)}",
        "/v1/datasets/qa",
    ):
        assert httpx.get(f"{stack.api.url}{path}", headers=other, timeout=10).status_code == 404
    assert httpx.get(f"{stack.api.url}/v1/datasets", headers=other, timeout=10).json() == []
    hidden = evals(stack, "compare", baseline, run_id_of(rerun), "--wait", "1", tenant="b")
    assert hidden.returncode == 2 and "no eval run" in hidden.stderr, hidden.stderr


def test_bad_items_are_refused_naming_line_and_field(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"id": "a", "input": "fine"}\n\n'
        '{"id": "b", "input": [{"role": "robot", "content": "x"}]}\n'
        '{"id": "a", "input": "again"}\n'
        '{"id": "c", "input": "x", "expected": 7}\n'
    )
    refused = evals(stack, "dataset", "push", str(path), "--name", "broken")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "line 3 (id b): input" in refused.stdout
    assert "line 4 (id a): id: repeats the id of item 0" in refused.stdout
    assert "line 5 (id c): expected: Input should be a valid string" in refused.stdout
    response = httpx.post(
        f"{stack.api.url}/v1/datasets/broken/versions",
        json={"items": [{"id": "x"}]},
        headers=stack.tenants["a"].headers,
        timeout=10,
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {"item": 0, "item_id": "x", "field": "input", "message": "Field required"}
    ]
    runs = httpx.post(
        f"{stack.api.url}/v1/eval-runs",
        json={
            "dataset": "broken",
            "dataset_version": "0" * 16,
            "model": "m",
            "evaluators": ["exact"],
        },
        headers=stack.tenants["a"].headers,
        timeout=10,
    )
    assert runs.status_code == 404
