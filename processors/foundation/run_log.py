"""The run log's writer for one command: a segment of decided outputs is logged, then sent;
nothing is sent that the log does not hold. Ids come from the log too: a logged event's id
is its position among the logged events, the terminal event's is fixed (``terminal``), so a
redelivery that resends the log resends exact duplicates, and a command has one terminal id.

A log that does not answer is waited for, up to ``PATIENCE_S`` per run: long enough for a
stalled loop or a Redis restart, short of a request's patience. Past it the run goes on
unlogged (as a single replica without shared state would), because a run stuck for the length
of a Redis outage is worse for its client than the rare redelivery it would leave inexact."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from processors.foundation.stores import ResultStore, StoreUnavailable
from streams.envelope import Envelope, derived_id

__all__ = ["RunFenced", "RunJournal"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 0.5
PATIENCE_S = 3.0


class RunFenced(Exception):
    """Another writer holds the command's log: this run must send nothing of its own."""

    def __init__(self, outputs: list[Envelope]) -> None:
        super().__init__("another writer holds this command's run log")
        self.outputs = outputs


class RunJournal:
    def __init__(
        self,
        store: ResultStore,
        command: Envelope,
        send: Callable[[Envelope], None],
        terminal_types: frozenset[str],
        ttl_s: float,
    ) -> None:
        self._store = store
        self._command = command
        self._send = send
        self._terminal_types = terminal_types
        self._ttl_s = ttl_s
        self._history: list[bytes] = []
        self._logged = 0
        self._patience_ends: float | None = None
        self._unlogged = False

    async def recorded(self) -> list[Envelope]:
        """What earlier writers logged (and may have sent), adopted as this writer's history;
        empty when the log stayed unavailable (the run then goes on unlogged)."""
        entries = await self._patiently(lambda: self._store.read(self._command.message_id))
        return self._adopt(entries or [])

    def ended(self, outputs: list[Envelope]) -> bool:
        return any(o.message_type in self._terminal_types for o in outputs)

    async def commit(self, outputs: list[Envelope]) -> None:
        """Log ``outputs`` as one segment, then send them; raise ``RunFenced`` (with the log
        that won) when another writer's history is in the log instead."""
        named = [self._named(output, self._logged + i) for i, output in enumerate(outputs)]
        segment = json.dumps(
            [{"id": o.message_id, "type": o.message_type, "payload": o.payload} for o in named]
        ).encode()
        history = [*self._history, segment]
        command_id = self._command.message_id
        held = await self._patiently(lambda: self._store.extend(command_id, history, self._ttl_s))
        if held is not None and held != history:
            raise RunFenced(self._adopt(held))
        self._history = history
        self._logged += len(named)
        for output in named:
            self._send(output)

    async def _patiently(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """The call's answer, tried again (backing off) while the run's patience lasts; None
        once it ran out, and from then on without trying."""
        delay = _BACKOFF_S
        loop = asyncio.get_running_loop()
        while not self._unlogged:
            try:
                return await call()
            except StoreUnavailable as error:
                if self._patience_ends is None:
                    self._patience_ends = loop.time() + PATIENCE_S
                if loop.time() + delay > self._patience_ends:
                    self._unlogged = True
                    log.warning(
                        "run log unavailable for %.0f s, the run goes on unlogged: %s",
                        PATIENCE_S,
                        error,
                        extra={"correlation_id": self._command.correlation_id},
                    )
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
        return None

    def _named(self, output: Envelope, position: int) -> Envelope:
        slot: int | str = "terminal" if output.message_type in self._terminal_types else position
        named = derived_id(self._command.message_id, slot)
        return self._command.derive(output.message_type, output.payload, named)

    def _adopt(self, entries: list[bytes]) -> list[Envelope]:
        self._history = list(entries)
        outputs = [
            self._command.derive(item["type"], item["payload"], str(item["id"]))
            for entry in entries
            for item in json.loads(entry)
        ]
        self._logged = len(outputs)
        return outputs
