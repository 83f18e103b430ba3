"""Taking messages from a consumer without holding any back."""

from __future__ import annotations

from confluent_kafka import Consumer, Message

__all__ = ["next_batch"]


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
