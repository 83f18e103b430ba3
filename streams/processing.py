"""One message's fate, the same in every delivery mode: decode, run the handler (retried with
backoff), send its outputs, or park the message on its dead-letter topic. What the producer
says is never taken for what the handler did: a handler failure is retried, an output the
producer refuses outright is parked, any other producer failure stops the runner."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from prometheus_client import Counter

from streams.batches import next_batch
from streams.dead_letter import parked
from streams.envelope import Clock, Envelope, WriterIdentity, stamp_outputs
from streams.kafka_thread import KafkaThread
from streams.metrics import HANDLER_ERRORS, HANDLER_SECONDS, MESSAGES_IN, MESSAGES_OUT
from streams.producer import MESSAGE_TYPE_HEADER, EnvelopeProducer, header_pairs
from streams.serde import AvroSerde, DecodeError, EncodeError
from streams.topics import TopicCatalog
from streams.tracing import TRACEPARENT, ids_of, message_span

__all__ = [
    "EngineParts",
    "Handler",
    "MessageProcessing",
    "OutputRefused",
    "Processor",
    "ProducerFailed",
]

log = logging.getLogger("streams.runner")

Handler = Callable[[Envelope], list[Envelope] | Awaitable[list[Envelope]] | AsyncIterator[Envelope]]

# The producer refuses this output, not the broker or the transaction: parking its input is
# the answer (retrying would redo the handler's side effects for the same refusal).
_REFUSED_OUTPUT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        getattr(KafkaError, "_INVALID_ARG"),  # noqa: B009 - librdkafka's own name
    }
)


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
    fetch_wait_ms: int | None = None
    """Reads in bulk (``batching_fetch``): the broker may hold a fetch this long to fill it. For
    a processor nobody waits on (an evaluator judging finished runs: 500), or one that reads a
    busy topic for a few of its messages (layer 3 reading ``events.llm`` for mode rag answers:
    50), fewer and larger fetches save the broker and this process CPU. None: every message is
    fetched as soon as it is there."""


class ProducerFailed(RuntimeError):
    """The producer failed for a reason of its own (fenced, fatal, a transaction to abort):
    the runner's business, never the handler's, so never retried as a handler failure."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(error.str())
        self.error = error


class OutputRefused(RuntimeError):
    """The producer refused a handler's output outright (too large, say)."""


class MessageProcessing:
    def __init__(
        self,
        processor: Processor,
        serde: AvroSerde,
        topics: TopicCatalog,
        producer: EnvelopeProducer,
        clock: Clock,
        env: str,
        retry_backoff_s: float,
    ) -> None:
        self._processor = processor
        self._serde = serde
        self._topics = topics
        self._producer = producer
        self._clock = clock
        self._writer = WriterIdentity(processor.name, processor.layer, env)
        self._retry_backoff_s = retry_backoff_s
        # Labelled children, looked up once: ``labels()`` costs microseconds per message.
        self._read_from: dict[str, Counter] = {}
        self._sent_to: dict[str, Counter] = {}
        self._handler_seconds = HANDLER_SECONDS.labels(processor.name)

    def skips(self, message: Message) -> bool:
        """Whether the message's type header says it is not for this processor: the engines
        pass such messages by without a task, a decode or a span (a topic carries many types
        and a processor often wants few of them)."""
        declared = _header(message, MESSAGE_TYPE_HEADER)
        if declared is None or declared in self._processor.accepts:
            return False
        self._count_in(message)
        return True

    async def process(self, message: Message) -> None:
        """Decode, handle with retries, send the outputs or a dead letter. Raises only
        ``ProducerFailed``, which must stop the runner before it commits past ``message``."""
        self._count_in(message)
        try:
            envelope = self._serde.decode(message.value() or b"")
        except DecodeError as exc:
            await self._dead_letter(message, f"DecodeError: {exc}")
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
        loop = asyncio.get_running_loop()
        for attempt in range(1, self._processor.max_attempts + 1):
            started = loop.time()
            try:
                await self._run_handler(envelope, trace)
                self._handler_seconds.observe(loop.time() - started)
                return
            except ProducerFailed:
                raise
            except (EncodeError, OutputRefused) as exc:  # a bug, or an output the producer
                # refused (too large): never retried, that would redo the handler's side effects
                await self._dead_letter(message, f"{type(exc).__name__} in handler output: {exc}")
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
                    await self._dead_letter(message, f"{type(exc).__name__}: {exc}")
                    return
                await asyncio.sleep(self._retry_backoff_s * 2 ** (attempt - 1))

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
                    await self._send(envelope, [output], position, trace)
                    position += 1
            return
        outputs = await result if inspect.isawaitable(result) else result
        await self._send(envelope, outputs, 0, trace)

    async def _send(
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
            await self._producer.send_async(stamped)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() in _REFUSED_OUTPUT:
                raise OutputRefused(error.str()) from exc
            raise ProducerFailed(error) from exc
        for output in stamped:
            topic = self._topics.topic_for(output.message_type)
            counter = self._sent_to.get(topic)
            if counter is None:
                counter = self._sent_to[topic] = MESSAGES_OUT.labels(self._processor.name, topic)
            counter.inc()

    def _count_in(self, message: Message) -> None:
        topic = str(message.topic())
        counter = self._read_from.get(topic)
        if counter is None:
            counter = self._read_from[topic] = MESSAGES_IN.labels(self._processor.name, topic)
        counter.inc()

    async def _dead_letter(self, message: Message, error: str) -> None:
        outgoing = parked(message, error, self._processor.name, self._topics, self._clock())
        try:
            await self._producer.send_raw_async(outgoing)
        except KafkaException as exc:
            raise ProducerFailed(exc.args[0]) from exc


@dataclass(frozen=True)
class EngineParts:
    """What a delivery engine (at-least-once, exactly-once) reads, handles and sends with."""

    consumer: Consumer
    producer: EnvelopeProducer
    processing: MessageProcessing
    kafka: KafkaThread
    max_in_flight: int
    batch_size: int
    poll_timeout_s: float

    async def next_batch(self) -> list[Message]:
        """The next messages, read on the Kafka thread."""
        return await self.kafka.run(next_batch, self.consumer, self.batch_size, self.poll_timeout_s)


def _header(message: Message, name: str) -> str | None:
    for key, value in header_pairs(message):
        if key == name:
            return value.decode(errors="replace")
    return None
