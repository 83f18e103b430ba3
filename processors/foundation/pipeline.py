"""The foundation handler: one ``llm.chat.requested`` in, its decisions and exactly one terminal
event out. What to do is decided by the pure core (``decisions/``); this module gives each run
its log, its task and its edge, and makes sure a command never runs twice at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from processors.foundation.decisions import Conditions, decide, interrupted
from processors.foundation.edge import RunEdge
from processors.foundation.live_config import LiveConfig
from processors.foundation.provider_pool import ProviderPool
from processors.foundation.router import LatencyTracker
from processors.foundation.run_log import RunFenced, RunJournal
from processors.foundation.stores import Stores
from schemas.chat_run import TERMINAL
from streams.envelope import Envelope

__all__ = ["ChatPipeline"]

RESULT_TTL_S = 24 * 3600


class ChatPipeline:
    """Stateless across messages: everything a run needs comes from the command, the config
    and the shared stores, so any replica can serve any command. ``clock`` (epoch seconds) is
    the runs' only clock."""

    def __init__(
        self,
        config: LiveConfig,
        stores: Stores,
        providers: ProviderPool,
        latency: LatencyTracker | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._config = config
        self._stores = stores
        self._providers = providers
        self._latency = latency or LatencyTracker()
        self._clock = clock
        self._sleep = sleep
        self._running: dict[str, asyncio.Event] = {}

    async def handle(self, command: Envelope) -> list[Envelope]:
        """The whole run at once (tests, tools)."""
        return [output async for output in self.stream(command)]

    async def stream(self, command: Envelope) -> AsyncIterator[Envelope]:
        """The run's events as they happen, ending with its terminal event. A command that is
        already running here (redelivered after a rebalance while its first run goes on) waits
        for that run, then resends its log: two runs of one command must never interleave."""
        while (running := self._running.get(command.message_id)) is not None:
            await running.wait()
        finished = self._running[command.message_id] = asyncio.Event()
        try:
            async with contextlib.aclosing(self._stream_once(command)) as outputs:
                async for output in outputs:
                    yield output
        finally:
            del self._running[command.message_id]
            finished.set()

    async def _stream_once(self, command: Envelope) -> AsyncGenerator[Envelope, None]:
        """The run goes on in a task of its own and its events reach the caller through a
        queue; when the caller stops listening (a revoked partition, a stopping runner) the
        run is cancelled, so no provider is called for a command this replica gave up."""
        queue: asyncio.Queue[Envelope | None] = asyncio.Queue()
        journal = RunJournal(
            self._stores.results, command, queue.put_nowait, TERMINAL, RESULT_TTL_S
        )
        task = asyncio.ensure_future(self._run(command, journal, queue.put_nowait))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (output := await queue.get()) is not None:
                yield output
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(
        self, command: Envelope, journal: RunJournal, send: Callable[[Envelope], None]
    ) -> None:
        """A command with a log was redelivered: what the log holds is resent and nothing is
        decided again; a run the log shows unfinished (its writer died or was fenced mid-run)
        is ended retryably. Otherwise the run decides, logging at each decision point."""
        recorded = await journal.recorded()
        if not recorded:
            try:
                await self._decide(command, journal.commit, send)
                return
            except RunFenced as fenced:
                recorded = fenced.outputs
        while True:
            for output in recorded:
                send(output)  # exact duplicates of whatever was sent before
            if journal.ended(recorded):
                return
            try:
                await journal.commit([interrupted(command)])
                return
            except RunFenced as fenced:
                recorded = fenced.outputs

    async def _decide(
        self,
        command: Envelope,
        commit: Callable[[list[Envelope]], Awaitable[None]],
        send: Callable[[Envelope], None],
    ) -> None:
        config = self._config.current()
        providers = self._providers.for_config(config)
        timeouts = ProviderPool.timeouts(config)
        conditions = Conditions(
            {name: timeouts[name] for name in providers}, self._latency.snapshot()
        )
        edge = RunEdge(
            command,
            self._stores,
            providers,
            self._latency,
            self._clock,
            self._sleep,
            commit,
            send,
            ProviderPool.idle_timeouts(config),
        )
        await edge.run(decide(command, config, conditions))
