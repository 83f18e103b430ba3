"""Offline evals: datasets replayed through the platform's API, scored by pure evaluators, and
compared run against run with a CI gate (``python -m processors.observability.evals``)."""

from processors.observability.evals.gate import breaches, changes, not_comparable, report
from processors.observability.evals.runner import RunPlan, RunSummary, run_eval
from processors.observability.evals.scorers import aggregate, check_of, parse_specs, score

__all__ = [
    "RunPlan",
    "RunSummary",
    "aggregate",
    "breaches",
    "changes",
    "check_of",
    "not_comparable",
    "parse_specs",
    "report",
    "run_eval",
    "score",
]
