"""The observability processor: ``python -m streams run processors.observability.processor:
PROCESSOR``. It reads each run's terminal event and the side events of its calls on
``events.llm`` (after the client has its answer, so it never slows a request), counts them as
Prometheus metrics (served on ``METRICS_PORT``) and emits the online evaluators' verdicts on
completed runs.

Config from ``OBSERVABILITY_CONFIG`` (default ``configs/observability.yaml``), read at start."""

from __future__ import annotations

from processors.observability.config import ObservabilityConfig, load_observability_config
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
        verdicts = (
            judged(event, self._config.online)
            if event.message_type == "llm.request.completed"
            else []
        )
        self._traffic.count(event)  # after judging: a retried handler counts an event once
        return verdicts


PROCESSOR = Processor(
    name="observability",
    layer=4,
    accepts=COUNTED,
    handler=_Observer(),
    latency_tolerant=True,
)
