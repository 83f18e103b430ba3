"""The CI gate (pure): from a comparison of two runs as ``GET /v1/eval-runs/{a}/compare/{b}``
returns it, each shared evaluator's metric before and after, which dropped by more than the
allowed amount, and the report a person reads in a CI log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Metric", "MetricChange", "breaches", "changes", "not_comparable", "report"]

Metric = Literal["pass_rate", "mean_score"]
Run = Mapping[str, Any]


@dataclass(frozen=True)
class MetricChange:
    evaluator: str
    metric: Metric
    baseline: float
    candidate: float

    @property
    def drop(self) -> float:
        return self.baseline - self.candidate

    def breaches(self, max_drop: float) -> bool:
        return self.drop > max_drop + 1e-12  # a drop of exactly max_drop is allowed


def changes(comparison: Mapping[str, Any], metric: Metric) -> list[MetricChange]:
    """The metric per evaluator that both runs report, in the baseline's order."""
    after = {a["evaluator"]: a for a in comparison["candidate"]["aggregates"]}
    return [
        MetricChange(a["evaluator"], metric, float(a[metric]), float(after[a["evaluator"]][metric]))
        for a in comparison["baseline"]["aggregates"]
        if a["evaluator"] in after
    ]


def breaches(comparison: Mapping[str, Any], metric: Metric, max_drop: float) -> list[MetricChange]:
    """The evaluators whose metric dropped by more than ``max_drop``: the gate fails on any."""
    return [change for change in changes(comparison, metric) if change.breaches(max_drop)]


def not_comparable(comparison: Mapping[str, Any]) -> str | None:
    """Why the gate cannot judge (a run not completed, no evaluator in common), or None."""
    for role in ("baseline", "candidate"):
        run = comparison[role]
        if run["status"] != "completed":
            return f"{role} {run['eval_run_id']} has not completed"
    if not changes(comparison, "pass_rate"):
        return "the runs share no evaluator"
    return None


def report(
    comparison: Mapping[str, Any], metric: Metric, max_drop: float, shown: int = 20
) -> list[str]:
    """Both runs, each shared evaluator's metrics with the verdict, the regressed items, and
    the gate's outcome on the last line."""
    lines = [
        _run_line("baseline", comparison["baseline"]),
        _run_line("candidate", comparison["candidate"]),
    ]
    lines.append(f"{'evaluator':<28} {'pass_rate':>19} {'mean_score':>19}")
    passes = {c.evaluator: c for c in changes(comparison, "pass_rate")}
    means = {c.evaluator: c for c in changes(comparison, "mean_score")}
    for change in changes(comparison, metric):
        cells = _cell(passes[change.evaluator]), _cell(means[change.evaluator])
        flag = f"  DROP {change.drop:.3f} > {max_drop}" if change.breaches(max_drop) else ""
        lines.append(f"{change.evaluator[:28]:<28} {cells[0]:>19} {cells[1]:>19}{flag}")
    regressions: Sequence[Mapping[str, Any]] = comparison["regressions"]
    total = comparison["regressions_total"]
    if total:
        lines.append(f"regressed items ({total}; the {min(shown, len(regressions))} worst):")
    for item in regressions[:shown]:
        said = item["candidate_error"] or item["candidate_output"]
        lines.append(
            f"  {item['item_id']}  {item['evaluator']}  "
            f"{item['baseline_score']:.2f} -> {item['candidate_score']:.2f}  {said[:80]!r}"
        )
    breached = breaches(comparison, metric, max_drop)
    if breached:
        worst = ", ".join(f"{c.evaluator} {metric} -{c.drop:.3f}" for c in breached)
        lines.append(f"gate: FAILED, dropped more than {max_drop}: {worst}")
    else:
        lines.append(f"gate: passed (no {metric} dropped more than {max_drop})")
    return lines


def _run_line(role: str, run: Run) -> str:
    return (
        f"{role:<9} {run['eval_run_id']}  {run['dataset']}@{run['dataset_version']}  "
        f"model {run['model']}  {run['item_count']} items, {run['failed_calls']} failed calls"
    )


def _cell(change: MetricChange) -> str:
    return f"{change.baseline:.3f} -> {change.candidate:.3f}"
