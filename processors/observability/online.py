"""Which runs are judged, and the event that carries the verdicts (pure)."""

from __future__ import annotations

import hashlib

from processors.observability.config import OnlineEvaluation
from processors.observability.evaluators import evaluate
from schemas.payloads import EvalResultRecordedPayload
from streams.envelope import Envelope, derived_id

__all__ = ["judged", "sampled"]

RECORDED = "eval.result.recorded"


def sampled(correlation_id: str, rate: float) -> bool:
    """The same run is in or out of the sample on every replica and every replay."""
    digest = hashlib.sha256(correlation_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def judged(completed: Envelope, online: OnlineEvaluation) -> list[Envelope]:
    """``eval.result.recorded`` for a sampled run (its id fixed by the terminal event's, so a
    redelivery yields an exact duplicate); nothing for the rest."""
    if not online.evaluators or not sampled(
        completed.correlation_id, online.rate_for(completed.tenant_id)
    ):
        return []
    run = completed.payload
    payload: EvalResultRecordedPayload = {
        "provider": run.get("provider"),
        "model": run.get("model"),
        "results": evaluate(run, online.evaluators),
    }
    named = derived_id(completed.message_id, "online-evaluation")
    return [completed.derive(RECORDED, payload, named)]
