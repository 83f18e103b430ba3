"""The pipeline around the decision core, in one process with in-memory stores and providers
that answer when the test says: the run log makes redeliveries exact, a command never runs
twice at once, and a run whose listener goes away is cancelled before it pays anyone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from processors.foundation.config import FoundationConfig
from processors.foundation.live_config import LiveConfig
from processors.foundation.pipeline import ChatPipeline
from processors.foundation.provider_pool import ProviderPool
from processors.foundation.providers import ChatDelta, ChatRequest, ChatResult, Provider, Usage
from processors.foundation.stores import connect
from streams.envelope import Envelope
from tests.factories import chat_command
from tests.unit.foundation_config import write_config


class GatedProvider:
    """Answers each call once the test opens the gate; counts calls and cancellations."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.gate = asyncio.Event()
        self.called = asyncio.Event()
        self.calls = 0
        self.cancelled = 0

    async def complete(self, request: ChatRequest, timeout_s: float) -> ChatResult:
        self.calls += 1
        self.called.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return ChatResult(f"answer {self.calls}", None, "stop", Usage(4, 2, True), latency_ms=1)

    def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[ChatDelta]:
        raise NotImplementedError("these tests do not stream")

    async def aclose(self) -> None:
        return None


class FakePool(ProviderPool):
    def __init__(self, providers: dict[str, Provider]) -> None:
        super().__init__({})
        self._fakes = providers

    def for_config(self, config: FoundationConfig) -> dict[str, Provider]:
        return self._fakes


@pytest.fixture
def primary() -> GatedProvider:
    return GatedProvider("primary")


@pytest.fixture
def pipeline(tmp_path: Path, primary: GatedProvider) -> ChatPipeline:
    pool = FakePool({"primary": primary, "fallback": GatedProvider("fallback")})
    return ChatPipeline(LiveConfig(write_config(tmp_path)), connect(None), pool)


def ids(outputs: list[Envelope]) -> list[tuple[str, str]]:
    return [(o.message_id, o.message_type) for o in outputs]


def test_a_redelivered_command_resends_its_log_without_deciding_again(
    pipeline: ChatPipeline, primary: GatedProvider
) -> None:
    async def scenario() -> None:
        primary.gate.set()
        command = chat_command("run-1")
        first = await pipeline.handle(command)
        again = await pipeline.handle(command)
        assert first[-1].message_type == "llm.request.completed"
        assert [(o.message_id, o.payload) for o in again] == [
            (o.message_id, o.payload) for o in first
        ]
        assert primary.calls == 1

    asyncio.run(scenario())


def test_a_command_delivered_twice_at_once_runs_once(
    pipeline: ChatPipeline, primary: GatedProvider
) -> None:
    async def scenario() -> None:
        command = chat_command("run-1")
        first = asyncio.ensure_future(pipeline.handle(command))
        second = asyncio.ensure_future(pipeline.handle(command))
        await primary.called.wait()
        primary.gate.set()
        one, two = await asyncio.gather(first, second)
        assert ids(one) == ids(two)
        assert primary.calls == 1

    asyncio.run(scenario())


def test_a_run_nobody_listens_to_is_cancelled_and_its_redelivery_ends_it_retryably(
    pipeline: ChatPipeline, primary: GatedProvider
) -> None:
    async def scenario() -> None:
        command = chat_command("run-1")
        seen: list[Envelope] = []
        outputs = pipeline.stream(command)
        async for output in outputs:
            seen.append(output)
            if output.message_type == "router.decision.made":
                break
        await primary.called.wait()
        await outputs.aclose()  # the runner stopped listening: a revoked partition
        assert primary.cancelled == 1
        primary.gate.set()
        redelivered = await pipeline.handle(command)
        assert ids(redelivered[: len(seen)]) == ids(seen)
        terminal = redelivered[-1]
        assert (terminal.message_type, terminal.payload["error_code"]) == (
            "llm.request.failed",
            "RUN_INTERRUPTED",
        )
        assert primary.calls == 1

    asyncio.run(scenario())
