"""One run's record: the events the pipeline decides, in order, and its clock."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from streams.envelope import Envelope, derived_id

__all__ = ["RunRecord"]


@dataclass
class RunRecord:
    """Decided events wait in ``pending`` until the next ``checkpoint`` hands them to
    ``commit`` (the run log, which logs then sends them): a run checkpoints before each
    provider call and once at its end, so the log is written at decision points, not per
    event. Deltas are the exception: ``emit_live`` sends them at once, unlogged, under ids of
    their own (attempt and index) that no other event can take."""

    command: Envelope
    commit: Callable[[list[Envelope]], Awaitable[None]]  # logs, then sends
    release: Callable[[Envelope], None]  # sends a live (unlogged) event
    monotonic: Callable[[], float] = time.monotonic
    pending: list[Envelope] = field(default_factory=list)
    started_at: float = 0.0
    attempts: int = 0

    def __post_init__(self) -> None:
        self.started_at = self.monotonic()

    def emit(self, message_type: str, payload: dict[str, Any]) -> None:
        self.pending.append(self.command.derive(message_type, payload))

    def emit_live(self, message_type: str, payload: dict[str, Any], slot: str) -> None:
        output = self.command.derive(message_type, payload)
        self.release(replace(output, message_id=derived_id(self.command.message_id, slot)))

    async def checkpoint(self) -> None:
        """Log and send what was decided since the last checkpoint."""
        if self.pending:
            decided, self.pending = self.pending, []
            await self.commit(decided)

    def elapsed_ms(self) -> int:
        return int((self.monotonic() - self.started_at) * 1000)
