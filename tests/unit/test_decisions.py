"""The decision core driven without I/O: every effect answered by a scripted world, every
event checked. These are the pipeline's rules as a client would state them."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from processors.foundation.config import FoundationConfig
from processors.foundation.decisions import Conditions, decide
from processors.foundation.decisions.effects import (
    UNAVAILABLE,
    AcquireBreaker,
    CallProvider,
    Checkpoint,
    Effect,
    Emit,
    EmitLive,
    FindCached,
    NextDelta,
    Now,
    OpenStream,
    RecordBreaker,
    ReleaseBudget,
    ReserveBudget,
    SettleBudget,
    Sleep,
    StreamEnd,
)
from processors.foundation.providers import (
    ChatDelta,
    ChatResult,
    FailureKind,
    ProviderError,
    Usage,
)
from processors.foundation.stores import BudgetRejection, Reservation
from streams.envelope import Envelope
from tests.factories import chat_command
from tests.unit.foundation_config import FILES, config

CARD = "4111 1111 1111 1111"


def answer(text: str = "hello there") -> ChatResult:
    return ChatResult(text, None, "stop", Usage(10, 3, reported_by_provider=True), latency_ms=50)


def failure(kind: FailureKind = FailureKind.SERVER_ERROR) -> ProviderError:
    return ProviderError(kind, "upstream said no", status=503)


RESERVATION = Reservation("tenant-a", 100, 0.001, ("minute:0",), "minute", 900, 0.5)


@dataclass
class World:
    """Answers effects the way the test says; records every effect and event."""

    now: float
    calls: list[ChatResult | ProviderError] = field(default_factory=lambda: [answer()])
    deltas: list[ChatDelta | StreamEnd | ProviderError] = field(default_factory=list)
    cached: bytes | object | None = None
    budget: object = RESERVATION
    breaker_open: frozenset[str] = frozenset()
    effects: list[Effect[Any]] = field(default_factory=list)

    def answer(self, effect: Effect[Any]) -> Any:
        self.effects.append(effect)
        answers: dict[type, Callable[[Any], Any]] = {
            Now: lambda _: self.now,
            FindCached: lambda _: self.cached,
            ReserveBudget: lambda _: self.budget,
            AcquireBreaker: lambda e: e.key not in self.breaker_open,
            RecordBreaker: lambda _: None,
            CallProvider: lambda _: self.calls.pop(0),
            NextDelta: lambda _: self.deltas.pop(0),
        }
        respond = answers.get(type(effect))
        return respond(effect) if respond is not None else None

    def events(self) -> list[Emit]:
        return [e for e in self.effects if isinstance(e, Emit)]

    def types(self) -> list[str]:
        return [e.event_type for e in self.events()]

    def terminal(self) -> dict[str, Any]:
        return self.events()[-1].payload

    def of(self, kind: type[Effect[Any]]) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]


def run(world: World, command: Envelope, cfg: FoundationConfig | None = None) -> World:
    conditions = Conditions({"primary": 3.0, "fallback": 3.0}, {})
    decisions = decide(command, cfg or config(), conditions)
    outcome: Any = None
    while True:
        try:
            effect = decisions.send(outcome)
        except StopIteration:
            return world
        outcome = world.answer(effect)


def world_for(command: Envelope, **fields: Any) -> World:
    return World(now=command.timestamp.timestamp(), **fields)


def test_a_miss_is_guarded_routed_reserved_called_settled_and_cached() -> None:
    command = chat_command("run-1")
    world = run(world_for(command), command)
    assert world.types() == [
        "llm.request.started",
        "cache.lookup.completed",
        "budget.check.completed",
        "router.decision.made",
        "llm.request.completed",
    ]
    done = world.terminal()
    assert (done["provider"], done["model"], done["output_text"]) == (
        "primary",
        "gpt-x",
        "hello there",
    )
    assert (done["attempts"], done["fallback_used"], done["cache_hit"]) == (1, False, False)
    assert done["cost_usd"] == pytest.approx((10 * 1.0 + 3 * 2.0) / 1e6)
    [settle] = world.of(SettleBudget)
    assert (settle.reservation, settle.tokens) == (RESERVATION, 13)
    assert not world.of(ReleaseBudget)


def test_the_decision_to_call_is_logged_before_the_provider_is_paid_and_the_end_after() -> None:
    command = chat_command("run-1")
    effects = run(world_for(command), command).effects
    call = next(i for i, e in enumerate(effects) if isinstance(e, CallProvider))
    assert isinstance(effects[call - 1], Checkpoint)
    assert isinstance(effects[-1], Checkpoint)
    emitted_after_last_checkpoint = [e for e in effects[call:] if isinstance(e, Emit)]
    assert emitted_after_last_checkpoint[-1].event_type == "llm.request.completed"


def test_a_cache_hit_answers_without_budget_or_provider() -> None:
    command = chat_command("run-1")
    fields = {
        "provider": "primary",
        "model": "gpt-x",
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "total_tokens": 13,
        "cost_usd": 0.5,
        "status": "ok",
        "output_text": "from cache",
        "tool_calls_json": None,
        "finish_reason": "stop",
    }
    cached = json.dumps(fields).encode()
    world = run(world_for(command, cached=cached), command)
    assert not world.of(ReserveBudget) and not world.of(CallProvider)
    done = world.terminal()
    assert (done["cache_hit"], done["output_text"], done["saved_cost_usd"], done["cost_usd"]) == (
        True,
        "from cache",
        0.5,
        0.0,
    )


def test_a_cache_that_does_not_answer_is_a_miss() -> None:
    command = chat_command("run-1")
    world = run(world_for(command, cached=UNAVAILABLE), command)
    lookup = world.events()[1].payload
    assert (lookup["outcome"], world.terminal()["output_text"]) == ("error", "hello there")


def test_retryable_failures_retry_then_fall_back_with_every_step_an_event() -> None:
    command = chat_command("run-1")
    world = run(world_for(command, calls=[failure(), failure(), answer("from fallback")]), command)
    assert world.types()[3:] == [
        "router.decision.made",
        "llm.attempt.failed",
        "router.decision.made",
        "llm.attempt.failed",
        "router.fallback.triggered",
        "router.decision.made",
        "llm.request.completed",
    ]
    assert [
        e.payload["reason"] for e in world.events() if e.event_type == "router.decision.made"
    ] == [
        "primary",
        "retry",
        "fallback",
    ]
    [backoff] = world.of(Sleep)
    assert 0 <= backoff.seconds <= 0.02
    done = world.terminal()
    assert (done["provider"], done["attempts"], done["fallback_used"]) == ("fallback", 3, True)
    assert [r.success for r in world.of(RecordBreaker)] == [False, False, True]


def test_a_client_error_is_not_retried_and_when_every_target_fails_the_budget_is_released() -> None:
    command = chat_command("run-1")
    calls: list[ChatResult | ProviderError] = [failure(FailureKind.CLIENT_ERROR), failure()]
    calls.append(failure())
    world = run(world_for(command, calls=calls), command)
    assert world.types()[-1] == "llm.request.failed"
    done = world.terminal()
    assert (done["error_code"], done["attempts"], done["retryable"]) == (
        "ALL_ROUTES_FAILED",
        3,
        True,
    )
    assert [r.reservation for r in world.of(ReleaseBudget)] == [RESERVATION]
    assert not world.of(SettleBudget)


def test_an_open_breaker_skips_its_target_without_calling_it() -> None:
    command = chat_command("run-1")
    world = run(world_for(command, breaker_open=frozenset({"primary/gpt-x"})), command)
    [call] = world.of(CallProvider)
    assert call.provider == "fallback"
    [decision] = [e.payload for e in world.events() if e.event_type == "router.decision.made"]
    primary = decision["candidates"][0]
    assert (primary["eligible"], primary["skip_reason"]) == (False, "breaker_open")


def test_a_budget_rejection_fails_the_run_before_any_call() -> None:
    command = chat_command("run-1")
    rejection = BudgetRejection("minute", "tokens", 1_000_000, 1_000_000, 1_200)
    world = run(world_for(command, budget=rejection), command)
    assert not world.of(CallProvider)
    assert world.terminal()["error_code"] == "BUDGET_EXCEEDED"


@pytest.mark.parametrize(
    ("mode", "code"), [("fail_open", None), ("fail_closed", "DEPENDENCY_UNAVAILABLE")]
)
def test_a_budget_store_outage_fails_open_or_closed_as_configured(
    mode: str, code: str | None
) -> None:
    command = chat_command("run-1")
    cfg = config()
    cfg = cfg.model_copy(
        update={"budgets": cfg.budgets.model_copy(update={"on_store_unavailable": mode})}
    )
    world = run(world_for(command, budget=UNAVAILABLE), command, cfg)
    assert world.events()[2].payload["decision"] == "error"
    assert world.terminal().get("error_code") == code
    assert bool(world.of(CallProvider)) == (code is None)


def test_blocked_input_never_reaches_cache_or_provider() -> None:
    cfg = config()
    policy = cfg.guardrails.policies["standard"]
    blocking = policy.model_copy(update={"pii": policy.pii.model_copy(update={"action": "block"})})
    guardrails = cfg.guardrails.model_copy(update={"policies": {"standard": blocking}})
    cfg = cfg.model_copy(update={"guardrails": guardrails})
    command = chat_command("run-1", content=f"my card is {CARD}")
    world = run(world_for(command), command, cfg)
    assert world.types() == [
        "llm.request.started",
        "guardrail.violation.detected",
        "llm.request.failed",
    ]
    assert not world.of(FindCached)


def test_a_passed_deadline_fails_without_a_call() -> None:
    command = chat_command("run-1")
    world = world_for(command)
    world.now += 3600
    run(world, command)
    assert not world.of(CallProvider)
    assert world.terminal()["error_code"] == "DEADLINE_EXCEEDED"


def test_a_card_split_across_deltas_never_reaches_a_delta_and_the_answer_is_redacted() -> None:
    command = chat_command("run-1", stream=True)
    pieces = ["your card ", "4111 11", "11 1111 ", "1111 is on file"]
    deltas: list[ChatDelta | StreamEnd | ProviderError] = [ChatDelta(text=p) for p in pieces]
    deltas += [ChatDelta(finish_reason="stop", usage=Usage(5, 9, True)), StreamEnd(40, 5)]
    world = run(world_for(command, deltas=deltas), command)
    [opened] = world.of(OpenStream)
    assert opened.provider == "primary"
    sent = "".join(e.payload["text"] or "" for e in world.of(EmitLive))
    assert "1111" not in sent
    done = world.terminal()
    assert sent == done["output_text"]
    assert (done["completion_tokens"], done["finish_reason"]) == (9, "stop")
    slots = [e.slot for e in world.of(EmitLive)]
    assert len(slots) == len(set(slots))


def cut_stream(*pieces: str) -> list[ChatDelta | StreamEnd | ProviderError]:
    """An attempt that says ``pieces`` and is then cut off."""
    return [*(ChatDelta(text=p) for p in pieces), failure(FailureKind.CONNECTION)]


def whole_stream(
    *pieces: str, usage: Usage | None = None
) -> list[ChatDelta | StreamEnd | ProviderError]:
    end = ChatDelta(finish_reason="stop", usage=usage or Usage(7, 4, True))
    return [*(ChatDelta(text=p) for p in pieces), end, StreamEnd(30, 3)]


def with_route(**fields: Any) -> FoundationConfig:
    files = copy.deepcopy(FILES)
    files["routing"]["routes"][0].update(fields)
    return FoundationConfig.model_validate(files)


def sent_text(world: World) -> str:
    return "".join(e.payload["text"] or "" for e in world.of(EmitLive))


def test_a_cut_stream_is_continued_by_the_next_attempt_from_the_text_it_generated() -> None:
    command = chat_command("run-1", stream=True)
    partial = "partial answer " * 20 + "unfini"  # the guard holds the last word back
    deltas = cut_stream(partial) + whole_stream("shed, goes on", " to the end")
    world = run(world_for(command, deltas=deltas), command)
    first, second = world.of(OpenStream)
    assert first.request.continue_from is None
    assert second.request.continue_from == partial
    done = world.terminal()
    assert done["output_text"] == partial + "shed, goes on to the end" == sent_text(world)
    [resumed] = [e.payload for e in world.events() if e.event_type == "llm.stream.resumed"]
    sent_before_cut = sum(
        len(e.payload["text"]) for e in world.of(EmitLive) if e.payload["attempt"] == 1
    )
    assert 0 < sent_before_cut < len(partial)
    assert resumed == {
        "provider": "primary",
        "model": "gpt-x",
        "attempt": 2,
        "continues_attempt": 1,
        "after_chars": len(partial),
        "sent_chars": sent_before_cut,
    }
    types = world.types()
    assert types.index("llm.attempt.failed") < types.index("llm.stream.resumed")
    assert types.index("llm.stream.resumed") < types.index("llm.request.completed")


def test_a_continued_answer_counts_and_charges_every_attempt_it_is_made_of() -> None:
    command = chat_command("run-1", stream=True)
    primary_down = [failure(FailureKind.CONNECTION)]  # the retry of the primary fails at once
    deltas = cut_stream("one two three") + primary_down
    deltas += whole_stream(" four five", usage=Usage(40, 2, True))
    world = run(world_for(command, deltas=deltas), command)
    done = world.terminal()
    assert done["output_text"] == "one two three four five"
    assert (done["provider"], done["fallback_used"], done["attempts"]) == ("fallback", True, 3)
    cut_prompt, cut_completion = done["prompt_tokens"] - 40, done["completion_tokens"] - 2
    assert cut_prompt > 0 and cut_completion == 3  # counted: the cut attempt reported nothing
    price = cut_prompt * 1.0 + cut_completion * 2.0 + 40 * 3.0 + 2 * 15.0
    assert done["cost_usd"] == pytest.approx(price / 1e6)
    [settle] = world.of(SettleBudget)
    assert settle.tokens == done["prompt_tokens"] + done["completion_tokens"]
    resumed = [e.payload for e in world.events() if e.event_type == "llm.stream.resumed"]
    assert [(r["provider"], r["attempt"], r["continues_attempt"]) for r in resumed] == [
        ("primary", 2, 1),
        ("fallback", 3, 1),
    ]


def test_a_card_cut_in_two_by_the_seam_never_reaches_a_delta() -> None:
    command = chat_command("run-1", stream=True)
    deltas = cut_stream("your card ", "4111 11") + whole_stream("11 1111 1111 is on file")
    world = run(world_for(command, deltas=deltas), command)
    sent = sent_text(world)
    assert "1111" not in sent
    assert sent == world.terminal()["output_text"]


@pytest.mark.parametrize(
    ("route", "cut", "can_continue"),
    [
        ({"stream_resume": "restart_error"}, failure(FailureKind.CONNECTION), True),
        ({}, ProviderError(FailureKind.CONNECTION, "cut in a call", continuable=False), True),
        ({}, failure(FailureKind.CONNECTION), False),
    ],
    ids=["route restarts", "cut inside a tool call", "target cannot continue"],
)
def test_a_cut_that_may_not_be_continued_restarts_the_answer(
    route: dict[str, Any], cut: ProviderError, can_continue: bool
) -> None:
    command = chat_command("run-1", stream=True)
    files = copy.deepcopy(FILES)
    files["routing"]["routes"][0].update(route)
    files["providers"]["providers"]["primary"]["continues_streams"] = can_continue
    deltas = [ChatDelta(text="partial answer " * 20), cut, *whole_stream("whole answer")]
    world = run(world_for(command, deltas=deltas), command, FoundationConfig.model_validate(files))
    attempts = [e.payload["attempt"] for e in world.of(EmitLive)]
    assert attempts[0] == 1 and attempts[-1] == 2
    assert all(o.request.continue_from is None for o in world.of(OpenStream))
    assert world.terminal()["output_text"] == "whole answer"
    assert "llm.stream.resumed" not in world.types()


def test_the_same_command_and_answers_decide_the_same_events() -> None:
    command = chat_command("run-1")

    def events() -> list[tuple[str, dict[str, Any]]]:
        world = run(world_for(command, calls=[failure(), failure(), answer()]), command)
        return [(e.event_type, e.payload) for e in world.events()]

    assert events() == events()
