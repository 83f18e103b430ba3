"""The one producer: idempotent, ``acks=all``, keyed by ``correlation_id`` so a run's messages
stay in order; a failed delivery is raised at ``flush()`` or, for a message sent with its own
``on_delivery``, reported to that callback: never dropped silently."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.envelope import Envelope
from streams.serde import AvroSerde
from streams.topics import TopicCatalog
from streams.tracing import TRACEPARENT, traceparent_of

__all__ = [
    "CORRELATION_ID_HEADER",
    "MESSAGE_TYPE_HEADER",
    "TENANT_ID_HEADER",
    "DeliveryError",
    "DeliveryReport",
    "EnvelopeProducer",
    "Headers",
    "Outgoing",
    "header_pairs",
]

MESSAGE_TYPE_HEADER = "message_type"
CORRELATION_ID_HEADER = "correlation_id"
TENANT_ID_HEADER = "tenant_id"
Headers = Sequence[tuple[str, bytes]]
DeliveryReport = Callable[[KafkaError | None, Message], None]
"""Called once per message, on the thread that polls or flushes: ``None`` once acknowledged."""
_ROOM_WAIT_S = 0.05


@dataclass(frozen=True)
class Outgoing:
    """One message as it goes to the broker."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


def header_pairs(message: Message) -> list[tuple[str, bytes]]:
    """A consumed message's headers as ``(name, bytes)``; a null header value becomes empty."""
    pairs = []
    for header in message.headers() or []:
        value = header[1]
        data = value.encode() if isinstance(value, str) else (value or b"")
        pairs.append((str(header[0]), bytes(data)))
    return pairs


class DeliveryError(RuntimeError):
    """The broker did not acknowledge some messages; their inputs must not be committed."""


class EnvelopeProducer:
    """Encodes envelopes and sends them to the topic the catalog assigns to their type."""

    def __init__(
        self,
        bootstrap_servers: str,
        serde: AvroSerde,
        topics: TopicCatalog,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            **(overrides or {}),
        }
        self._producer = Producer(config)
        self._serde = serde
        self._topics = topics
        self._failures: list[str] = []

    @property
    def kafka(self) -> Producer:
        """The underlying client, for transactions (begin/commit/abort)."""
        return self._producer

    def send(
        self, envelopes: Sequence[Envelope], on_delivery: DeliveryReport | None = None
    ) -> None:
        """Encode all first, then send: an envelope that does not fit its schema raises
        ``EncodeError`` before any of its siblings reaches the broker. With ``on_delivery``
        each message's fate goes to it instead of to the next ``flush()``. A full local queue
        is waited out on this thread: for tools and threads, never an event loop."""
        for outgoing in self.outgoing(envelopes):
            self.send_raw(outgoing, on_delivery)

    async def send_async(
        self, envelopes: Sequence[Envelope], on_delivery: DeliveryReport | None = None
    ) -> None:
        """``send`` for an event loop: a full local queue is waited out in a thread (serving
        delivery reports makes room), so the loop's other work goes on meanwhile."""
        for outgoing in self.outgoing(envelopes):
            await self.send_raw_async(outgoing, on_delivery)

    def outgoing(self, envelopes: Sequence[Envelope]) -> list[Outgoing]:
        """The messages that carry ``envelopes``: topic, key, value and routing headers."""
        return [
            Outgoing(
                self._topics.topic_for(envelope.message_type),
                envelope.correlation_id.encode(),
                self._serde.encode(envelope),
                _headers_of(envelope),
            )
            for envelope in envelopes
        ]

    def send_raw(self, outgoing: Outgoing, on_delivery: DeliveryReport | None = None) -> None:
        """Bytes as they are (dead letters and re-drives keep the original message intact),
        waiting on this thread while the local queue is full."""
        while not self._offer(outgoing, on_delivery):
            self._producer.poll(_ROOM_WAIT_S)

    async def send_raw_async(
        self, outgoing: Outgoing, on_delivery: DeliveryReport | None = None
    ) -> None:
        while not self._offer(outgoing, on_delivery):
            await asyncio.to_thread(self._producer.poll, _ROOM_WAIT_S)

    def _offer(self, outgoing: Outgoing, on_delivery: DeliveryReport | None) -> bool:
        """Queue one message; False when librdkafka's local queue has no room (nothing sent).
        Any other refusal (too large, a fenced transaction) raises ``KafkaException``."""
        try:
            self._producer.produce(
                outgoing.topic,
                value=outgoing.value,
                key=outgoing.key,
                headers=list(outgoing.headers),
                on_delivery=on_delivery or self._delivered,
            )
        except BufferError:
            return False
        return True

    def poll(self, timeout_s: float = 0) -> None:
        """Serve delivery reports, waiting up to ``timeout_s`` for the first one."""
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every message sent so far is acknowledged; raise if any was not."""
        remaining = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        if remaining:
            failures.append(f"{remaining} messages still unacknowledged after {timeout_s}s")
        if failures:
            raise DeliveryError("; ".join(failures[:5]) + f" ({len(failures)} failures)")

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(f"{message.topic()}: {error.str()}")


def _headers_of(envelope: Envelope) -> Headers:
    """What a consumer may route by without decoding the value (copies of envelope fields)."""
    headers = [
        (MESSAGE_TYPE_HEADER, envelope.message_type.encode()),
        (CORRELATION_ID_HEADER, envelope.correlation_id.encode()),
        (TENANT_ID_HEADER, envelope.tenant_id.encode()),
    ]
    traceparent = traceparent_of(envelope)
    if traceparent is not None:
        headers.append((TRACEPARENT, traceparent.encode()))
    return headers
