"""The observability processor: ``python -m streams run processors.observability.processor:
PROCESSOR``. It reads each run's terminal ``llm.request.completed`` (after the client has its
answer, so it never slows a request) and emits the online evaluators' verdicts.

Config from ``OBSERVABILITY_CONFIG`` (default ``configs/observability.yaml``), read at start."""

from __future__ import annotations

from processors.observability.config import ObservabilityConfig, load_observability_config
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
        return judged(completed, self._config.online)


PROCESSOR = Processor(
    name="observability",
    layer=4,
    accepts=frozenset({"llm.request.completed"}),
    handler=_Judge(),
    latency_tolerant=True,
)
