"""Replays against the real broker and chDB: the same tables again, swapped in one step while
readers read and while the live projector keeps writing."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Message

from bench.projector_workload import mixed_events
from projections import Replay, ReplayRequest
from projections.log_reader import LogReader
from projections.projector import Projector
from projections.store import SqlReader
from streams import TopicCatalog
from tests.integration.kafka_reading import end_offsets
from tests.integration.test_projections_support import (
    START,
    ProjectionDb,
    assert_projected_exactly,
    encode,
    events_topic,
    produce,
    projection_db,
    running_projector,
    scalar,
    serde,
    wait_committed,
    wait_until,
)


def replay(
    db: ProjectionDb,
    bootstrap: str,
    topics: TopicCatalog,
    request: ReplayRequest | None = None,
    live: Projector | None = None,
) -> list[str]:
    """Runs a replay (inside ``live``'s process when given); returns its progress lines."""
    lines: list[str] = []
    rebuild = Replay(
        db.store,
        serde(),
        bootstrap,
        topics.event_topics(),
        db.database,
        live=live,
        stopping=live.stopping if live else None,
        batch_size=4000,
        progress_every_s=0.2,
    )
    rebuild.run(request or ReplayRequest(), lines.append)
    return lines


def shadows(reader: SqlReader) -> int:
    return scalar(
        reader,
        "SELECT count() FROM system.tables "
        "WHERE database = currentDatabase() AND name LIKE '%\\_\\_shadow'",
    )


def test_a_replay_swaps_complete_tables_while_readers_read(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    events = mixed_events(12_000, START, seed=21)
    produce(bootstrap, events_topic(topics), encode(events))
    runs = len({e.correlation_id for e in events})
    seen: list[tuple[int, int]] = []
    group = f"p-{uuid.uuid4().hex[:8]}"
    with (
        projection_db(tmp_path) as db,
        running_projector(db, bootstrap, topics, group) as projector,
    ):
        wait_until(lambda: db.count() >= len(events), 60, "projection")
        wait_committed(bootstrap, group, topics)
        before = db.checksum()
        reading = threading.Event()
        reader = db.store.reader(db.database)

        def read_while_replaying() -> None:
            while not reading.is_set():
                events_seen = scalar(reader, "SELECT count() FROM events")
                runs_seen = scalar(reader, "SELECT count() FROM runs_latest")
                seen.append((events_seen, runs_seen))

        thread = threading.Thread(target=read_while_replaying)
        thread.start()
        try:
            progress = replay(db, bootstrap, topics, live=projector)
        finally:
            reading.set()
            thread.join()
        assert db.checksum() == before
        assert shadows(db.reader) == 0
    assert len(seen) > 5
    assert set(seen) == {(len(events), runs)}  # never empty, never half-built
    assert any("msg/s" in line and "ETA" in line for line in progress)


def test_a_replay_loses_nothing_the_live_projector_writes_meanwhile(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    events = mixed_events(16_000, START, seed=22)
    topic = events_topic(topics)
    first, rest = encode(events[:8000]), encode(events[8000:])
    produce(bootstrap, topic, first)
    group = f"p-{uuid.uuid4().hex[:8]}"
    with (
        projection_db(tmp_path) as db,
        running_projector(db, bootstrap, topics, group) as projector,
    ):
        wait_until(lambda: db.count() >= 8000, 60, "the first half")

        def keep_producing() -> None:
            for chunk in range(0, len(rest), 500):
                produce(bootstrap, topic, rest[chunk : chunk + 500])

        producer = threading.Thread(target=keep_producing)
        producer.start()
        try:
            replay(db, bootstrap, topics, live=projector)
        finally:
            producer.join()
        wait_until(lambda: db.count() >= len(events), 60, "the second half")
        wait_committed(bootstrap, group, topics)
        assert_projected_exactly(db.reader, events)
        live = db.checksum()
    with projection_db(tmp_path) as db:
        replay(db, bootstrap, topics)  # quiet log, no live projector: the reference
        assert db.checksum() == live


def test_a_replay_from_a_timestamp_or_of_some_tables_changes_nothing(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    events = mixed_events(8000, START, seed=23)
    produce(bootstrap, events_topic(topics), encode(events))
    group = f"p-{uuid.uuid4().hex[:8]}"
    with projection_db(tmp_path) as db:
        with running_projector(db, bootstrap, topics, group) as live:
            wait_until(lambda: db.count() >= len(events), 60, "projection")
            wait_committed(bootstrap, group, topics)
            before = db.checksum()
            middle = events[len(events) // 2].timestamp
            replay(db, bootstrap, topics, ReplayRequest(("runs",), middle), live=live)
            assert db.checksum() == before
        replay(db, bootstrap, topics, ReplayRequest(("events", "metrics_minute")))
        assert db.checksum() == before
        with pytest.raises(ValueError, match="cannot rebuild schema_migrations"):
            replay(db, bootstrap, topics, ReplayRequest(("schema_migrations",)))
        assert shadows(db.reader) == 0


def test_the_log_reader_stops_at_its_targets_and_resumes_exactly_there(
    bootstrap: str, topics: TopicCatalog
) -> None:
    """Messages past the snapshot are fetched together with the end of the log; the reader
    parks each partition at its target and reads exactly the rest once the target is raised."""
    events = mixed_events(600, START, seed=24)
    topic = events_topic(topics)
    produce(bootstrap, topic, encode(events[:400]))
    reader = LogReader(bootstrap, [topic])
    try:
        produce(bootstrap, topic, encode(events[400:]))  # past the snapshot
        seen = read_all(reader)
        assert len(seen) == 400
        reader.raise_targets({(topic, p): end for p, end in end_offsets(bootstrap, topic).items()})
        seen += read_all(reader)
    finally:
        reader.close()
    offsets = sorted((m.partition(), m.offset()) for m in seen)
    assert len(offsets) == len(set(offsets)) == len(events)


def read_all(reader: LogReader) -> list[Message]:
    messages: list[Message] = []
    for _ in range(200):  # bounded: each read waits at most 0.2 s
        if reader.finished():
            return messages
        messages += reader.read(1000, 0.2)
    raise AssertionError("the reader never reached its targets")
