"""The foundation handler: one ``llm.chat.requested`` in, its decisions and exactly one terminal
event out. Guard input -> route -> cache -> reserve budget -> call (retries, fallbacks,
breakers) -> guard output -> settle budget -> cache the answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from processors.foundation.answer_cache import AnswerCache, CachedAnswer, CacheKeys
from processors.foundation.calling import CallOutcome, CallSpec, ReliableCaller
from processors.foundation.config import FoundationConfig, GuardrailPolicy, Route, TenantBudget
from processors.foundation.guardrails import GuardrailOutcome, Violation, check_input, check_output
from processors.foundation.live_config import LiveConfig
from processors.foundation.provider_pool import ProviderPool
from processors.foundation.providers import ChatMessage, ChatResult, Usage, cost_usd, count_tokens
from processors.foundation.request import ParsedRequest, parse_request
from processors.foundation.run import RunRecord
from processors.foundation.run_log import RunFenced, RunJournal
from processors.foundation.stores import BudgetRejection, Reservation, Stores, StoreUnavailable
from streams.envelope import Envelope
from streams.errors import ErrorCode, PlatformError

__all__ = ["ChatPipeline"]

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 60.0
RESULT_TTL_S = 24 * 3600


@dataclass(frozen=True)
class _Admission:
    route: Route
    reservation: Reservation | None
    degraded: bool


class ChatPipeline:
    """Stateless across messages: everything a run needs comes from the command, the config
    and the shared stores, so any replica can serve any command."""

    def __init__(
        self,
        config: LiveConfig,
        stores: Stores,
        providers: ProviderPool,
        caller: ReliableCaller,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._stores = stores
        self._providers = providers
        self._caller = caller
        self._cache = AnswerCache(stores)
        self._running: dict[str, asyncio.Event] = {}
        self._wall_clock = wall_clock

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
        """The run decides in a task of its own and its events reach the caller through a
        queue; when the caller stops listening (a revoked partition, a stopping runner) the
        run is cancelled, so no provider is called for a command this replica gave up."""
        queue: asyncio.Queue[Envelope | None] = asyncio.Queue()
        journal = RunJournal(
            self._stores.results, command, queue.put_nowait, _TERMINAL, RESULT_TTL_S
        )
        task = asyncio.ensure_future(self._decide(command, journal, queue.put_nowait))
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

    async def _decide(
        self, command: Envelope, journal: RunJournal, send: Callable[[Envelope], None]
    ) -> None:
        """A command with a log was redelivered: what the log holds is resent and nothing is
        decided again; a run the log shows unfinished (its writer died or was fenced mid-run)
        is ended retryably. Otherwise the run decides, logging at each decision point."""
        recorded = await journal.recorded()
        if not recorded:
            run = RunRecord(command, commit=journal.commit, release=send)
            try:
                await self._run(run)
                await run.checkpoint()
                return
            except RunFenced as fenced:
                recorded = fenced.outputs
        while True:
            for output in recorded:
                send(output)  # exact duplicates of whatever was sent before
            if journal.ended(recorded):
                return
            try:
                await journal.commit([_interrupted(command)])
                return
            except RunFenced as fenced:
                recorded = fenced.outputs

    async def _run(self, run: RunRecord) -> None:
        payload = run.command.payload
        run.emit(
            "llm.request.started",
            {
                "model": payload.get("model"),
                "mode": str(payload["mode"]),
                "message_count": len(payload["messages"]),
                "stream": bool(payload.get("stream")),
            },
        )
        try:
            await self._serve(run, self._config.current())
        except PlatformError as error:
            self._fail(run, error)
        except RunFenced:
            raise
        except Exception:
            log.exception(
                "foundation pipeline bug", extra={"correlation_id": run.command.correlation_id}
            )
            self._fail(run, PlatformError(ErrorCode.INTERNAL, "internal error"))

    async def _serve(self, run: RunRecord, config: FoundationConfig) -> None:
        command = run.command
        request = parse_request(command.payload, command.timestamp, DEFAULT_TIMEOUT_S)
        deadline = (request.deadline or datetime.now(UTC)).timestamp()
        policy_name, policy = _policy(config, command.tenant_id)
        budget = config.budgets.budget_for(command.tenant_id)
        if budget is None:
            raise PlatformError(
                ErrorCode.UNKNOWN_TENANT, f"no budget for tenant {command.tenant_id!r}"
            )
        guarded = check_input(request.chat.messages, request.model_hint, policy, policy_name)
        flags = self._emit_violations(run, guarded)
        if guarded.blocked:
            raise PlatformError(ErrorCode.GUARDRAIL_BLOCKED, f"blocked by {guarded.blocked_by}")
        messages = guarded.messages
        route = config.routing.route_for(request.mode, command.tenant_id, request.model_hint)
        if route is None:
            raise PlatformError(ErrorCode.NO_ROUTE, f"no route for mode {request.mode!r}")
        keys = CacheKeys.of(command.tenant_id, route, request, messages)
        cached = await self._cache.lookup(run, route, request, keys, self._wall_clock())
        if cached is not None:
            run.emit("llm.request.completed", _from_cache(run, cached, flags))
            return
        admission = await self._admit(run, config, route, budget, request, messages)
        try:
            spec = CallSpec(
                self._providers.for_config(config),
                self._providers.timeouts(config),
                lambda model: request.for_target(model, messages),
                request.stream,
                policy,
                deadline,
                config.routing.breaker,
            )
            outcome = await self._caller.call(run, admission.route, spec)
        except PlatformError:
            await self._release(admission.reservation)
            raise
        usage = _usage(outcome, messages)
        cost = cost_usd(_price(config, outcome), usage)
        await self._settle(run.command.tenant_id, admission, usage, cost)
        answer = check_output(outcome.result.text or "", policy, policy_name)
        flags += self._emit_violations(run, answer)
        if answer.blocked:
            raise PlatformError(
                ErrorCode.GUARDRAIL_BLOCKED, f"answer blocked by {answer.blocked_by}"
            )
        completed = _completed(run, outcome, usage, cost, answer.text, flags, admission.degraded)
        await self._cache.store(route, request, keys, completed, self._wall_clock())
        run.emit("llm.request.completed", completed)

    async def _admit(
        self,
        run: RunRecord,
        config: FoundationConfig,
        route: Route,
        budget: TenantBudget,
        request: ParsedRequest,
        messages: list[ChatMessage],
    ) -> _Admission:
        primary = route.policy.primary
        prompt_tokens = count_tokens(primary.model, messages)
        tokens = prompt_tokens + request.expected_completion_tokens()
        price = config.providers.providers[primary.provider].models.get(primary.model)
        cost = cost_usd(price, Usage(prompt_tokens, request.expected_completion_tokens(), False))
        _check_request_caps(request, tokens, cost)
        tenant = run.command.tenant_id
        try:
            decision = await self._stores.budgets.reserve(
                tenant, tokens, cost, budget, self._wall_clock()
            )
        except StoreUnavailable:
            fail_open = config.budgets.on_store_unavailable == "fail_open"
            run.emit(
                "budget.check.completed",
                _budget_event("error", tokens, cost, reason="budget store unavailable"),
            )
            if fail_open:
                return _Admission(route, None, degraded=False)
            raise PlatformError(
                ErrorCode.DEPENDENCY_UNAVAILABLE, "budget store unavailable"
            ) from None
        if isinstance(decision, BudgetRejection):
            reason = f"{decision.limit} limit reached"
            if budget.on_exceeded == "degrade" and budget.degrade_route is not None:
                degraded = config.routing.route_by_id(budget.degrade_route)
                if degraded is not None and degraded.id != route.id:
                    run.emit(
                        "budget.check.completed",
                        _budget_event("degraded", tokens, cost, decision.limit, reason),
                    )
                    return _Admission(degraded, None, degraded=True)
            run.emit(
                "budget.check.completed",
                _budget_event("rejected", tokens, cost, decision.limit, reason),
            )
            raise PlatformError(ErrorCode.BUDGET_EXCEEDED, reason)
        run.emit(
            "budget.check.completed",
            {
                **_budget_event("admitted", tokens, cost, decision.window),
                "remaining_tokens": decision.remaining_tokens,
                "remaining_cost_usd": decision.remaining_cost_usd,
            },
        )
        return _Admission(route, decision, degraded=False)

    async def _settle(self, tenant: str, admission: _Admission, usage: Usage, cost: float) -> None:
        """Replace the estimate with the real usage; a degraded (unreserved) run is charged."""
        ledger = self._stores.budgets
        try:
            if admission.reservation is not None:
                await ledger.settle(admission.reservation, usage.total_tokens, cost)
            elif admission.degraded:
                await ledger.charge(tenant, usage.total_tokens, cost, self._wall_clock())
        except StoreUnavailable:
            log.warning("budget settle lost: store unavailable (the estimate stays counted)")

    async def _release(self, reservation: Reservation | None) -> None:
        if reservation is None:
            return
        try:
            await self._stores.budgets.release(reservation)
        except StoreUnavailable:
            log.warning("budget release lost: store unavailable")

    def _emit_violations(self, run: RunRecord, outcome: GuardrailOutcome) -> list[str]:
        for violation in outcome.violations:
            run.emit("guardrail.violation.detected", _violation_event(violation))
        return [v.rule for v in outcome.violations if v.action == "flag"]

    def _fail(self, run: RunRecord, error: PlatformError) -> None:
        run.emit("llm.request.failed", _failed(error, run.elapsed_ms(), run.attempts))


_TERMINAL = frozenset({"llm.request.completed", "llm.request.failed"})


def _interrupted(command: Envelope) -> Envelope:
    error = PlatformError(ErrorCode.RUN_INTERRUPTED, "the run was interrupted; retry it")
    return command.derive("llm.request.failed", _failed(error, latency_ms=0, attempts=0))


def _failed(error: PlatformError, latency_ms: int, attempts: int) -> dict[str, Any]:
    return {
        "error_code": error.code.value,
        "message": error.message,
        "retryable": error.retryable,
        "provider": None,
        "model": None,
        "latency_ms": latency_ms,
        "attempts": attempts,
    }


def _policy(config: FoundationConfig, tenant: str) -> tuple[str, GuardrailPolicy]:
    found = config.guardrails.policy_for(tenant)
    if found is None:
        raise PlatformError(ErrorCode.UNKNOWN_TENANT, f"no guardrail policy for tenant {tenant!r}")
    return found


def _check_request_caps(request: ParsedRequest, tokens: int, cost: float) -> None:
    if request.max_total_tokens is not None and tokens > request.max_total_tokens:
        raise PlatformError(
            ErrorCode.BUDGET_EXCEEDED,
            f"estimated {tokens} tokens exceed the request's budget of {request.max_total_tokens}",
        )
    if request.max_cost_usd is not None and cost > request.max_cost_usd:
        raise PlatformError(
            ErrorCode.BUDGET_EXCEEDED,
            f"estimated ${cost:.6f} exceeds the request's budget of ${request.max_cost_usd}",
        )


def _usage(outcome: CallOutcome, messages: list[ChatMessage]) -> Usage:
    """The provider's usage, or our count when it reported none."""
    usage = outcome.result.usage
    if usage.reported_by_provider:
        return usage
    answer = [ChatMessage(role="assistant", content=outcome.result.text or "")]
    return Usage(
        count_tokens(outcome.target.model, messages),
        count_tokens(outcome.target.model, answer),
        reported_by_provider=False,
    )


def _price(config: FoundationConfig, outcome: CallOutcome) -> Any:
    return config.providers.providers[outcome.target.provider].models.get(outcome.target.model)


def _completed(
    run: RunRecord,
    outcome: CallOutcome,
    usage: Usage,
    cost: float,
    text: str,
    flags: list[str],
    degraded: bool,
) -> dict[str, Any]:
    result: ChatResult = outcome.result
    return {
        "provider": outcome.target.provider,
        "model": outcome.target.model,
        "latency_ms": run.elapsed_ms(),
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost_usd": cost,
        "cache_hit": False,
        "saved_cost_usd": 0.0,
        "fallback_used": outcome.fallback_used,
        "attempts": run.attempts,
        "status": "degraded" if degraded else "ok",
        "output_text": text if result.text is not None else None,
        "tool_calls_json": json.dumps(result.tool_calls) if result.tool_calls else None,
        "finish_reason": result.finish_reason,
        "safety_flags": flags,
    }


def _from_cache(run: RunRecord, cached: CachedAnswer, flags: list[str]) -> dict[str, Any]:
    return {
        **cached.fields,
        "latency_ms": run.elapsed_ms(),
        "cost_usd": 0.0,
        "cache_hit": True,
        "saved_cost_usd": cached.fields["cost_usd"],
        "fallback_used": False,
        "attempts": 0,
        "safety_flags": flags,
    }


def _budget_event(
    decision: str, tokens: int, cost: float, window: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    return {
        "decision": decision,
        "policy": "budgets.yaml",
        "window": window,
        "reserved_tokens": tokens if decision == "admitted" else 0,
        "reserved_cost_usd": cost if decision == "admitted" else 0.0,
        "remaining_tokens": None,
        "remaining_cost_usd": None,
        "reason": reason,
    }


def _violation_event(violation: Violation) -> dict[str, Any]:
    return {
        "stage": violation.stage,
        "policy": violation.policy,
        "rule": violation.rule,
        "action": violation.action,
        "spans": [{"message_index": i, "start": s, "end": e} for i, s, e in violation.spans],
        "value_hash": violation.value_hash,
        "score": violation.score,
    }
