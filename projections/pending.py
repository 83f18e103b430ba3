"""Collected messages waiting to become batches, per partition, and the intents that pin the
next batch of a partition to an exact range.

An intent is written as Kafka commit metadata with a batch's start offset before its insert
begins, and cleared by the commit of its end offset once the insert is durable. Finding one
at assignment means an insert was interrupted: the next batch of that partition must be that
range again, so the retried insert carries the same rows and deduplication token."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from streams.offsets import PartitionKey

__all__ = ["INTENT_PREFIX", "PendingMessages", "intent_end", "intent_metadata"]

INTENT_PREFIX = "projector-batch-end="


class _Message(Protocol):
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


def intent_metadata(end: int) -> str:
    return f"{INTENT_PREFIX}{end}"


def intent_end(metadata: str | None) -> int | None:
    """The end offset an intent names, or None for ordinary commit metadata."""
    if not metadata or not metadata.startswith(INTENT_PREFIX):
        return None
    return int(metadata.removeprefix(INTENT_PREFIX))


M = TypeVar("M", bound=_Message)


def _key(message: _Message) -> PartitionKey:
    return (str(message.topic()), int(message.partition() or 0))


def _offset(message: _Message) -> int:
    return int(message.offset() or 0)


class PendingMessages(Generic[M]):
    def __init__(self) -> None:
        self._queues: dict[PartitionKey, list[M]] = {}
        self._intents: dict[PartitionKey, int] = {}

    def add(self, messages: Iterable[M]) -> None:
        for message in messages:
            self._queues.setdefault(_key(message), []).append(message)

    def pin(self, key: PartitionKey, end: int) -> None:
        """The next batch of ``key`` ends exactly at ``end`` (exclusive)."""
        self._intents[key] = end

    def forget(self, keys: Iterable[PartitionKey]) -> None:
        """Revoked partitions: their queued messages go to the next owner (uncommitted)."""
        for key in keys:
            self._queues.pop(key, None)
            self._intents.pop(key, None)

    def take(self) -> list[list[M]]:
        """Every partition's releasable messages as one consecutive run each. A pinned
        partition releases nothing until its whole range is here (a message at or past
        ``end - 1`` arrived; offsets only grow), then exactly the range."""
        ready = []
        for key in list(self._queues):
            queue = self._queues[key]
            end = self._intents.get(key)
            if end is None:
                ready.append(queue)
                del self._queues[key]
            elif _offset(queue[-1]) >= end - 1:
                head = [m for m in queue if _offset(m) < end]
                if head:
                    ready.append(head)
                rest = [m for m in queue if _offset(m) >= end]
                del self._intents[key]
                if rest:
                    self._queues[key] = rest
                else:
                    del self._queues[key]
        return ready
