"""The one producer: idempotent, ``acks=all``, keyed by ``correlation_id`` so a run's messages
stay in order; a failed delivery is raised at ``flush()`` or, for a message sent with its own
``on_delivery``, reported to that callback: never dropped silently."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    "header_pairs",
]

MESSAGE_TYPE_HEADER = "message_type"
CORRELATION_ID_HEADER = "correlation_id"
TENANT_ID_HEADER = "tenant_id"
Headers = Sequence[tuple[str, bytes]]
DeliveryReport = Callable[[KafkaError | None, Message], None]
"""Called once per message, on the thread that polls or flushes: ``None`` once acknowledged."""


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
        each message's fate goes to it instead of to the next ``flush()``."""
        encoded = [(envelope, self._serde.encode(envelope)) for envelope in envelopes]
        for envelope, value in encoded:
            self.send_raw(
                self._topics.topic_for(envelope.message_type),
                envelope.correlation_id.encode(),
                value,
                _headers_of(envelope),
                on_delivery,
            )

    def send_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        on_delivery: DeliveryReport | None = None,
    ) -> None:
        """Bytes as they are: dead letters and re-drives keep the original message intact."""
        report = on_delivery or self._delivered
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers), on_delivery=report
                )
                return
            except BufferError:
                self._producer.poll(0.05)  # queue full: serve delivery reports to make room

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
