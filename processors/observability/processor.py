"""The observability processor: ``python -m streams run processors.observability.processor:
PROCESSOR``. It reads each run's terminal ``llm.request.completed`` (after the client has its
answer, so it never slows a request) and emits the online evaluators' verdicts; for a share of
runs it asks layer 1 for an LLM judge's score (``judge.py``), and turns the judge run's answer
into the judged run's verdict.

Config from ``OBSERVABILITY_CONFIG`` (default ``configs/observability.yaml``), read at start."""

from __future__ import annotations

from processors.observability.config import ObservabilityConfig, load_observability_config
from processors.observability.judge import is_judge_run, judge_request, judge_verdict
from processors.observability.online import judged
from streams.envelope import Envelope
from streams.processing import Processor

__all__ = ["PROCESSOR"]


class _Judge:
    """Loads the config on the first message, in the runner's process."""

    def __init__(self) -> None:
        self._config: ObservabilityConfig | None = None

    def __call__(self, completed: Envelope) -> list[Envelope]:
        if self._config is None:
            self._config = load_observability_config()
        online = self._config.online
        if is_judge_run(completed):
            return [judge_verdict(completed, online.judge)]
        request = judge_request(completed, online.judge)
        return judged(completed, online) + ([request] if request is not None else [])


PROCESSOR = Processor(
    name="observability",
    layer=4,
    accepts=frozenset({"llm.request.completed"}),
    handler=_Judge(),
    latency_tolerant=True,
)
