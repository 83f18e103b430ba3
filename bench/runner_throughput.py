"""Throughput of the streams runtime on this machine: serde, producer, one processor process.

    .venv/bin/python bench/runner_throughput.py [--messages 50000]

Uses KAFKA_BOOTSTRAP_SERVERS when set, otherwise starts a local broker. Prints numbers only;
performance goals are never asserted in tests."""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import timeit
import uuid
from contextlib import ExitStack

from confluent_kafka.admin import AdminClient

from schemas import default_catalog
from streams import (
    AvroSerde,
    Envelope,
    EnvelopeProducer,
    Processor,
    ProcessorRunner,
    RunnerOptions,
    SingleObjectFraming,
    WriterIdentity,
    ensure_topics,
    load_topic_catalog,
    new_message,
)
from streams.local_kafka import LocalKafka
from streams.metrics import MESSAGES_OUT


def started_from(command: Envelope) -> list[Envelope]:
    payload = {"model": None, "mode": "direct", "message_count": 1, "stream": False}
    return [command.derive("llm.request.started", payload)]


def command(i: int) -> Envelope:
    payload = {
        "messages": [{"role": "user", "content": f"hello {i}"}],
        "mode": "direct",
        "stop": [],
        "stream": False,
        "cache": "default",
        "metadata": {},
    }
    for optional in ("model", "tools_json", "tool_choice_json", "response_format_json"):
        payload[optional] = None
    for optional in ("max_tokens", "temperature", "top_p", "budget", "idempotency_key", "deadline"):
        payload[optional] = None
    return new_message(
        "llm.chat.requested",
        payload,
        correlation_id=f"run-{i}",
        tenant_id="bench",
        writer=WriterIdentity("bench", 5, "dev"),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    catalog = default_catalog()
    serde = AvroSerde(catalog, SingleObjectFraming(catalog))

    sample = command(0)
    data = serde.encode(sample)
    encode_us = timeit.timeit(lambda: serde.encode(sample), number=5_000) / 5_000 * 1e6
    decode_us = timeit.timeit(lambda: serde.decode(data), number=5_000) / 5_000 * 1e6
    print(f"serde: encode {encode_us:.1f} us, decode {decode_us:.1f} us ({len(data)} bytes)")

    with ExitStack() as stack:
        bootstrap = (
            os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
            or stack.enter_context(LocalKafka()).bootstrap_servers
        )
        topics = load_topic_catalog(prefix=f"bench{uuid.uuid4().hex[:8]}.")
        ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), topics)

        commands = [command(i) for i in range(args.messages)]
        producer = EnvelopeProducer(bootstrap, serde, topics)
        began = time.perf_counter()
        for start in range(0, len(commands), 1_000):
            producer.send(commands[start : start + 1_000])
            producer.poll()
        producer.flush()
        produce_s = time.perf_counter() - began
        print(f"producer: {args.messages / produce_s:,.0f} msg/s (acks=all, idempotent)")

        processor = Processor("bench-step", 1, frozenset({"llm.chat.requested"}), started_from)
        runner = ProcessorRunner(processor, bootstrap, serde, topics, "dev", RunnerOptions())
        produced = MESSAGES_OUT.labels("bench-step", topics.topic_for("llm.request.started"))
        thread = threading.Thread(target=lambda: asyncio.run(runner.run_async()))
        began = time.perf_counter()
        thread.start()
        while produced._value.get() < args.messages:  # noqa: SLF001 - reading our own counter
            thread.join(timeout=0.05)
        elapsed = time.perf_counter() - began
        runner.stop()
        thread.join()
        print(
            f"processor (one process, in order per partition): {args.messages / elapsed:,.0f}"
            " msg/s "
            f"consumed, handled, produced and committed ({elapsed:.1f} s incl. group join)"
        )


if __name__ == "__main__":
    main()
