"""Batches: messages collected by size and time, cut per Kafka partition, decoded into rows.

A batch is one offset range of one partition, so its content is fixed by the log: after a
crash the same range decodes to the same rows and the same deduplication token, whichever
replica owns the partition by then (docs/PROJECTIONS.md, "Exactly once per event")."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from confluent_kafka import Consumer, Message

from projections.rows import event_row
from streams.batches import PARTITION_EOF
from streams.offsets import PartitionKey
from streams.serde import AvroSerde, DecodeError, WireMessage

__all__ = [
    "MAX_GROUP_MEMBERS",
    "EventRow",
    "InsertGroup",
    "PartitionBatch",
    "collect",
    "decode_batch",
]

log = logging.getLogger("projections.batch")

Poison = Callable[[Message, str], None]
# Batches per insert: their ranges travel in each member's intent, within Kafka's 4 KiB of
# commit metadata (``offset.metadata.max.bytes``).
MAX_GROUP_MEMBERS = 32


class EventRow(NamedTuple):
    event_id: str
    tenant_id: str
    correlation_id: str
    timestamp_micros: int
    line: str
    traceparent: str | None  # of the span that wrote the event: the projector's span links it

    @classmethod
    def of(cls, wire: WireMessage) -> EventRow:
        record = wire.record
        trace_id, span_id = record["trace_id"], record["span_id"]
        return cls(
            wire.message_id,
            record["tenant_id"],
            record["correlation_id"],
            wire.timestamp_micros,
            event_row(wire),
            f"00-{trace_id}-{span_id}-01" if trace_id and span_id else None,
        )


@dataclass(frozen=True)
class PartitionBatch:
    """Offsets ``[start, end)`` of one partition; ``rows`` holds the first occurrence of each
    ``event_id`` in it (undecodable messages were handed to the poison callback)."""

    topic: str
    partition: int
    start: int
    end: int
    rows: tuple[EventRow, ...]
    messages: int
    poison: int

    @property
    def key(self) -> PartitionKey:
        return (self.topic, self.partition)

    @property
    def token(self) -> str:
        """The insert deduplication token: the range, plus a digest of its ids so a topic
        recreated under the same name never matches an old token."""
        digest = hashlib.sha1(
            "\n".join(r.event_id for r in self.rows).encode(), usedforsecurity=False
        )
        return f"{self.topic}/{self.partition}/{self.start}-{self.end}/{digest.hexdigest()[:16]}"

    @property
    def range(self) -> str:
        """``topic:partition:start-end``: how an intent names this batch."""
        return f"{self.topic}:{self.partition}:{self.start}-{self.end}"


@dataclass(frozen=True)
class InsertGroup:
    """Batches of different partitions inserted as one INSERT. A chDB insert costs about
    sixty milliseconds of CPU whatever its size (the views' queries are planned each time), so
    one insert per cycle instead of one per partition is most of the projector's saving.

    The group is the unit of exactness: its token is derived from its members' tokens, every
    row carries the group's id, and each member's intent lists every member's range, so a
    projector that resumes an interrupted insert rebuilds the same group (``pending.py``)."""

    batches: tuple[PartitionBatch, ...]

    @classmethod
    def of(cls, batches: list[PartitionBatch]) -> InsertGroup:
        return cls(tuple(sorted(batches, key=lambda b: b.key)))

    @classmethod
    def split(cls, batches: list[PartitionBatch]) -> list[InsertGroup]:
        """Fresh batches in as few groups as the intents' size allows."""
        ordered = sorted(batches, key=lambda b: b.key)
        return [
            cls(tuple(ordered[i : i + MAX_GROUP_MEMBERS]))
            for i in range(0, len(ordered), MAX_GROUP_MEMBERS)
        ]

    @property
    def token(self) -> str:
        """A lone batch keeps its own token (intents written before groups existed resume
        exactly); a group's is a digest of its members'."""
        if len(self.batches) == 1:
            return self.batches[0].token
        digest = hashlib.sha1(
            "\n".join(b.token for b in self.batches).encode(), usedforsecurity=False
        )
        return f"group/{len(self.batches)}/{digest.hexdigest()}"

    @property
    def group_id(self) -> int:
        """The token as the 64-bit number stored with each row (cheap to read back)."""
        return _as_id(self.token)

    @property
    def ranges(self) -> str:
        return ",".join(b.range for b in self.batches)


def _as_id(token: str) -> int:
    digest = hashlib.sha1(token.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big")


def collect(
    consumer: Consumer, max_messages: int, max_wait_s: float
) -> tuple[list[Message], dict[PartitionKey, int]]:
    """Up to ``max_messages`` within ``max_wait_s``, and the partitions that reported their end
    (``enable.partition.eof``) with the offset they reached."""
    deadline = time.monotonic() + max_wait_s
    messages: list[Message] = []
    ends: dict[PartitionKey, int] = {}
    while len(messages) < max_messages:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        for message in consumer.consume(max_messages - len(messages), remaining):
            error = message.error()
            if error is None:
                messages.append(message)
            elif error.code() == PARTITION_EOF:
                ends[(str(message.topic()), int(message.partition() or 0))] = int(
                    message.offset() or 0
                )
            else:
                log.warning("consume error: %s", error.str())
        if ends:
            break  # a caller waiting for the end of the log wants to know now
    return messages, ends


def decode_batch(messages: list[Message], serde: AvroSerde, poison: Poison) -> PartitionBatch:
    """``messages``: consecutive messages of one partition, in offset order."""
    first, last = messages[0], messages[-1]
    seen: set[str] = set()
    rows = []
    poisoned = 0
    for message in messages:
        try:
            wire = serde.decode_wire(message.value() or b"")
        except DecodeError as exc:
            poison(message, f"DecodeError: {exc}")
            poisoned += 1
            continue
        if wire.message_id in seen:
            continue
        seen.add(wire.message_id)
        rows.append(EventRow.of(wire))
    return PartitionBatch(
        topic=str(first.topic()),
        partition=int(first.partition() or 0),
        start=int(first.offset() or 0),
        end=int(last.offset() or 0) + 1,
        rows=tuple(rows),
        messages=len(messages),
        poison=poisoned,
    )
