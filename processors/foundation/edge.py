"""Where a run's effects happen: the one place that touches the stores, the providers, the
run log and the clock for the decision core. Shared-state failures become ``UNAVAILABLE``
outcomes (the core decides what they mean) or, for writes nothing waits on, a warning."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from opentelemetry.trace import Span

from processors.foundation.decisions.effects import (
    UNAVAILABLE,
    AcquireBreaker,
    CallProvider,
    ChargeBudget,
    Checkpoint,
    Decisions,
    Emit,
    EmitLive,
    FindCached,
    FindSimilar,
    NextDelta,
    Now,
    ObserveLatency,
    OpenStream,
    RecordBreaker,
    ReleaseBudget,
    ReserveBudget,
    SettleBudget,
    Sleep,
    StoreAnswer,
    StreamEnd,
)
from processors.foundation.gen_ai_spans import end_call_span, start_call_span
from processors.foundation.providers import (
    ChatDelta,
    ChatResult,
    FailureKind,
    Provider,
    ProviderError,
)
from processors.foundation.router import LatencyTracker
from processors.foundation.stores import Stores, StoreUnavailable
from streams.envelope import Envelope, derived_id

__all__ = ["RunEdge"]

log = logging.getLogger(__name__)
_GRACE_S = 0.5  # a call is cut this long past its adapter's own timeout, whatever the adapter


@dataclass
class _OpenStream:
    """A streaming call in progress, bounded by one timer rather than a timeout per delta
    (which would cost more than the delta): the whole stream's bound, and once it has begun,
    how long it may go quiet (``idle_s``). A delta only notes its time; the timer, when it
    fires, expires the stream or is set again for the later of the bounds. When it expires
    the stream while the run waits for a delta, the wait is cancelled; between deltas, the
    next wait ends at once."""

    deltas: AsyncIterator[ChatDelta]
    timeout_s: float
    idle_s: float | None
    started: float  # the run's clock
    loop: asyncio.AbstractEventLoop
    deadline: float  # loop time
    first: float | None = None  # the run's clock, at the first delta
    last_at: float | None = None  # loop time of the latest delta
    waiting: asyncio.Task[Any] | None = None
    expired: bool = False
    went_quiet: bool = False
    watchdog: asyncio.TimerHandle | None = None
    span: Span | None = None  # the call's GenAI span, when spans are exported

    def arm(self, at: float) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        self.watchdog = self.loop.call_at(at, self._check)

    def delta_arrived(self) -> None:
        now = self.loop.time()
        if self.last_at is None and self.idle_s is not None:
            self.arm(min(self.deadline, now + self.idle_s))  # once: the quiet bound begins
        self.last_at = now

    def failure(self) -> ProviderError:
        if self.went_quiet and self.idle_s is not None:
            return ProviderError(FailureKind.TIMEOUT, f"no chunk for {self.idle_s:.1f}s mid-stream")
        return _timed_out(self.timeout_s)

    def _check(self) -> None:
        now = self.loop.time()
        if now >= self.deadline:
            return self._expire()
        if self.idle_s is not None and self.last_at is not None:
            quiet_until = self.last_at + self.idle_s
            if now >= quiet_until:
                self.went_quiet = True
                return self._expire()
            return self.arm(min(self.deadline, quiet_until))
        return self.arm(self.deadline)

    def _expire(self) -> None:
        self.expired = True
        if self.waiting is not None:
            self.waiting.cancel()


class RunEdge:
    """Performs one run's effects. Decided events wait in ``pending`` until a ``Checkpoint``
    hands them to ``commit`` (the run log, which logs then sends them); live events go to
    ``release`` at once."""

    def __init__(
        self,
        command: Envelope,
        stores: Stores,
        providers: Mapping[str, Provider],
        latency: LatencyTracker,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        commit: Callable[[list[Envelope]], Awaitable[None]],
        release: Callable[[Envelope], None],
        idle_timeouts_s: Mapping[str, float] | None = None,
    ) -> None:
        self._command = command
        self._stores = stores
        self._providers = providers
        self._latency = latency
        self._clock = clock
        self._sleep = sleep
        self._commit = commit
        self._release = release
        self._idle_timeouts_s = idle_timeouts_s or {}
        self._pending: list[Envelope] = []
        self._stream: _OpenStream | None = None

    async def run(self, decisions: Decisions[None]) -> None:
        """Answer ``decisions`` until they end. An exception here (the run log fenced this
        writer, the task was cancelled) closes them and any open stream, and propagates."""
        outcome: Any = None
        try:
            while True:
                try:
                    effect = decisions.send(outcome)
                except StopIteration:
                    return
                instant = self._INSTANT.get(type(effect))
                if instant is not None:
                    outcome = instant(self, effect)
                else:
                    outcome = await self._AWAITED[type(effect)](self, effect)
        finally:
            decisions.close()
            await self._end_stream()

    def _now(self, _: Now) -> float:
        return self._clock()

    def _observe_latency(self, effect: ObserveLatency) -> None:
        self._latency.observe(effect.key, effect.latency_ms)

    async def _sleep_for(self, effect: Sleep) -> None:
        await self._sleep(effect.seconds)

    def _emit(self, effect: Emit) -> None:
        self._pending.append(self._command.derive(effect.event_type, effect.payload))

    def _emit_live(self, effect: EmitLive) -> None:
        named = derived_id(self._command.message_id, effect.slot)
        self._release(self._command.derive(effect.event_type, effect.payload, named))

    async def _checkpoint(self, _: Checkpoint) -> None:
        if self._pending:
            decided, self._pending = self._pending, []
            await self._commit(decided)

    async def _find_cached(self, effect: FindCached) -> object:
        try:
            return await self._stores.cache.get(effect.key)
        except StoreUnavailable:
            return UNAVAILABLE

    async def _find_similar(self, effect: FindSimilar) -> object:
        try:
            return await self._stores.semantic.nearest(
                effect.scope, effect.vector, effect.threshold, effect.now
            )
        except StoreUnavailable:
            return UNAVAILABLE

    async def _store_answer(self, effect: StoreAnswer) -> None:
        try:
            if effect.exact_key is not None:
                await self._stores.cache.put(effect.exact_key, effect.entry, effect.ttl_s)
            if effect.semantic is not None:
                scope, vector = effect.semantic
                await self._stores.semantic.add(
                    scope, vector, effect.entry, effect.ttl_s, effect.now
                )
        except StoreUnavailable:
            log.warning("cache write skipped: store unavailable")

    async def _reserve(self, effect: ReserveBudget) -> object:
        try:
            return await self._stores.budgets.reserve(
                effect.tenant, effect.tokens, effect.cost_usd, effect.budget, effect.now
            )
        except StoreUnavailable:
            return UNAVAILABLE

    async def _settle(self, effect: SettleBudget) -> None:
        try:
            await self._stores.budgets.settle(effect.reservation, effect.tokens, effect.cost_usd)
        except StoreUnavailable:
            log.warning("budget settle lost: store unavailable (the estimate stays counted)")

    async def _charge(self, effect: ChargeBudget) -> None:
        try:
            await self._stores.budgets.charge(
                effect.tenant, effect.tokens, effect.cost_usd, effect.now
            )
        except StoreUnavailable:
            log.warning("budget charge lost: store unavailable")

    async def _release_budget(self, effect: ReleaseBudget) -> None:
        try:
            await self._stores.budgets.release(effect.reservation)
        except StoreUnavailable:
            log.warning("budget release lost: store unavailable")

    async def _acquire_breaker(self, effect: AcquireBreaker) -> object:
        try:
            permit = await self._stores.breakers.acquire(effect.key, effect.settings, effect.now)
        except StoreUnavailable:
            return UNAVAILABLE
        return permit.allowed

    async def _record_breaker(self, effect: RecordBreaker) -> object:
        try:
            return await self._stores.breakers.record(
                effect.key, effect.success, effect.settings, effect.now
            )
        except StoreUnavailable:
            return UNAVAILABLE

    async def _call(self, effect: CallProvider) -> ChatResult | ProviderError:
        provider = self._providers[effect.provider]
        span = start_call_span(effect.provider, effect.request, streaming=False)
        outcome: ChatResult | ProviderError
        try:
            async with asyncio.timeout(effect.timeout_s + _GRACE_S):
                outcome = await provider.complete(effect.request, effect.timeout_s)
        except ProviderError as error:
            outcome = error
        except TimeoutError:
            outcome = _timed_out(effect.timeout_s)
        end_call_span(span, outcome)
        return outcome

    async def _open_stream(self, effect: OpenStream) -> None:
        await self._end_stream()
        deltas = self._providers[effect.provider].stream(effect.request, effect.timeout_s)
        loop = asyncio.get_running_loop()
        stream = self._stream = _OpenStream(
            deltas,
            effect.timeout_s,
            self._idle_timeouts_s.get(effect.provider),
            self._clock(),
            loop,
            loop.time() + effect.timeout_s + _GRACE_S,
            span=start_call_span(effect.provider, effect.request, streaming=True),
        )
        stream.arm(stream.deadline)

    async def _next_delta(self, _: NextDelta) -> ChatDelta | StreamEnd | ProviderError:
        stream = self._stream
        if stream is None:
            raise RuntimeError("NextDelta without an open stream")
        if stream.expired:
            await self._end_stream()
            return stream.failure()
        task = stream.waiting = asyncio.current_task()
        try:
            delta = await anext(stream.deltas)
        except StopAsyncIteration:
            await self._end_stream()
            now, first = self._clock(), stream.first
            return StreamEnd(
                int((now - stream.started) * 1000),
                int((first - stream.started) * 1000) if first is not None else None,
            )
        except ProviderError as error:
            await self._end_stream()
            return error
        except asyncio.CancelledError:
            if not stream.expired or task is None or task.uncancel() > 0:
                raise  # not (only) the watchdog: the run itself is cancelled
            await self._end_stream()
            return stream.failure()
        finally:
            stream.waiting = None
        if stream.first is None:
            stream.first = self._clock()
        stream.delta_arrived()
        return delta

    async def _end_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        if stream.watchdog is not None:
            stream.watchdog.cancel()
        end_call_span(stream.span, None)
        aclose = getattr(stream.deltas, "aclose", None)
        if aclose is not None:
            await aclose()

    # effect type -> the method that performs it (instant ones need no await)
    _INSTANT: ClassVar[dict[type, Callable[[Any, Any], Any]]] = {
        Now: _now,
        Emit: _emit,
        EmitLive: _emit_live,
        ObserveLatency: _observe_latency,
    }
    _AWAITED: ClassVar[dict[type, Callable[[Any, Any], Awaitable[Any]]]] = {
        Checkpoint: _checkpoint,
        FindCached: _find_cached,
        FindSimilar: _find_similar,
        StoreAnswer: _store_answer,
        ReserveBudget: _reserve,
        SettleBudget: _settle,
        ChargeBudget: _charge,
        ReleaseBudget: _release_budget,
        AcquireBreaker: _acquire_breaker,
        RecordBreaker: _record_breaker,
        Sleep: _sleep_for,
        CallProvider: _call,
        OpenStream: _open_stream,
        NextDelta: _next_delta,
    }


def _timed_out(timeout_s: float) -> ProviderError:
    return ProviderError(FailureKind.TIMEOUT, f"no answer within {timeout_s:.1f}s")
