"""Collected messages become per-partition batches; an intent pins a partition's next batch to
exactly the range an interrupted insert covered."""

from dataclasses import dataclass

from projections.pending import Intent, PendingMessages, Ready, intent_metadata, read_intent


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


def offsets(ready: Ready[Message]) -> list[int]:
    return [m.offset() for m in ready.messages]


def test_without_intents_every_partition_releases_what_it_has() -> None:
    pending: PendingMessages[Message] = PendingMessages()
    pending.add(messages(0, range(3)) + messages(1, range(10, 12)))
    assert sorted(map(offsets, pending.take())) == [[0, 1, 2], [10, 11]]
    assert pending.take() == []


def test_a_pinned_partition_waits_for_its_whole_range_then_releases_exactly_it() -> None:
    pending: PendingMessages[Message] = PendingMessages()
    pending.pin(("events", 0), Intent(5, None))
    pending.add(messages(0, range(0, 3)) + messages(1, range(7, 8)))
    assert list(map(offsets, pending.take())) == [[7]]  # partition 1 is not held back
    pending.add(messages(0, range(3, 8)))
    assert list(map(offsets, pending.take())) == [[0, 1, 2, 3, 4]]
    assert list(map(offsets, pending.take())) == [[5, 6, 7]]  # then back to normal


def test_a_range_whose_last_messages_are_gone_is_released_when_a_later_one_arrives() -> None:
    pending: PendingMessages[Message] = PendingMessages()
    pending.pin(("events", 0), Intent(5, None))
    pending.add(messages(0, range(0, 3)) + messages(0, range(9, 10)))
    assert list(map(offsets, pending.take())) == [[0, 1, 2]]
    assert list(map(offsets, pending.take())) == [[9]]


def test_revoked_partitions_are_forgotten() -> None:
    pending: PendingMessages[Message] = PendingMessages()
    pending.pin(("events", 0), Intent(5, None))
    pending.add(messages(0, range(2)) + messages(1, range(2)))
    pending.forget([("events", 0), ("events", 1)])
    pending.add(messages(0, range(2, 4)))
    assert list(map(offsets, pending.take())) == [[2, 3]]


def test_intent_metadata_round_trips_and_ignores_foreign_metadata() -> None:
    group = "events:0:1000-1234,events:3:80-90"
    assert read_intent(intent_metadata(1234, group)) == Intent(1234, group)
    assert read_intent("projector-batch-end=1234") == Intent(1234, None)  # before groups
    assert read_intent("") is None
    assert read_intent(None) is None
    assert read_intent("written by another tool") is None


def test_pinned_members_of_one_group_are_released_together() -> None:
    pending: PendingMessages[Message] = PendingMessages()
    group = "events:0:0-5,events:1:0-3"
    pending.pin(("events", 0), Intent(5, group))
    pending.pin(("events", 1), Intent(3, group))
    pending.add(messages(0, range(0, 6)) + messages(1, range(0, 2)) + messages(2, range(4)))
    assert [offsets(r) for r in pending.take()] == [[0, 1, 2, 3]]  # partition 2 is free
    pending.add(messages(1, range(2, 4)))
    released = pending.take()
    assert [(offsets(r), r.group) for r in released] == [
        ([0, 1, 2, 3, 4], group),
        ([0, 1, 2], group),
    ]
    assert [offsets(r) for r in pending.take()] == [[5], [3]]
