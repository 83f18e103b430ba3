"""The offline LLM judge: ``judge`` (or ``judge:<model>``) grades each answer through the
platform's own chat API, with the item's rubric (or the default one) and its expected answer
as a reference, and reads the grade as the online judge does (``SCORE: 0-10``, pass at 0.7).
Pure: the runner makes the call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processors.observability.config import DEFAULT_RUBRIC
from processors.observability.evals.client import ChatAnswer
from processors.observability.judge import judge_messages, parse_judgement
from schemas.payloads import EvalVerdict

__all__ = ["PASS_SCORE", "is_judge", "judge_chat_request", "judge_verdict"]

PASS_SCORE = 0.7
_MAX_TOKENS = 80


def is_judge(spec: str) -> bool:
    return spec == "judge" or spec.startswith("judge:")


def judge_chat_request(
    spec: str, item: Mapping[str, Any], answer: str, eval_run_id: str
) -> dict[str, Any]:
    """The chat completion that grades ``answer``; ``judge:<model>`` names the judge's model
    hint, plain ``judge`` takes the platform's default route."""
    model = spec.partition(":")[2] or None
    request: dict[str, Any] = {
        "messages": judge_messages(
            item.get("rubric") or DEFAULT_RUBRIC, answer, item.get("expected")
        ),
        "max_tokens": _MAX_TOKENS,
        "temperature": 0.0,
        "metadata": {"eval_run_id": eval_run_id, "eval_item_id": str(item["id"]), "judge": spec},
    }
    if model is not None:
        request["model"] = model
    return request


def judge_verdict(spec: str, graded: ChatAnswer) -> EvalVerdict:
    """The judge's answer as the item's verdict; a judge call that failed fails the item,
    labelled with why."""
    if graded.output is None:
        reason = graded.error_code or "NO_ANSWER"
        return {
            "evaluator": spec,
            "score": 0.0,
            "passed": False,
            "label": f"judge call failed: {reason}",
        }
    return parse_judgement(graded.output, PASS_SCORE, spec)
