"""Shared by the projection tests (no tests here): producing the workload, running a projector
in a thread or a process, bounded waits, and the store: chDB in the test's temp dir, or the
ClickHouse server named by CLICKHOUSE_URL (a database of its own per test, dropped after)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from projections import ProjectionSettings, ProjectionStore, Projector, SqlReader, checksum
from projections.batch import EventRow, InsertGroup, PartitionBatch
from projections.migrator import migrate
from projections.store import open_store
from projections.writer import EventWriter
from streams import AvroSerde, Envelope, Settings, TopicCatalog, serde_for
from tests.integration.kafka_reading import assert_all_committed
from tests.integration.processes import FAST_REBALANCE, REPO

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def serde() -> AvroSerde:
    return serde_for(Settings())


def encode(events: Sequence[Envelope]) -> list[tuple[bytes, bytes, bytes]]:
    """(key, value, message type) as the platform's producer would send them."""
    codec = serde()
    return [(e.correlation_id.encode(), codec.encode(e), e.message_type.encode()) for e in events]


def produce(bootstrap: str, topic: str, encoded: Sequence[tuple[bytes, bytes, bytes]]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True}
    )
    for key, value, kind in encoded:
        while True:
            try:
                producer.produce(topic, value, key, headers=[("message_type", kind)])
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(30) == 0


def events_topic(topics: TopicCatalog) -> str:
    topic = topics.topic_for("llm.request.completed")  # the run events the tests write
    return topic


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)  # poll interval, bounded by the deadline


def scalar(reader: SqlReader, sql: str) -> int:
    return int(reader.query(sql, "TabSeparated").decode().strip() or 0)


@dataclass
class ProjectionDb:
    """The projection store of one test, migrated, with its read-only handle."""

    store: ProjectionStore
    reader: SqlReader
    data_dir: Path
    database: str
    siblings: list[str] = field(default_factory=list)

    def checksum(self) -> str:
        return checksum(self.reader, self.database)

    def count(self) -> int:
        """Rows in ``events`` (the reader resolves unqualified names in the test's database)."""
        return scalar(self.reader, "SELECT count() FROM events")

    def sibling(self, label: str) -> ProjectionDb:
        """Another migrated database in the same store (dropped with this one on a server)."""
        name = f"{self.database}_{label}"
        migrate(self.store, name, 30)
        self.siblings.append(name)
        return ProjectionDb(self.store, self.store.reader(name), self.data_dir, name)


@contextmanager
def projection_db(data_dir: Path) -> Iterator[ProjectionDb]:
    server = os.environ.get("CLICKHOUSE_URL")
    database = f"t_{uuid.uuid4().hex[:10]}" if server else "platform"
    store = open_store(data_dir)
    try:
        migrate(store, database, 30)
        db = ProjectionDb(store, store.reader(database), data_dir, database)
        yield db
        if server:
            for name in (database, *db.siblings):
                store.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    finally:
        store.close()


@contextmanager
def running_projector(
    db: ProjectionDb,
    bootstrap: str,
    topics: TopicCatalog,
    group: str | None = None,
    store: Any = None,
    batch_size: int = ProjectionSettings.model_fields["batch_size"].default,
    **options: Any,
) -> Iterator[Projector]:
    """A projector in a thread; stopped (finish, commit) and joined on exit."""
    settings = ProjectionSettings(
        data_dir=db.data_dir,
        database=db.database,
        group_id=group or f"p-{uuid.uuid4().hex[:8]}",
        batch_wait_ms=100,
        batch_size=batch_size,
    )
    projector = Projector(store or db.store, serde(), topics, bootstrap, settings, **options)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            projector.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="projector")
    thread.start()
    try:
        yield projector
    finally:
        projector.stop()
        thread.join(timeout=60)
    assert not thread.is_alive(), "projector did not stop"
    if failure:
        raise failure[0]


def start_projector_process(
    bootstrap: str,
    topics: TopicCatalog,
    data_dir: Path,
    port: int,
    group: str,
    log: Path,
    batch_size: int | None = None,
) -> subprocess.Popen[bytes]:
    """``python -m projections run`` as ``./dev up`` runs it."""
    prefix = topics.topics[0].name.removesuffix("commands.llm")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TOPIC_PREFIX": prefix,
        "PROJECTIONS_DATA_DIR": str(data_dir),
        "PROJECTIONS_QUERY_PORT": str(port),
        "PROJECTIONS_GROUP_ID": group,
        "PROJECTIONS_BATCH_WAIT_MS": "100",
    }
    if batch_size is not None:
        env["PROJECTIONS_BATCH_SIZE"] = str(batch_size)
    env.pop("CLICKHOUSE_URL", None)
    with open(log, "ab") as out:
        fast_rebalance = [
            arg for setting in FAST_REBALANCE for arg in ("--consumer-config", setting)
        ]
        return subprocess.Popen(
            [sys.executable, "-m", "projections", "run", *fast_rebalance],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=out,
        )


def run_cli(*args: str, port: int, bootstrap: str, topics: TopicCatalog, data_dir: Path) -> Any:
    prefix = topics.topics[0].name.removesuffix("commands.llm")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TOPIC_PREFIX": prefix,
        "PROJECTIONS_DATA_DIR": str(data_dir),
        "PROJECTIONS_QUERY_PORT": str(port),
    }
    env.pop("CLICKHOUSE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "projections", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def batch_of(events: Sequence[Envelope], start: int, partition: int = 0) -> PartitionBatch:
    """A partition batch as the projector cuts one (offsets ``start`` onwards), without Kafka."""
    seen: set[str] = set()
    rows = []
    wire = serde()
    for e in events:
        if e.message_id not in seen:
            seen.add(e.message_id)
            rows.append(EventRow.of(wire.decode_wire(wire.encode(e))))
    return PartitionBatch(
        "test", partition, start, start + len(events), tuple(rows), len(events), 0
    )


def write(
    db: ProjectionDb, events: Sequence[Envelope], batch_size: int, first_offset: int = 0
) -> None:
    writer = EventWriter(db.store, f"{db.database}.events", threading.Event(), live=False)
    for offset in range(0, len(events), batch_size):
        batch = batch_of(events[offset : offset + batch_size], first_offset + offset)
        writer.write([InsertGroup.of([batch])])


def assert_projected_exactly(reader: SqlReader, events: Sequence[Envelope]) -> None:
    """Nothing lost, nothing doubled: the tables hold exactly what ``events`` imply."""
    unique = {e.message_id: e for e in events}.values()
    kinds = Counter(e.message_type for e in unique)
    assert scalar(reader, "SELECT count() FROM events") == len(unique)
    assert scalar(reader, "SELECT uniqExact(event_id) FROM events") == len(unique)
    assert scalar(reader, "SELECT count() FROM runs_latest") == len(
        {e.correlation_id for e in unique}
    )
    terminal = kinds["llm.request.completed"] + kinds["llm.request.failed"]
    assert scalar(reader, "SELECT sum(requests) FROM metrics_minute") == terminal
    violations = kinds["guardrail.violation.detected"]
    assert scalar(reader, "SELECT sum(guardrail_violations) FROM metrics_minute") == violations
    cost = sum(
        round(e.payload["cost_usd"] * 1e9)
        for e in unique
        if e.message_type == "llm.request.completed"
    )
    assert scalar(reader, "SELECT sum(cost_nanousd) FROM metrics_minute") == cost


def project(db: ProjectionDb, bootstrap: str, topics: TopicCatalog, expected: int) -> None:
    """Run a projector until every event is in and every offset committed: an offset is
    committed only once its insert returned, views included (a reader can see a batch's
    events a moment before the views have written its runs and metrics)."""
    group = f"p-{uuid.uuid4().hex[:8]}"
    with running_projector(db, bootstrap, topics, group):
        wait_until(lambda: db.count() >= expected, 60, f"{expected} events projected")
        wait_committed(bootstrap, group, topics)


def wait_committed(bootstrap: str, group: str, topics: TopicCatalog) -> None:
    def done() -> bool:
        try:
            assert_all_committed(bootstrap, group, events_topic(topics))
        except AssertionError:
            return False
        return True

    wait_until(done, 60, "every offset committed")
