"""The processor runner: consume, decode, call the handler, produce, commit.

Guarantees (see docs/STREAMS.md):
* at-least-once (default, ``at_least_once.py``): outputs are acknowledged by the broker before
  the input's offset is committed, and offsets are committed only below the lowest unfinished
  message, so a crash never skips work; redone work yields exact duplicates.
* exactly-once (``Processor.exactly_once``, ``exactly_once.py``): outputs and input offsets
  commit in one Kafka transaction; downstream ``read_committed`` consumers see each output once.
* poison messages go to the source topic's dead-letter topic and the consumer moves on
  (``processing.py``, the same in both modes).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import uvloop
from confluent_kafka import Consumer, TopicPartition

from streams.at_least_once import AtLeastOnce
from streams.batches import batching_fetch, committing_consumer
from streams.envelope import Clock, system_clock
from streams.exactly_once import ExactlyOnce
from streams.kafka_thread import KafkaThread
from streams.processing import EngineParts, MessageProcessing, Processor
from streams.producer import EnvelopeProducer
from streams.serde import AvroSerde
from streams.topics import TopicCatalog

__all__ = ["ProcessorRunner", "RunnerOptions"]

log = logging.getLogger("streams.runner")


@dataclass(frozen=True)
class RunnerOptions:
    group_id: str | None = None
    batch_size: int = 500
    poll_timeout_s: float = 0.2
    commit_interval_s: float = 0.2
    retry_backoff_s: float = 0.05
    drain_timeout_s: float = 30.0
    transactional_id: str | None = None
    consumer_overrides: Mapping[str, Any] = field(default_factory=dict)
    producer_overrides: Mapping[str, Any] = field(default_factory=dict)


class ProcessorRunner:
    """Runs one processor in one consumer group; start more processes to scale out. The
    delivery mode (``Processor.exactly_once``) picks the engine; one message's handling is the
    same in both (``MessageProcessing``)."""

    def __init__(
        self,
        processor: Processor,
        bootstrap_servers: str,
        serde: AvroSerde,
        topics: TopicCatalog,
        env: str,
        options: RunnerOptions = RunnerOptions(),
        clock: Clock = system_clock,
    ) -> None:
        self._processor = processor
        self._input_topics = sorted({topics.topic_for(t) for t in processor.accepts})
        producer_config = dict(options.producer_overrides)
        if processor.exactly_once:
            producer_config["transactional.id"] = options.transactional_id or (
                f"{processor.name}-{uuid.uuid4()}"
            )
        producer = EnvelopeProducer(bootstrap_servers, serde, topics, producer_config)
        consumer_config = {
            **(batching_fetch(processor.fetch_wait_ms) if processor.fetch_wait_ms else {}),
            **options.consumer_overrides,
        }
        self._consumer = committing_consumer(
            bootstrap_servers, options.group_id or processor.name, consumer_config
        )
        self._kafka = KafkaThread()
        processing = MessageProcessing(
            processor, serde, topics, producer, clock, env, options.retry_backoff_s
        )
        parts = EngineParts(
            self._consumer,
            producer,
            processing,
            self._kafka,
            processor.max_in_flight_per_partition,
            options.batch_size,
            options.poll_timeout_s,
        )
        self._engine: AtLeastOnce | ExactlyOnce = (
            ExactlyOnce(parts)
            if processor.exactly_once
            else AtLeastOnce(
                processor.name, parts, options.commit_interval_s, options.drain_timeout_s
            )
        )

    def run(self) -> None:
        """Run until SIGTERM/SIGINT: then stop fetching, finish in-flight work, commit, return."""

        async def until_signalled() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop)
            await self.run_async()

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(until_signalled())

    def stop(self) -> None:
        """Ask the runner to finish in-flight work, commit and return (thread-safe)."""
        self._engine.stop()

    async def run_async(self) -> None:
        self._consumer.subscribe(self._input_topics, on_assign=_assigned, on_revoke=self._revoked)
        log.info("processor started", extra={"topic": ",".join(self._input_topics)})
        try:
            await self._engine.run()
        except Exception as exc:
            raise RuntimeError("processing failed; offsets were not committed past it") from exc
        finally:
            await self._kafka.run(self._consumer.close)
            self._kafka.shutdown()
        log.info("processor stopped")

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._engine.on_revoke(consumer, partitions)
        log.info("revoked %s", [(p.topic, p.partition) for p in partitions])


def _assigned(_: Consumer, partitions: list[TopicPartition]) -> None:
    log.info("assigned %s", [(p.topic, p.partition) for p in partitions])
