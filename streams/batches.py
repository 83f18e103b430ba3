"""The consumers of our long-running readers (processors, the projector): how they are set up
and how they take messages without holding any back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, Message

__all__ = ["committing_consumer", "next_batch"]


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
    ``limit`` in all). ``consume(limit, timeout)`` alone waits for ``limit`` messages or the
    whole timeout, which holds a lone message back for that long at low load."""
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    if limit <= 1:
        return [first]
    return [first, *consumer.consume(num_messages=limit - 1, timeout=0)]
