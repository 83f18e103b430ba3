"""Collected messages become per-partition batches; an intent pins a partition's next batch to
exactly the range an interrupted insert covered."""

from dataclasses import dataclass

from projections.pending import PendingMessages, intent_end, intent_metadata


@dataclass(frozen=True)
class Message:
    _topic: str
    _partition: int
    _offset: int

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def messages(partition: int, offsets: range) -> list[Message]:
    return [Message("events", partition, offset) for offset in offsets]


def offsets(batch: list[Message]) -> list[int]:
    return [m.offset() for m in batch]


def test_without_intents_every_partition_releases_what_it_has() -> None:
    pending: PendingMessages[Message] = PendingMessages()
    pending.add(messages(0, range(3)) + messages(1, range(10, 12)))
    assert sorted(map(offsets, pending.take())) == [[0, 1, 2], [10, 11]]
    assert pending.take() == []


def test_a_pinned_partition_waits_for_its_whole_range_then_releases_exactly_it() -> None:
    pending: PendingMessages[Message] = PendingMessages()
    pending.pin(("events", 0), end=5)
    pending.add(messages(0, range(0, 3)) + messages(1, range(7, 8)))
    assert list(map(offsets, pending.take())) == [[7]]  # partition 1 is not held back
    pending.add(messages(0, range(3, 8)))
    assert list(map(offsets, pending.take())) == [[0, 1, 2, 3, 4]]
    assert list(map(offsets, pending.take())) == [[5, 6, 7]]  # then back to normal


def test_a_range_whose_last_messages_are_gone_is_released_when_a_later_one_arrives() -> None:
    pending: PendingMessages[Message] = PendingMessages()
    pending.pin(("events", 0), end=5)
    pending.add(messages(0, range(0, 3)) + messages(0, range(9, 10)))
    assert list(map(offsets, pending.take())) == [[0, 1, 2]]
    assert list(map(offsets, pending.take())) == [[9]]


def test_revoked_partitions_are_forgotten() -> None:
    pending: PendingMessages[Message] = PendingMessages()
    pending.pin(("events", 0), end=5)
    pending.add(messages(0, range(2)) + messages(1, range(2)))
    pending.forget([("events", 0), ("events", 1)])
    pending.add(messages(0, range(2, 4)))
    assert list(map(offsets, pending.take())) == [[2, 3]]


def test_intent_metadata_round_trips_and_ignores_foreign_metadata() -> None:
    assert intent_end(intent_metadata(1234)) == 1234
    assert intent_end("") is None
    assert intent_end(None) is None
    assert intent_end("written by another tool") is None
