"""Dead letters: a poison message is parked with its error and origin, and the consumer moves
on. The original key, value and headers are kept byte for byte, so it can be re-driven."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, Message, TopicPartition

from streams.metrics import DEAD_LETTERED
from streams.producer import EnvelopeProducer, Headers, Outgoing, header_pairs
from streams.topics import TopicCatalog

__all__ = ["DeadLetter", "dead_letter_headers", "parked", "read_dead_letters", "redrive"]

log = logging.getLogger("streams.dead_letter")

_PREFIX = "dlq."
ERROR, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, PROCESSOR, FAILED_AT = (
    _PREFIX + name
    for name in (
        "error",
        "source_topic",
        "source_partition",
        "source_offset",
        "processor",
        "failed_at",
    )
)


def dead_letter_headers(message: Message, error: str, processor: str, now: datetime) -> Headers:
    """The original headers plus where the message came from and why it failed."""
    original = [(k, v) for k, v in header_pairs(message) if not k.startswith(_PREFIX)]
    return [
        *original,
        (ERROR, error[:4000].encode()),
        (SOURCE_TOPIC, str(message.topic()).encode()),
        (SOURCE_PARTITION, str(message.partition()).encode()),
        (SOURCE_OFFSET, str(message.offset()).encode()),
        (PROCESSOR, processor.encode()),
        (FAILED_AT, now.isoformat().encode()),
    ]


def parked(
    message: Message, error: str, processor: str, topics: TopicCatalog, now: datetime
) -> Outgoing:
    """The dead letter of a poison ``message`` (counted and logged here), for its reader's
    producer to send: runners and the projector park messages the same way."""
    source = str(message.topic())
    DEAD_LETTERED.labels(processor, source).inc()
    log.warning(
        "dead-lettered: %s",
        error,
        extra={"topic": source, "partition": message.partition(), "offset": message.offset()},
    )
    headers = dead_letter_headers(message, error, processor, now)
    return Outgoing(topics.dead_letter_of(source), message.key(), message.value(), headers)


@dataclass(frozen=True)
class DeadLetter:
    """One parked message, as read back from a dead-letter topic."""

    dlq_offset: int
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    processor: str
    failed_at: str
    key: bytes | None
    value: bytes | None
    original_headers: list[tuple[str, bytes]]

    @classmethod
    def from_message(cls, message: Message) -> DeadLetter:
        headers = header_pairs(message)
        meta = {k: v.decode(errors="replace") for k, v in headers if k.startswith(_PREFIX)}
        return cls(
            dlq_offset=int(message.offset() or 0),
            error=meta.get(ERROR, ""),
            source_topic=meta.get(SOURCE_TOPIC, ""),
            source_partition=int(meta.get(SOURCE_PARTITION, "-1")),
            source_offset=int(meta.get(SOURCE_OFFSET, "-1")),
            processor=meta.get(PROCESSOR, ""),
            failed_at=meta.get(FAILED_AT, ""),
            key=message.key(),
            value=message.value(),
            original_headers=[(k, v) for k, v in headers if not k.startswith(_PREFIX)],
        )


def read_dead_letters(
    bootstrap_servers: str, dlq_topic: str, timeout_s: float = 10.0
) -> Iterator[DeadLetter]:
    """Every message currently on ``dlq_topic``, without joining a group or committing."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "dlq-reader",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(dlq_topic, timeout=timeout_s).topics[dlq_topic]
        if metadata.error is not None:
            raise LookupError(f"{dlq_topic}: {metadata.error}")
        for partition in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(dlq_topic, partition), timeout=timeout_s
            )
            if high <= low:
                continue
            consumer.assign([TopicPartition(dlq_topic, partition, low)])
            offset = low
            while offset < high:
                message = consumer.poll(timeout_s)
                if message is None:
                    raise TimeoutError(f"{dlq_topic}[{partition}] stalled at offset {offset}")
                if message.error() is not None:
                    continue
                offset = int(message.offset() or 0) + 1
                yield DeadLetter.from_message(message)
    finally:
        consumer.close()


def redrive(letters: list[DeadLetter], producer: EnvelopeProducer) -> int:
    """Send parked messages back to their source topics, unchanged; returns how many."""
    for letter in letters:
        outgoing = Outgoing(letter.source_topic, letter.key, letter.value, letter.original_headers)
        producer.send_raw(outgoing)
    producer.flush()
    return len(letters)
