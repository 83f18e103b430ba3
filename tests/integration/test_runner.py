"""The processor runtime against the real broker: chains, crashes, poison, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Producer

from schemas import default_catalog
from streams.envelope import Envelope
from streams.producer import EnvelopeProducer
from streams.runner import ProcessorRunner, RunnerOptions
from streams.serde import AvroSerde, SingleObjectFraming
from streams.topics import TopicCatalog
from tests.factories import chat_command
from tests.integration.chain import STAGE_A, start_request
from tests.integration.kafka_reading import (
    TopicReader,
    assert_all_committed,
    committed_offsets,
    end_offsets,
)
from tests.integration.processes import REPO, start_processor
from tests.integration.test_projections_support import wait_until

CATALOG = default_catalog()
SERDE = AvroSerde(CATALOG, SingleObjectFraming(CATALOG))


def send_commands(bootstrap: str, topics: TopicCatalog, commands: list[Envelope]) -> None:
    producer = EnvelopeProducer(bootstrap, SERDE, topics)
    for start in range(0, len(commands), 1000):
        producer.send(commands[start : start + 1000])
        producer.poll()
    producer.flush()


@pytest.fixture
def in_process_runner(bootstrap: str, topics: TopicCatalog) -> Iterator[ProcessorRunner]:
    runner = ProcessorRunner(
        STAGE_A,
        bootstrap,
        SERDE,
        topics,
        "dev",
        RunnerOptions(group_id=f"g-{uuid.uuid4().hex}", retry_backoff_s=0.01),
    )
    with running(runner):
        yield runner


@contextmanager
def running(runner: ProcessorRunner) -> Iterator[None]:
    """The runner on a thread of this process; stopped (drain, commit) on exit."""
    thread = threading.Thread(target=lambda: asyncio.run(runner.run_async()))
    thread.start()
    try:
        yield
    finally:
        runner.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()


def test_poison_messages_are_dead_lettered_and_the_rest_processed(
    bootstrap: str, topics: TopicCatalog, in_process_runner: ProcessorRunner
) -> None:
    command_topic = topics.topic_for("llm.chat.requested")
    good_before = [chat_command(f"before-{i}") for i in range(5)]
    exploding = chat_command("explodes", explode=True)
    good_after = [chat_command(f"after-{i}") for i in range(5)]
    raw = Producer({"bootstrap.servers": bootstrap})
    send_commands(bootstrap, topics, good_before)
    raw.produce(command_topic, key=b"garbage", value=b"\x00\x01 not avro at all")
    valid_header = SERDE.encode(good_before[0])[:10]
    raw.produce(command_topic, key=b"truncated", value=valid_header + b"\x02")
    assert raw.flush(10) == 0
    send_commands(bootstrap, topics, [exploding, *good_after])

    events = TopicReader(bootstrap, topics.topic_for("llm.request.started"), SERDE)
    events.poll_until(lambda r: len(r.envelopes) >= 10, 60, "10 started events")
    dead = TopicReader(bootstrap, topics.dead_letter_of(command_topic))
    dead_letters = dead.poll_until(lambda r: len(r.messages) >= 3, 60, "3 dead letters").messages

    started = {e.correlation_id for e in events.of_type("llm.request.started")}
    assert started == {c.correlation_id for c in good_before + good_after}
    errors = {m.key(): dict(m.headers())["dlq.error"].decode() for m in dead_letters}
    assert errors[b"garbage"].startswith("DecodeError: not Avro single-object")
    assert errors[b"truncated"].startswith("DecodeError: llm.chat.requested: undecodable body")
    assert errors[b"explodes"].startswith("Explosion: asked to explode")
    for message in dead_letters:
        headers = dict(message.headers())
        assert headers["dlq.source_topic"].decode() == command_topic
        assert int(headers["dlq.source_offset"]) >= 0
    original = next(m for m in dead_letters if m.key() == b"garbage")
    assert original.value() == b"\x00\x01 not avro at all"

    # The CLI lists them and re-drives one to its source, where it is dead-lettered again.
    listed = [json.loads(line) for line in _cli(bootstrap, "dlq-list", dead.topic).splitlines()]
    assert sorted(e["error"].split(":")[0] for e in listed) == [
        "DecodeError",
        "DecodeError",
        "Explosion",
    ]
    assert {e["source_topic"] for e in listed} == {command_topic}
    garbage = original.offset()
    assert json.loads(_cli(bootstrap, "dlq-redrive", dead.topic, "--offset", str(garbage))) == {
        "redriven": 1
    }
    dead.poll_until(lambda r: len(r.messages) >= 4, 60, "the re-driven message dead-lettered again")
    assert dead.messages[3].value() == original.value()


def _cli(bootstrap: str, *args: str) -> str:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    result = subprocess.run(
        [sys.executable, "-m", "streams", *args], env=env, cwd=REPO, capture_output=True, check=True
    )
    return result.stdout.decode()


def test_sigterm_finishes_commits_and_exits_zero(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    group = f"g-{uuid.uuid4().hex}"
    commands = [chat_command(f"run-{i}") for i in range(500)]
    send_commands(bootstrap, topics, commands)
    process = start_processor(
        "tests.integration.chain:STAGE_A", bootstrap, topics, group, tmp_path / "a.log"
    )
    events = TopicReader(bootstrap, topics.topic_for("llm.request.started"), SERDE)
    events.poll_until(lambda r: len(r.envelopes) >= 500, 60, "500 started events")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, (tmp_path / "a.log").read_text()[-3000:]
    assert_all_committed(bootstrap, group, topics.topic_for("llm.chat.requested"))


def test_chain_of_two_processes_survives_kill_9(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    """10,000 commands through A then B; A is SIGKILLed mid-stream and restarted. Every
    command ends with one completed run; duplicates are exact; commits never ran ahead."""
    group_a, group_b = f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    command_topic = topics.topic_for("llm.chat.requested")
    commands = [chat_command(f"run-{i:05d}") for i in range(10_000)]
    stage_a = start_processor(
        "tests.integration.chain:STAGE_A", bootstrap, topics, group_a, tmp_path / "a.log"
    )
    stage_b = start_processor(
        "tests.integration.chain:STAGE_B", bootstrap, topics, group_b, tmp_path / "b.log"
    )
    try:
        send_commands(bootstrap, topics, commands)
        events = TopicReader(bootstrap, topics.topic_for("llm.request.started"), SERDE)
        events.poll_until(lambda r: len(r.of_type("llm.request.started")) >= 2_000, 120, "2,000")
        wait_until(
            lambda: bool(committed_offsets(bootstrap, group_a, command_topic)), 60, "A's commit"
        )
        stage_a.kill()
        stage_a.wait(timeout=30)

        # Nothing below A's committed offsets may lack its output: read the commands topic and
        # the events topic as they stand with A dead, and compare.
        committed = committed_offsets(bootstrap, group_a, command_topic)
        inputs = TopicReader(bootstrap, command_topic, SERDE)
        inputs.poll_until(lambda r: len(r.envelopes) >= 10_000, 60, "all commands")
        events.poll_until(lambda r: _caught_up(r, bootstrap), 60, "events topic end")
        started_runs = {e.correlation_id for e in events.of_type("llm.request.started")}
        committed_runs = [
            e.correlation_id
            for m, e in zip(inputs.messages, inputs.envelopes, strict=True)
            if m.offset() < committed.get(m.partition(), 0)
        ]
        assert committed_runs
        assert set(committed_runs) <= started_runs

        stage_a = start_processor(
            "tests.integration.chain:STAGE_A", bootstrap, topics, group_a, tmp_path / "a2.log"
        )
        events.poll_until(
            lambda r: len({e.correlation_id for e in r.of_type("llm.request.completed")}) >= 10_000,
            240,
            "a completed event for every command",
        )
    finally:
        for process in (stage_a, stage_b):
            process.kill()
            process.wait(timeout=30)

    for message_type in ("llm.request.started", "llm.request.completed"):
        outputs = events.of_type(message_type)
        by_run = {}
        for output in outputs:
            by_run.setdefault(output.correlation_id, set()).add(output.message_id)
        assert set(by_run) == {c.correlation_id for c in commands}
        assert all(len(ids) == 1 for ids in by_run.values()), (
            f"{message_type}: distinct ids per run"
        )
    duplicates = Counter(e.message_id for e in events.envelopes)
    print(f"duplicates after kill -9: {sum(n - 1 for n in duplicates.values())}")

    # W3C trace context flows through both hops: every output continues its command's trace.
    trace_of_run = {c.correlation_id: c.trace_id for c in commands}
    for message, envelope in zip(events.messages, events.envelopes, strict=True):
        assert envelope.trace_id == trace_of_run[envelope.correlation_id]
        header = dict(message.headers())["traceparent"].decode()
        assert header == f"00-{envelope.trace_id}-{envelope.span_id}-01"


def _caught_up(reader: TopicReader, bootstrap: str) -> bool:
    topic = reader.messages[0].topic() if reader.messages else None
    if topic is None:
        return False
    ends = end_offsets(bootstrap, topic)
    seen: dict[int, int] = {}
    for message in reader.messages:
        seen[message.partition()] = max(seen.get(message.partition(), -1), message.offset())
    return all(seen.get(p, -1) + 1 >= end for p, end in ends.items() if end > 0)


def test_exactly_once_processor_has_no_duplicates_after_kill_9(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    """Outputs and offsets commit in one transaction: after a SIGKILL and a restart with the
    same transactional id, a read_committed consumer sees every output exactly once."""
    group, target = f"eos-{uuid.uuid4().hex}", "tests.integration.chain:STAGE_A_EXACTLY_ONCE"
    txn = ("--transactional-id", f"{group}-0")
    commands = [chat_command(f"run-{i:05d}") for i in range(5_000)]
    process = start_processor(target, bootstrap, topics, group, tmp_path / "1.log", *txn)
    try:
        send_commands(bootstrap, topics, commands)
        events = TopicReader(bootstrap, topics.topic_for("llm.request.started"), SERDE)
        events.poll_until(lambda r: len(r.envelopes) >= 1_000, 120, "1,000 started events")
        process.kill()
        process.wait(timeout=30)
        assert len(events.envelopes) < 5_000, "killed too late to test anything"
        process = start_processor(target, bootstrap, topics, group, tmp_path / "2.log", *txn)
        events.poll_until(
            lambda r: len({e.correlation_id for e in r.envelopes}) >= 5_000, 240, "every run"
        )
    finally:
        process.kill()
        process.wait(timeout=30)
    ids = Counter(e.message_id for e in events.envelopes)
    assert len(events.envelopes) == 5_000
    assert max(ids.values()) == 1


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_async_handler_overlaps_work_within_the_partition_bound(
    bootstrap: str, topics: TopicCatalog, exactly_once: bool
) -> None:
    """Slow I/O (simulated provider latency) overlaps up to the per-partition bound in both
    delivery modes; every input still gets its output and, after stop, the group has committed
    everything."""
    bound, in_flight, peak = 4, [0], [0]

    async def slow_start(command: Envelope) -> list[Envelope]:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await asyncio.sleep(0.02)  # the handler's own simulated I/O, not test synchronisation
        in_flight[0] -= 1
        return start_request(command)

    processor = dataclasses.replace(
        STAGE_A,
        handler=slow_start,
        max_in_flight_per_partition=bound,
        exactly_once=exactly_once,
    )
    group = f"g-{uuid.uuid4().hex}"
    runner = ProcessorRunner(
        processor, bootstrap, SERDE, topics, "dev", RunnerOptions(group_id=group)
    )
    # one key, so one partition: the bound applies to all of them
    commands = [chat_command("same-key") for _ in range(300)]
    send_commands(bootstrap, topics, commands)
    with running(runner):
        events = TopicReader(bootstrap, topics.topic_for("llm.request.started"), SERDE)
        events.poll_until(lambda r: len(r.envelopes) >= 300, 60, "300 started events")
    assert {e.causation_id for e in events.envelopes} == {c.message_id for c in commands}
    assert 1 < peak[0] <= bound
    assert_all_committed(bootstrap, group, topics.topic_for("llm.chat.requested"))


def test_an_output_the_producer_refuses_parks_its_input_without_a_retry(
    bootstrap: str, topics: TopicCatalog
) -> None:
    """An output larger than the producer's ``message.max.bytes`` is refused when sent: its
    input is dead-lettered at once (a retry would redo the handler's side effects for the same
    refusal) and the runner goes on with the next command."""
    calls: Counter[str] = Counter()

    def oversized_start(command: Envelope) -> list[Envelope]:
        calls[command.correlation_id] += 1
        (started,) = start_request(command)
        if command.payload["metadata"].get("oversize"):
            started = command.derive(started.message_type, {**started.payload, "model": "m" * 5000})
        return [started]

    processor = dataclasses.replace(STAGE_A, handler=oversized_start, max_attempts=3)
    options = RunnerOptions(
        group_id=f"g-{uuid.uuid4().hex}", producer_overrides={"message.max.bytes": 2000}
    )
    runner = ProcessorRunner(processor, bootstrap, SERDE, topics, "dev", options)
    oversize, after = chat_command("too-big", metadata={"oversize": "yes"}), chat_command("after")
    send_commands(bootstrap, topics, [oversize, after])
    command_topic = topics.topic_for("llm.chat.requested")
    with running(runner):
        dead = TopicReader(bootstrap, topics.dead_letter_of(command_topic))
        dead.poll_until(lambda r: len(r.messages) >= 1, 60, "the oversize output's input parked")
        events = TopicReader(bootstrap, topics.topic_for("llm.request.started"), SERDE)
        events.poll_until(lambda r: len(r.envelopes) >= 1, 60, "the next command's output")
    (letter,) = dead.messages
    assert letter.key() == b"too-big"
    assert dict(letter.headers())["dlq.error"].startswith(b"OutputRefused in handler output:")
    assert calls["too-big"] == 1
    assert [e.correlation_id for e in events.envelopes] == ["after"]


def test_rebalances_while_scaling_out_and_in_lose_nothing(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    """A second replica joins mid-stream, then the first leaves (SIGTERM) mid-stream: two
    rebalances under load. Every command still gets its output, with no distinct duplicates."""
    group, target = f"g-{uuid.uuid4().hex}", "tests.integration.chain:SLOW_STAGE_A"
    commands = [chat_command(f"run-{i:05d}") for i in range(6_000)]
    first = start_processor(target, bootstrap, topics, group, tmp_path / "1.log")
    second = None
    try:
        send_commands(bootstrap, topics, commands)
        events = TopicReader(bootstrap, topics.topic_for("llm.request.started"), SERDE)
        events.poll_until(lambda r: len(r.envelopes) >= 1_000, 120, "1,000 started events")
        second = start_processor(target, bootstrap, topics, group, tmp_path / "2.log")
        events.poll_until(lambda r: len(r.envelopes) >= 3_000, 120, "3,000 started events")
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        events.poll_until(
            lambda r: len({e.correlation_id for e in r.envelopes}) >= 6_000, 180, "every run"
        )
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
                process.wait(timeout=30)
    ids_by_run: dict[str, set[str]] = {}
    for envelope in events.envelopes:
        ids_by_run.setdefault(envelope.correlation_id, set()).add(envelope.message_id)
    assert len(ids_by_run) == 6_000
    assert all(len(ids) == 1 for ids in ids_by_run.values())
    assert "assigned [(" in (tmp_path / "2.log").read_text(), "the second replica got no work"
