"""The observability processor: ``python -m streams run processors.observability.processor:
PROCESSOR``. It reads each run's terminal event and the side events of its calls on
``events.llm`` (after the client has its answer, so it never slows a request), counts them as
Prometheus metrics (served on ``METRICS_PORT``) and emits the online evaluators' verdicts on
completed runs; for a share of runs it asks layer 1 for an LLM judge's score (``judge.py``),
and turns the judge run's answer into the judged run's verdict.

Config from ``OBSERVABILITY_CONFIG`` (default ``configs/observability.yaml``), read at start."""

from __future__ import annotations

from processors.observability.config import (
    ObservabilityConfig,
    OnlineEvaluation,
    load_observability_config,
)
from processors.observability.judge import is_judge_run, judge_request, judge_verdict
from processors.observability.online import judged
from processors.observability.traffic_metrics import COUNTED, TrafficMetrics
from streams.envelope import Envelope
from streams.processing import Processor

__all__ = ["PROCESSOR"]


class _Observer:
    """Loads the config on the first message, in the runner's process."""

    def __init__(self) -> None:
        self._config: ObservabilityConfig | None = None
        self._traffic = TrafficMetrics()

    def __call__(self, event: Envelope) -> list[Envelope]:
        if self._config is None:
            self._config = load_observability_config()
        outputs = self._verdicts(event, self._config.online)
        for counted in (event, *outputs):  # after judging: a retried handler counts once
            self._traffic.count(counted)
        return outputs

    @staticmethod
    def _verdicts(event: Envelope, online: OnlineEvaluation) -> list[Envelope]:
        if event.message_type != "llm.request.completed":
            return []
        if is_judge_run(event):
            return [judge_verdict(event, online.judge)]
        request = judge_request(event, online.judge)
        return judged(event, online) + ([request] if request is not None else [])


PROCESSOR = Processor(
    name="observability",
    layer=4,
    accepts=COUNTED,
    handler=_Observer(),
    fetch_wait_ms=500,
)
