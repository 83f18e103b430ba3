"""Collected messages waiting to become batches, per partition, and the intents that pin the
next batch of a partition to an exact range and group.

An intent is written as Kafka commit metadata with a batch's start offset before its insert
begins, and cleared by the commit of its end offset once the insert is durable. It names the
batch's end and the ranges of every batch inserted with it (``InsertGroup``). Finding one at
assignment means an insert was interrupted: the next batch of that partition must be that range
again, released together with the other members this projector owns, so the retried insert
carries the same rows and deduplication token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from streams.offsets import PartitionKey

__all__ = ["INTENT_PREFIX", "Intent", "PendingMessages", "Ready", "intent_metadata", "read_intent"]

INTENT_PREFIX = "projector-batch-end="


class _Message(Protocol):
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


@dataclass(frozen=True)
class Intent:
    end: int  # exclusive
    group: str | None  # the ranges inserted together (None: the batch alone, an older intent)


def intent_metadata(end: int, group: str) -> str:
    return f"{INTENT_PREFIX}{end};{group}"


def read_intent(metadata: str | None) -> Intent | None:
    """The intent in commit metadata, or None for ordinary commit metadata."""
    if not metadata or not metadata.startswith(INTENT_PREFIX):
        return None
    end, _, group = metadata.removeprefix(INTENT_PREFIX).partition(";")
    return Intent(int(end), group or None)


M = TypeVar("M", bound=_Message)


@dataclass(frozen=True)
class Ready(Generic[M]):
    """One partition's consecutive messages, and the interrupted group they must rejoin."""

    messages: list[M]
    group: str | None = None


def _key(message: _Message) -> PartitionKey:
    return (str(message.topic()), int(message.partition() or 0))


def _offset(message: _Message) -> int:
    return int(message.offset() or 0)


class PendingMessages(Generic[M]):
    def __init__(self) -> None:
        self._queues: dict[PartitionKey, list[M]] = {}
        self._intents: dict[PartitionKey, Intent] = {}

    def add(self, messages: Iterable[M]) -> None:
        for message in messages:
            self._queues.setdefault(_key(message), []).append(message)

    def pin(self, key: PartitionKey, intent: Intent) -> None:
        """The next batch of ``key`` ends exactly at ``intent.end`` (exclusive)."""
        self._intents[key] = intent

    def forget(self, keys: Iterable[PartitionKey]) -> None:
        """Revoked partitions: their queued messages go to the next owner (uncommitted)."""
        for key in keys:
            self._queues.pop(key, None)
            self._intents.pop(key, None)

    def take(self) -> list[Ready[M]]:
        """Every partition's releasable messages as one consecutive run each. A pinned
        partition releases nothing until its whole range is here (a message at or past
        ``end - 1`` arrived; offsets only grow), then exactly the range, and only once every
        pinned partition of its group can release too."""
        complete = {key for key, intent in self._intents.items() if self._has(key, intent.end)}
        waiting = {i.group for k, i in self._intents.items() if k not in complete}
        ready = []
        for key in list(self._queues):
            intent = self._intents.get(key)
            if intent is None:
                ready.append(Ready(self._queues.pop(key)))
            elif key in complete and (intent.group is None or intent.group not in waiting):
                del self._intents[key]
                released = self._release(key, intent.end)
                if released:  # empty when the range's messages are gone from the log
                    ready.append(Ready(released, intent.group))
        return ready

    def _has(self, key: PartitionKey, end: int) -> bool:
        queue = self._queues.get(key)
        return queue is not None and _offset(queue[-1]) >= end - 1

    def _release(self, key: PartitionKey, end: int) -> list[M]:
        queue = self._queues.pop(key)
        rest = [m for m in queue if _offset(m) >= end]
        if rest:
            self._queues[key] = rest
        return [m for m in queue if _offset(m) < end]
