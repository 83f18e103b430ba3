"""The consumers of our long-running readers (processors, the projector): how they are set up
and how they take messages without holding any back."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message

__all__ = [
    "BATCHING_FETCH",
    "PARTITION_EOF",
    "batching_fetch",
    "committing_consumer",
    "next_batch",
]

log = logging.getLogger("streams.consumer")
PARTITION_EOF = getattr(KafkaError, "_PARTITION_EOF")  # noqa: B009 - librdkafka's own name
"""The error code of a partition's end-of-log report (``enable.partition.eof``): news, not a
failure."""


def batching_fetch(wait_ms: int) -> dict[str, int]:
    """The broker may hold a fetch until it has a megabyte or ``wait_ms`` passed, so a few
    fetches a second replace one per produced batch (each fetch costs the broker and the
    reader CPU; at 200 chat requests/s, hundreds a second)."""
    return {"fetch.min.bytes": 1_048_576, "fetch.wait.max.ms": wait_ms}


BATCHING_FETCH = batching_fetch(500)
"""For a reader nobody waits on (the projector, an evaluator)."""


def committing_consumer(
    bootstrap_servers: str, group_id: str, overrides: Mapping[str, Any] | None = None
) -> Consumer:
    """A group member that commits only what its owner says is done (no auto-commit), reads
    committed transactions only, and starts from the beginning when the group has no offset."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            **(overrides or {}),
        }
    )


def next_batch(consumer: Consumer, limit: int, timeout_s: float) -> list[Message]:
    """Wait up to ``timeout_s`` for one message, then take what else is already there (up to
    ``limit`` in all); consume errors are logged and left out (a partition's end is news, not
    an error). ``consume(limit, timeout)`` alone waits for ``limit`` messages or the whole
    timeout, which holds a lone message back for that long at low load."""
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    taken = [first] if limit <= 1 else [first, *consumer.consume(num_messages=limit - 1, timeout=0)]
    good = []
    for message in taken:
        error = message.error()
        if error is None:
            good.append(message)
        elif error.code() != PARTITION_EOF:
            log.warning("consume error: %s", error.str())
    return good
