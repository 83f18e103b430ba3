"""The live projector against the real broker and chDB: each event once whatever the delivery,
dead letters, store outages, and an insert interrupted half-way."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from bench.projector_workload import mixed_events
from projections.metrics import INSERT_FAILURES
from projections.store import ProjectionStore, SqlReader, StoreError
from streams import Envelope, TopicCatalog, ensure_topics, load_topic_catalog
from streams.dead_letter import read_dead_letters
from tests.integration.kafka_reading import committed_offsets
from tests.integration.test_projections_support import (
    START,
    assert_projected_exactly,
    encode,
    events_topic,
    produce,
    project,
    projection_db,
    running_projector,
    scalar,
    wait_committed,
    wait_until,
)


def two_partition_catalog(bootstrap: str) -> TopicCatalog:
    catalog = load_topic_catalog(prefix=f"t{uuid.uuid4().hex[:10]}.")
    narrow = [t.model_copy(update={"partitions": 2}) for t in catalog.topics]
    catalog = catalog.model_copy(update={"topics": narrow})
    ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), catalog)
    return catalog


def interleaved(events: Sequence[Envelope], seed: int) -> list[Envelope]:
    """The runs in another order, their events dealt out round-robin (each run still in order)."""
    runs: dict[str, list[Envelope]] = {}
    for event in events:
        runs.setdefault(event.correlation_id, []).append(event)
    queues = list(runs.values())
    random.Random(seed).shuffle(queues)
    dealt = []
    while queues:
        queues = [q for q in queues if q]
        dealt.extend(q.pop(0) for q in queues)
    return dealt


def test_twice_delivered_or_reinterleaved_events_give_identical_tables(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    events = mixed_events(15_000, START, seed=11)
    encoded = encode(events)
    topic = events_topic(topics)
    produce(bootstrap, topic, encoded)
    with projection_db(tmp_path / "once") as db:
        project(db, bootstrap, topics, len(events))
        assert_projected_exactly(db.reader, events)
        once = db.checksum()
        produce(bootstrap, topic, encoded)  # every event a second time, later in the log
        project(db, bootstrap, topics, len(events))  # a fresh group: reads both copies
        assert db.checksum() == once

    other = two_partition_catalog(bootstrap)
    produce(bootstrap, events_topic(other), encode(interleaved(events, seed=2)))
    with projection_db(tmp_path / "interleaved") as db:
        project(db, bootstrap, other, len(events))
        assert db.checksum() == once


def test_undecodable_messages_go_to_the_dead_letter_topic(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    events = mixed_events(500, START, seed=12)
    topic = events_topic(topics)
    poison = [(b"run-x", b"\xc3\x01not avro at all", b"llm.request.completed")]
    produce(bootstrap, topic, encode(events[:250]) + poison + encode(events[250:]))
    with projection_db(tmp_path) as db:
        project(db, bootstrap, topics, len(events))
        assert_projected_exactly(db.reader, events)
    (letter,) = read_dead_letters(bootstrap, topics.dead_letter_of(topic))
    assert letter.value == poison[0][1]
    assert (letter.processor, letter.source_topic) == ("projector", topic)
    assert "DecodeError" in letter.error


class FlakyStore:
    """The real store behind a switch: while ``down``, every write and query fails like an
    unreachable server."""

    def __init__(self, store: ProjectionStore) -> None:
        self._store = store
        self.down = False
        self.half_apply_once = False

    def command(self, sql: str) -> None:
        self._check()
        self._store.command(sql)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        self._check()
        return self._store.rows(sql)

    def insert(self, table: str, json_lines: str, settings: Any) -> None:
        self._check()
        if self.half_apply_once:
            # The part lands in events and the metrics view, not in runs; then the process
            # "dies": every later call fails until the projector is gone.
            self.half_apply_once = False
            database = table.split(".")[0]
            self._store.command(f"DETACH TABLE {database}.runs_mv")
            self._store.insert(table, json_lines, settings)
            self._store.command(f"ATTACH TABLE {database}.runs_mv")
            self.down = True
            raise StoreError("Code: 210. DB::NetException: Connection reset by peer")
        self._store.insert(table, json_lines, settings)

    def reader(self, database: str) -> SqlReader:
        return self._store.reader(database)

    def close(self) -> None:
        self._store.close()

    def _check(self) -> None:
        if self.down:
            raise StoreError("Code: 210. DB::NetException: Connection refused (127.0.0.1:8123)")


def failures() -> float:
    return INSERT_FAILURES.labels("events")._value.get()


def test_a_store_outage_is_waited_out_and_nothing_is_lost_or_doubled(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    events = mixed_events(6000, START, seed=13)
    topic = events_topic(topics)
    produce(bootstrap, topic, encode(events))
    group = f"p-{uuid.uuid4().hex[:8]}"
    with projection_db(tmp_path) as db:
        flaky = FlakyStore(db.store)
        flaky.down = True
        before = failures()
        with running_projector(db, bootstrap, topics, group, store=flaky):
            wait_until(lambda: failures() >= before + 4, 30, "several failed insert attempts")
            assert db.count() == 0
            committed = committed_offsets(bootstrap, group, topic)
            assert all(offset == 0 for offset in committed.values())  # only intents so far
            flaky.down = False
            wait_until(lambda: db.count() >= len(events), 60, "catching up")
            wait_committed(bootstrap, group, topics)
        assert_projected_exactly(db.reader, events)


def test_an_insert_interrupted_half_way_is_completed_exactly_after_restart(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    """The first insert (one group of several partitions' batches) reaches events and metrics
    but not runs, then the store is gone and the projector stops without committing. The next
    projector finds the batches' intents, rebuilds the same ranges as the same group and retries
    the same insert: runs gets its rows, nothing doubles."""
    events = mixed_events(6000, START, seed=14)
    produce(bootstrap, events_topic(topics), encode(events))
    group = f"p-{uuid.uuid4().hex[:8]}"
    with projection_db(tmp_path) as db:
        flaky = FlakyStore(db.store)
        flaky.half_apply_once = True
        with running_projector(
            db, bootstrap, topics, group, store=flaky, batch_size=2000, drain_timeout_s=0.2
        ):
            wait_until(lambda: flaky.down, 30, "the half-applied insert")
        half = db.count()
        assert 0 < half < len(events)
        assert scalar(db.reader, "SELECT count() FROM runs") == 0
        with running_projector(db, bootstrap, topics, group):
            wait_until(lambda: db.count() >= len(events), 60, "the rest")
            wait_committed(bootstrap, group, topics)
        assert_projected_exactly(db.reader, events)
