"""The processor runner: consume, decode, call the handler, produce, commit.

Guarantees (see docs/STREAMS.md):
* at-least-once (default): outputs are acknowledged by the broker before the input's offset is
  committed, and offsets are committed only below the lowest unfinished message, so a crash
  never skips work; redone work yields exact duplicates (deterministic ``event_id``s).
* exactly-once (``Processor.exactly_once``): outputs and input offsets commit in one Kafka
  transaction; downstream ``read_committed`` consumers see each output once.
* poison messages go to the source topic's dead-letter topic and the consumer moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import signal
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import uvloop
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.batches import committing_consumer, next_batch
from streams.dead_letter import dead_letter_headers
from streams.envelope import Clock, Envelope, WriterIdentity, stamp_outputs, system_clock
from streams.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERED,
    HANDLER_ERRORS,
    HANDLER_SECONDS,
    MESSAGES_IN,
    MESSAGES_OUT,
)
from streams.offsets import OffsetTracker, PartitionKey
from streams.producer import MESSAGE_TYPE_HEADER, EnvelopeProducer, header_pairs
from streams.serde import AvroSerde, DecodeError, EncodeError
from streams.topics import TopicCatalog
from streams.tracing import TRACEPARENT, ids_of, message_span

__all__ = ["Handler", "Processor", "ProcessorRunner", "RunnerOptions"]

log = logging.getLogger("streams.runner")
_PARTITION_EOF = getattr(KafkaError, "_PARTITION_EOF")  # noqa: B009 - librdkafka's own name
_GROUP_MOVED_ON = frozenset(
    {
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.REBALANCE_IN_PROGRESS,
        getattr(KafkaError, "_STATE"),  # noqa: B009 - "not a member of the group" locally
    }
)

Handler = Callable[[Envelope], list[Envelope] | Awaitable[list[Envelope]] | AsyncIterator[Envelope]]


@dataclass(frozen=True)
class Processor:
    """A stateless step: the message types it accepts and the function that handles one.

    ``max_in_flight_per_partition`` > 1 lets an async handler overlap slow I/O; outputs of
    different inputs may then interleave, while each input's own outputs stay in order."""

    name: str
    layer: int
    accepts: frozenset[str]
    handler: Handler
    max_in_flight_per_partition: int = 1
    exactly_once: bool = False
    max_attempts: int = 3


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
    """Runs one processor in one consumer group; start more processes to scale out."""

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
        self._serde = serde
        self._topics = topics
        self._options = options
        self._clock = clock
        self._writer = WriterIdentity(processor.name, processor.layer, env)
        self._input_topics = sorted({topics.topic_for(t) for t in processor.accepts})
        producer_config = dict(options.producer_overrides)
        if processor.exactly_once:
            producer_config["transactional.id"] = options.transactional_id or (
                f"{processor.name}-{uuid.uuid4()}"
            )
        self._producer = EnvelopeProducer(bootstrap_servers, serde, topics, producer_config)
        self._consumer = committing_consumer(
            bootstrap_servers, options.group_id or processor.name, options.consumer_overrides
        )
        self._tracker = OffsetTracker()
        self._pending: dict[PartitionKey, deque[Message]] = {}
        self._tasks: dict[PartitionKey, set[asyncio.Task[None]]] = {}
        self._paused: set[PartitionKey] = set()
        self._stopping = False
        self._fatal: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kafka_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka")

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
        self._stopping = True

    async def run_async(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer.subscribe(
            self._input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        log.info("processor started", extra={"topic": ",".join(self._input_topics)})
        try:
            if self._processor.exactly_once:
                await self._run_exactly_once()
            else:
                await self._run_at_least_once()
        except BaseException as exc:
            self._fatal = exc
            raise
        finally:
            await self._in_kafka_thread(self._consumer.close)
            self._kafka_thread.shutdown()
        if self._fatal is not None:
            raise RuntimeError(
                "processing failed; offsets were not committed past it"
            ) from self._fatal
        log.info("processor stopped")

    # --- at-least-once -------------------------------------------------------------------

    async def _run_at_least_once(self) -> None:
        last_commit = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._apply_backpressure()
            for message in await self._in_kafka_thread(self._consume):
                key = (str(message.topic()), int(message.partition() or 0))
                self._tracker.start(key, int(message.offset() or 0))
                self._pending.setdefault(key, deque()).append(message)
                self._start_ready(key)
            await asyncio.sleep(0)
            if loop.time() - last_commit >= self._options.commit_interval_s:
                await self._commit()
                last_commit = loop.time()
        await self._finish(list(self._tasks))
        await self._commit()

    def _consume(self) -> list[Message]:
        messages = next_batch(
            self._consumer, self._options.batch_size, self._options.poll_timeout_s
        )
        good = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.code() != _PARTITION_EOF:
                log.warning("consume error: %s", error.str())
        return good

    def _start_ready(self, key: PartitionKey) -> None:
        pending = self._pending.get(key)
        tasks = self._tasks.setdefault(key, set())
        while pending and len(tasks) < self._processor.max_in_flight_per_partition:
            message = pending.popleft()
            task = asyncio.ensure_future(self._process(message))
            tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, key, message))

    def _finished(self, key: PartitionKey, message: Message, task: asyncio.Task[None]) -> None:
        self._tasks.get(key, set()).discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            self._fatal = task.exception()  # the broker refused outputs: stop, commit nothing more
            self._stopping = True
            log.error("fatal error in processing", exc_info=self._fatal)
            return
        self._tracker.finish(key, int(message.offset() or 0))
        self._start_ready(key)

    def _apply_backpressure(self) -> None:
        """Pause partitions with a full queue so one slow partition cannot grow memory."""
        limit = self._processor.max_in_flight_per_partition + self._options.batch_size
        for key, pending in self._pending.items():
            full = len(pending) >= limit
            if full and key not in self._paused:
                self._consumer.pause([TopicPartition(*key)])
                self._paused.add(key)
            elif not full and key in self._paused:
                self._consumer.resume([TopicPartition(*key)])
                self._paused.discard(key)

    async def _commit(self) -> None:
        """Off the event loop: a slow broker must not stall the runs in flight."""
        offsets = self._tracker.to_commit()
        if offsets and await self._in_kafka_thread(self._commit_offsets, self._consumer, offsets):
            self._tracker.committed(offsets)
            self._export_lag(offsets)

    def _commit_offsets(self, consumer: Consumer, offsets: dict[PartitionKey, int]) -> bool:
        """Flush outputs first: an offset is committed only once its outputs are durable. A
        commit refused because the group moved on (a rebalance, a lost coordinator) is not
        fatal: the partitions' new owner redoes the work, as after any crash."""
        if not offsets or self._fatal is not None:
            return False
        self._producer.flush()
        try:
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=False,
            )
        except KafkaException as exc:
            if exc.args[0].code() not in _GROUP_MOVED_ON:
                raise
            log.warning("commit refused, the group moved on: %s", exc.args[0].str())
            return False
        return True

    async def _finish(self, keys: list[PartitionKey]) -> dict[PartitionKey, int]:
        """Let started work on ``keys`` end, cancelling what outlives the drain timeout; queued,
        unstarted and cancelled messages are left to redelivery. Returns the offsets now safe
        to commit for ``keys``."""
        for key in keys:
            self._pending.pop(key, None)
        tasks = [t for key in keys for t in self._tasks.get(key, set())]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._options.drain_timeout_s)
            for task in late:  # past the drain: cancelled (a run stops paying providers)
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        return self._tracker.to_commit(keys)

    # --- exactly-once ----------------------------------------------------------------------

    async def _run_exactly_once(self) -> None:
        kafka = self._producer.kafka
        await self._in_kafka_thread(kafka.init_transactions, 60.0)
        while not self._stopping:
            batch = await self._in_kafka_thread(self._consume)
            if not batch:
                continue
            kafka.begin_transaction()
            try:
                for message in batch:
                    await self._process(message)
                positions = _next_offsets(batch)
                await self._in_kafka_thread(
                    kafka.send_offsets_to_transaction,
                    [TopicPartition(t, p, o) for (t, p), o in positions.items()],
                    self._consumer.consumer_group_metadata(),
                )
                await self._in_kafka_thread(kafka.commit_transaction, 60.0)
            except KafkaException as exc:
                if not exc.args[0].txn_requires_abort():
                    raise
                log.warning("transaction aborted, rewinding batch: %s", exc)
                await self._in_kafka_thread(kafka.abort_transaction, 60.0)
                for (topic, partition), offset in _first_offsets(batch).items():
                    await self._in_kafka_thread(
                        self._consumer.seek, TopicPartition(topic, partition, offset)
                    )

    # --- one message -----------------------------------------------------------------------

    async def _process(self, message: Message) -> None:
        """Decode, handle with retries, produce the outputs or a dead letter; raises only when
        the broker refuses outputs, which must stop the runner before it commits."""
        topic = str(message.topic())
        MESSAGES_IN.labels(self._processor.name, topic).inc()
        declared = _header(message, MESSAGE_TYPE_HEADER)
        if declared is not None and declared not in self._processor.accepts:
            return
        try:
            envelope = self._serde.decode(message.value() or b"")
        except DecodeError as exc:
            self._dead_letter(message, f"DecodeError: {exc}")
            return
        if envelope.message_type not in self._processor.accepts:
            return
        with message_span(
            f"{self._processor.name} process", _header(message, TRACEPARENT), envelope
        ) as span:
            await self._handle_with_retries(envelope, message, ids_of(span))

    async def _handle_with_retries(
        self, envelope: Envelope, message: Message, trace: tuple[str | None, str | None]
    ) -> None:
        for attempt in range(1, self._processor.max_attempts + 1):
            started = self._loop_time()
            try:
                await self._run_handler(envelope, trace)
                HANDLER_SECONDS.labels(self._processor.name).observe(self._loop_time() - started)
                return
            except (EncodeError, OutputRefused) as exc:  # a bug, or an output the broker
                # refused (too large): never retried, that would redo the handler's side effects
                self._dead_letter(message, f"{type(exc).__name__} in handler output: {exc}")
                return
            except Exception as exc:
                HANDLER_ERRORS.labels(self._processor.name).inc()
                log.warning(
                    "handler failed (attempt %d/%d): %r",
                    attempt,
                    self._processor.max_attempts,
                    exc,
                    extra={"correlation_id": envelope.correlation_id},
                )
                if attempt == self._processor.max_attempts:
                    self._dead_letter(message, f"{type(exc).__name__}: {exc}")
                    return
                await asyncio.sleep(self._options.retry_backoff_s * 2 ** (attempt - 1))

    async def _run_handler(self, envelope: Envelope, trace: tuple[str | None, str | None]) -> None:
        """A list is sent when the handler returns; an async generator's outputs are sent as
        they come, so a live reader sees a run progress (ids stay deterministic by position,
        so a retried generator re-sends exact duplicates)."""
        result = self._processor.handler(envelope)
        if isinstance(result, AsyncIterator):
            closing = (  # a generator stopped here (revoked, cancelled, a send failed) ends
                contextlib.aclosing(result)
                if isinstance(result, AsyncGenerator)
                else contextlib.nullcontext(result)
            )
            async with closing as stream:
                position = 0
                async for output in stream:
                    self._send(envelope, [output], position, trace)
                    position += 1
            return
        outputs = await result if inspect.isawaitable(result) else result
        self._send(envelope, outputs, 0, trace)

    def _send(
        self,
        source: Envelope,
        outputs: list[Envelope],
        first_position: int,
        trace: tuple[str | None, str | None],
    ) -> None:
        trace_id, span_id = trace
        stamped = [
            replace(o, trace_id=trace_id, span_id=span_id) if trace_id else o
            for o in stamp_outputs(source, outputs, self._writer, self._clock(), first_position)
        ]
        try:
            self._producer.send(stamped)
        except KafkaException as exc:
            raise OutputRefused(str(exc)) from exc
        for output in stamped:
            MESSAGES_OUT.labels(
                self._processor.name, self._topics.topic_for(output.message_type)
            ).inc()

    def _dead_letter(self, message: Message, error: str) -> None:
        topic = self._topics.dead_letter_of(str(message.topic()))
        headers = dead_letter_headers(message, error, self._processor.name, self._clock())
        self._producer.send_raw(topic, message.key(), message.value(), headers)
        DEAD_LETTERED.labels(self._processor.name, str(message.topic())).inc()
        log.warning(
            "dead-lettered: %s",
            error,
            extra={
                "topic": message.topic(),
                "partition": message.partition(),
                "offset": message.offset(),
            },
        )

    # --- rebalances and plumbing ---------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", [(p.topic, p.partition) for p in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Runs in the Kafka thread while the loop is free: finish started work on the revoked
        partitions, commit exactly up to it, and never commit for them again."""
        keys = [(p.topic, p.partition) for p in partitions]
        if self._loop is not None and not self._processor.exactly_once:
            offsets = asyncio.run_coroutine_threadsafe(self._finish(keys), self._loop).result()
            self._commit_offsets(consumer, offsets)
        self._tracker.forget(keys)
        for key in keys:
            self._paused.discard(key)
        log.info("revoked %s", keys)

    def _export_lag(self, offsets: dict[PartitionKey, int]) -> None:
        for (topic, partition), offset in offsets.items():
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True
            )
            if high >= 0:
                CONSUMER_LAG.labels(self._processor.name, topic, str(partition)).set(high - offset)

    async def _in_kafka_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        """Consumer calls that may fire rebalance callbacks run off the loop, so the callbacks
        can wait on work that the loop is still finishing."""
        return await asyncio.get_running_loop().run_in_executor(self._kafka_thread, function, *args)

    def _loop_time(self) -> float:
        return asyncio.get_running_loop().time()


class OutputRefused(RuntimeError):
    """The producer refused a handler's output outright (too large, say)."""


def _header(message: Message, name: str) -> str | None:
    for key, value in header_pairs(message):
        if key == name:
            return value.decode(errors="replace")
    return None


def _next_offsets(batch: list[Message]) -> dict[PartitionKey, int]:
    result: dict[PartitionKey, int] = {}
    for message in batch:
        key = (str(message.topic()), int(message.partition() or 0))
        result[key] = max(result.get(key, 0), int(message.offset() or 0) + 1)
    return result


def _first_offsets(batch: list[Message]) -> dict[PartitionKey, int]:
    result: dict[PartitionKey, int] = {}
    for message in batch:
        key = (str(message.topic()), int(message.partition() or 0))
        result.setdefault(key, int(message.offset() or 0))
    return result
