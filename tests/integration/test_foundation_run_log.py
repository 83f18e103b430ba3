"""The run log at its hard cases, on a real Redis shared by two pipelines (two replicas): a run
that outlives its owner's partition, and a run whose caller stops listening."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.envelope import Envelope
from tests.factories import chat_command
from tests.fakes.llm_servers import AnthropicFake, Fault, FaultPlan, OpenAIFake
from tests.integration.foundation_setup import (
    FALLBACK_KEY,
    PRIMARY_KEY,
    harness,
    terminal,
    write_config,
)

TERMINAL = {"llm.request.completed", "llm.request.failed"}


@pytest.fixture
def hanging_primary() -> Iterator[tuple[OpenAIFake, AnthropicFake]]:
    """The primary's first call hangs until the client's timeout (3 s), later calls answer."""
    with (
        OpenAIFake(api_key=PRIMARY_KEY) as primary,
        AnthropicFake(api_key=FALLBACK_KEY) as fallback,
    ):
        primary.set_plan(FaultPlan(script=(Fault.HANG,)))
        yield primary, fallback  # type: ignore[misc]


async def called(server: OpenAIFake, times: int, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while len(server.received) < times:
        assert time.monotonic() < deadline, f"the provider was not called {times} times"
        await asyncio.sleep(0.01)  # poll interval, bounded by the deadline


def test_a_run_that_outlives_its_partition_is_fenced_and_every_id_stays_exact(
    tmp_path: Path,
    redis_url: str,
    store_namespace: str,
    hanging_primary: tuple[OpenAIFake, AnthropicFake],
) -> None:
    """RELIABILITY.md finding 7. Replica A's run waits on a hanging provider past the
    rebalance drain; replica B, now owning the partition, finds the run unfinished in the log
    and ends it RUN_INTERRUPTED. When A's call times out, A's next decision is refused by the
    log: it sends no event of its own (before, its next event took the id B's terminal event
    had, with other content) and pays no provider again."""
    primary, fallback = hanging_primary
    config = write_config(tmp_path / "configs", primary.base_url, fallback.base_url)
    command = chat_command("outlived", cache="bypass")

    async def main() -> None:
        old_owner = harness(config, redis_url, store_namespace, time.time())
        new_owner = harness(config, redis_url, store_namespace, time.time())
        try:
            old_sent: list[Envelope] = []

            async def old_run() -> None:
                old_sent.extend([o async for o in old_owner.pipeline.stream(command)])

            running = asyncio.create_task(old_run())
            await called(primary, 1)
            new_sent = await new_owner.run(command)
            await running
            assert terminal(new_sent).payload["error_code"] == "RUN_INTERRUPTED"
            by_id: dict[str, tuple[str, object]] = {}
            for event in old_sent + new_sent:
                content = (event.message_type, event.payload)
                assert by_id.setdefault(event.message_id, content) == content, event
            terminal_ids = {e.message_id for e in old_sent + new_sent if e.message_type in TERMINAL}
            assert len(terminal_ids) == 1
            assert len(primary.received) == 1 and not fallback.received
        finally:
            await old_owner.close()
            await new_owner.close()

    asyncio.run(main())


def test_a_run_whose_caller_stops_listening_is_cancelled_with_its_provider_call(
    tmp_path: Path,
    redis_url: str,
    store_namespace: str,
    hanging_primary: tuple[OpenAIFake, AnthropicFake],
) -> None:
    """The runner stops iterating a run when its partition is revoked or it shuts down: the
    run's task ends then, not when its provider answers, and a redelivery ends the run
    without calling anyone."""
    primary, fallback = hanging_primary
    config = write_config(tmp_path / "configs", primary.base_url, fallback.base_url)
    command = chat_command("revoked", cache="bypass")

    async def main() -> None:
        h = harness(config, redis_url, store_namespace, time.time())
        try:
            outputs = h.pipeline.stream(command)
            first = await anext(outputs)
            assert first.message_type == "llm.request.started"
            await called(primary, 1)
            await outputs.aclose()  # the runner gave the partition up mid-call
            assert asyncio.all_tasks() == {asyncio.current_task()}
            again = await h.run(command)
            assert terminal(again).payload["error_code"] == "RUN_INTERRUPTED"
            assert len(primary.received) == 1 and not fallback.received
        finally:
            await h.close()

    asyncio.run(main())
