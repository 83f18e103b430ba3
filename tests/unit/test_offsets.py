from streams.offsets import OffsetTracker

P0 = ("events.llm", 0)
P1 = ("events.llm", 1)


def test_commit_stops_below_the_lowest_unfinished_offset() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.start(P0, offset)
    tracker.finish(P0, 10)
    tracker.finish(P0, 12)
    tracker.finish(P0, 13)
    assert tracker.to_commit() == {P0: 11}
    tracker.finish(P0, 11)
    assert tracker.to_commit() == {P0: 14}


def test_nothing_to_commit_twice() -> None:
    tracker = OffsetTracker()
    tracker.start(P0, 0)
    tracker.finish(P0, 0)
    tracker.committed(tracker.to_commit())
    assert tracker.to_commit() == {}


def test_partitions_are_independent_and_can_be_selected() -> None:
    tracker = OffsetTracker()
    tracker.start(P0, 5)
    tracker.start(P1, 7)
    tracker.finish(P1, 7)
    assert tracker.to_commit() == {P0: 5, P1: 8}
    assert tracker.to_commit([P1]) == {P1: 8}
    assert tracker.in_flight(P0) == 1
    assert tracker.total_in_flight() == 1


def test_forgotten_partitions_are_never_committed() -> None:
    tracker = OffsetTracker()
    tracker.start(P0, 1)
    tracker.finish(P0, 1)
    tracker.forget([P0])
    assert tracker.to_commit() == {}
    tracker.finish(P0, 2)
    assert tracker.to_commit() == {}


def test_a_message_passed_by_never_lets_a_commit_skip_unfinished_work() -> None:
    tracker = OffsetTracker()
    tracker.start(P0, 3)
    tracker.passed(P0, 4)
    assert tracker.to_commit() == {P0: 3}
    tracker.finish(P0, 3)
    assert tracker.to_commit() == {P0: 5}
