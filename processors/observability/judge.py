"""The LLM judge (pure): a finished run, if sampled, becomes a chat command to layer 1 asking a
model to score its answer; the judge run's answer becomes the run's ``llm_judge`` verdict.

Nothing waits on the judge and nothing is held in memory while it thinks: the judge run's
correlation id names the judged run (``judge:<correlation id>``), so its answer finds its way
back on any replica, after any restart. The judge sees the answer and the rubric, not the
prompt: the log keeps no prompt text (it may hold what guardrails redact in answers only)."""

from __future__ import annotations

import re
from dataclasses import replace

from processors.observability.config import Judge
from processors.observability.online import RECORDED, sampled
from schemas.payloads import (
    ChatMessage,
    EvalResultRecordedPayload,
    EvalVerdict,
    LlmChatRequestedPayload,
)
from streams.envelope import Envelope, derived_id

__all__ = [
    "JUDGE_PREFIX",
    "is_judge_run",
    "judge_messages",
    "judge_request",
    "judge_verdict",
    "parse_judgement",
]

JUDGE_PREFIX = "judge:"
EVALUATOR = "llm_judge"
_SCORE = re.compile(r"score\s*[:=]\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_REASON = re.compile(r"reason\s*[:=]\s*(.+)", re.IGNORECASE | re.DOTALL)
_INSTRUCTIONS = (
    "You grade answers given by an AI assistant. {rubric}\n"
    "Reply with exactly two lines:\nSCORE: <a number from 0 (worst) to 10 (best)>\n"
    "REASON: <one short sentence>"
)


def judge_messages(rubric: str, answer: str, expected: str | None = None) -> list[ChatMessage]:
    """The judge's prompt: the rubric, the answer to grade and, offline, the expected one."""
    reference = f"\n\nA reference answer to compare with:\n\n{expected}" if expected else ""
    return [
        {"role": "system", "content": _INSTRUCTIONS.format(rubric=rubric)},
        {"role": "user", "content": f"The answer to grade:\n\n{answer}{reference}"},
    ]


def is_judge_run(completed: Envelope) -> bool:
    return completed.correlation_id.startswith(JUDGE_PREFIX)


def judge_request(completed: Envelope, judge: Judge) -> Envelope | None:
    """The command that asks for a judgement of this run, or None (judge off, not sampled,
    or this run is itself a judgement). Its id is fixed by the run's terminal event, so a
    redelivery asks again with the same command, which layer 1 runs once."""
    if (
        not judge.enabled
        or is_judge_run(completed)
        or not sampled(completed.correlation_id, judge.rate_for(completed.tenant_id))
    ):
        return None
    answer = str(completed.payload.get("output_text") or "")[: judge.max_answer_chars]
    payload: LlmChatRequestedPayload = {
        "messages": judge_messages(judge.rubric, answer),
        "model": judge.model,
        "mode": "direct",
        "stop": [],
        "max_tokens": judge.max_tokens,
        "temperature": 0.0,
        "stream": False,
        "budget": {"max_cost_usd": judge.max_cost_usd},  # its max_tokens counts the prompt too
        "cache": "bypass",
        "metadata": {"judge_of": completed.correlation_id},
    }
    command = completed.derive(
        "llm.chat.requested", payload, derived_id(completed.message_id, "llm-judge")
    )
    return replace(command, correlation_id=JUDGE_PREFIX + completed.correlation_id)


def parse_judgement(text: str, pass_score: float, evaluator: str = EVALUATOR) -> EvalVerdict:
    """``SCORE: 0-10`` (and ``REASON: ...``) in the judge's answer, as a 0-1 verdict; an answer
    without a score fails with what the judge said instead."""
    score = _SCORE.search(text)
    if score is None:
        return {
            "evaluator": evaluator,
            "score": 0.0,
            "passed": False,
            "label": f"no score in the judge's answer: {text[:120]}",
        }
    value = min(float(score.group(1)), 10.0) / 10
    reason = _REASON.search(text)
    label = (reason.group(1) if reason else text).strip().splitlines()[0][:200] if text else ""
    return {"evaluator": evaluator, "score": value, "passed": value >= pass_score, "label": label}


def judge_verdict(judgement: Envelope, judge: Judge) -> Envelope:
    """The judge run's answer as an ``eval.result.recorded`` on the judged run."""
    payload: EvalResultRecordedPayload = {
        "provider": None,
        "model": None,
        "results": [
            parse_judgement(str(judgement.payload.get("output_text") or ""), judge.pass_score)
        ],
    }
    verdict = judgement.derive(RECORDED, payload, derived_id(judgement.message_id, EVALUATOR))
    return replace(verdict, correlation_id=judgement.correlation_id.removeprefix(JUDGE_PREFIX))
