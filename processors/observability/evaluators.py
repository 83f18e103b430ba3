"""The online evaluators (pure): cheap checks of a finished run's answer, each a verdict with a
score (1 good, 0 bad), pass or fail, and a short label. They read only the terminal event, so
any replica, and any replay, judges a run alike."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from processors.observability.config import EvaluatorName
from schemas.payloads import EvalVerdict

__all__ = ["EVALUATORS", "evaluate"]

Completed = Mapping[str, Any]

# Openings and stock phrases of a model declining to answer, in English (where it declines,
# not where it apologises for something else): matched case-insensitively.
_REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) (?:sorry|afraid),? but I (?:can(?:no|')t|won't|am unable|'m unable)"
    r"|I (?:can(?:no|')t|won't|am unable to|'m unable to) (?:help|assist|comply|provide|do that)"
    r"|as an AI(?: language model)?,? I (?:can(?:no|')t|don't|do not))",
    re.IGNORECASE,
)


def _verdict(
    evaluator: str, passed: bool, label: str | None = None, score: float | None = None
) -> EvalVerdict:
    return {
        "evaluator": evaluator,
        "score": score if score is not None else float(passed),
        "passed": passed,
        "label": label,
    }


def _empty(run: Completed) -> EvalVerdict:
    """An answer with neither text nor a tool call says nothing."""
    said = bool((run.get("output_text") or "").strip()) or bool(run.get("tool_calls_json"))
    return _verdict("empty", said, None if said else "no text and no tool call")


def _truncated(run: Completed) -> EvalVerdict:
    """The model stopped at its token limit: the answer is cut short."""
    cut = run.get("finish_reason") == "length"
    return _verdict("truncated", not cut, "stopped at max_tokens" if cut else None)


def _refusal(run: Completed) -> EvalVerdict:
    found = _REFUSAL.search(run.get("output_text") or "")
    return _verdict("refusal", found is None, found.group(0) if found else None)


def _guardrail_flags(run: Completed) -> EvalVerdict:
    """Rules that only flag (the answer went out) still mark the run."""
    flags = sorted(set(run.get("safety_flags") or []))
    return _verdict("guardrail_flags", not flags, ",".join(flags) or None)


def _tool_arguments(run: Completed) -> EvalVerdict:
    """Every tool call's arguments must be a JSON object, or the client's tool cannot run."""
    calls = json.loads(run["tool_calls_json"]) if run.get("tool_calls_json") else []
    bad = [
        call["function"]["name"]
        for call in calls
        if not _json_object(call["function"]["arguments"])
    ]
    score = 1.0 - len(bad) / len(calls) if calls else 1.0
    return _verdict("tool_arguments", not bad, ",".join(bad) or None, score)


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text or "{}"), dict)
    except ValueError:
        return False


EVALUATORS: Mapping[EvaluatorName, Callable[[Completed], EvalVerdict]] = {
    "empty": _empty,
    "truncated": _truncated,
    "refusal": _refusal,
    "guardrail_flags": _guardrail_flags,
    "tool_arguments": _tool_arguments,
}


def evaluate(run: Completed, names: Sequence[EvaluatorName]) -> list[EvalVerdict]:
    """The verdicts of ``names`` on a completed run, in that order."""
    return [EVALUATORS[name](run) for name in names]
