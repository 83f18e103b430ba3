"""One run's record: the events the pipeline emits, in order, and its clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.envelope import Envelope

__all__ = ["RunRecord"]


@dataclass
class RunRecord:
    """Outputs accumulate here (the run's record) and go to ``listener`` as they happen (the
    live stream the runner sends)."""

    command: Envelope
    listener: Callable[[Envelope], None] | None = None  # sees each output as it is emitted
    monotonic: Callable[[], float] = time.monotonic
    outputs: list[Envelope] = field(default_factory=list)
    started_at: float = 0.0
    attempts: int = 0

    def __post_init__(self) -> None:
        self.started_at = self.monotonic()

    def emit(self, message_type: str, payload: dict[str, Any]) -> None:
        output = self.command.derive(message_type, payload)
        self.outputs.append(output)
        if self.listener is not None:
            self.listener(output)

    def elapsed_ms(self) -> int:
        return int((self.monotonic() - self.started_at) * 1000)
