"""Throughput of one projector process on this machine: topic -> queryable, and a full replay.

    .venv/bin/python -m bench.projector_throughput [--events 1000000]

Uses KAFKA_BOOTSTRAP_SERVERS when set, otherwise starts a local broker; chDB in a temp dir.
Produces ``--events`` mixed events (bench/projector_workload.py), runs the live projector until
every event is queryable, then rebuilds every projection from the topics. Also times the parts
of the per-event cost in isolation (Avro decode, row JSON, insert with the materialized views)
to say where the time goes. Beside wall time it prints the CPU time of this process (Python,
chDB and librdkafka threads; not the broker's) per event: on a shared machine that moves far
less with the load than events/s do. Prints numbers only; goals are never asserted."""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from multiprocessing import Pool
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from bench.projector_workload import mixed_events
from projections import ChdbStore, ProjectionSettings, Projector, Replay, ReplayRequest
from projections.migrator import migrate
from projections.rows import INSERT_SETTINGS, event_row
from streams import AvroSerde, Settings, ensure_topics, load_topic_catalog, serde_for
from streams.local_kafka import LocalKafka

_START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def _encoded(share: tuple[int, int]) -> list[tuple[bytes, bytes, bytes]]:
    """One worker's share: (key, value, message type) of ``count`` events with its own seed."""
    seed, count = share
    serde = serde_for(Settings())
    return [
        (e.correlation_id.encode(), serde.encode(e), e.message_type.encode())
        for e in mixed_events(count, _START, seed=seed, spacing_ms=5)
    ]


def produce(bootstrap: str, topic: str, events: int, workers: int = 2) -> float:
    started = time.perf_counter()
    shares = [(seed, events // workers + (seed < events % workers)) for seed in range(workers)]
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"}
    )
    with Pool(workers) as pool:
        for share in pool.imap_unordered(_encoded, shares):
            for key, value, kind in share:
                while True:
                    try:
                        producer.produce(topic, value, key, headers=[("message_type", kind)])
                        break
                    except BufferError:
                        producer.poll(0.05)
    if producer.flush(60) != 0:
        raise RuntimeError("produce did not finish")
    return time.perf_counter() - started


def component_costs(serde: AvroSerde, data_dir: Path, events: int = 50_000) -> dict[str, float]:
    """Microseconds per event of each step, alone, on one thread."""
    sample = mixed_events(events, _START, seed=99)
    encoded = [serde.encode(e) for e in sample]
    started = time.perf_counter()
    decoded = [serde.decode_wire(value) for value in encoded]
    decode = time.perf_counter() - started
    started = time.perf_counter()
    lines = [event_row(e)[:-1] + ',"batch_id":1}' for e in decoded]
    rows = time.perf_counter() - started
    store = ChdbStore(data_dir)
    try:
        migrate(store, "components", 30)
        started = time.perf_counter()
        for i in range(0, len(lines), 10_000):
            store.insert("components.events", "\n".join(lines[i : i + 10_000]), INSERT_SETTINGS)
        insert = time.perf_counter() - started
    finally:
        store.close()
    return {
        "avro decode (streams serde, wire values)": decode / events * 1e6,
        "row JSON": rows / events * 1e6,
        "insert + views (chDB, 10k rows/insert)": insert / events * 1e6,
    }


def live(
    bootstrap: str, topics_prefix: str, events: int, data_dir: Path
) -> tuple[float, float, float]:
    """Seconds until every event is queryable, from the projector's start and from its first
    inserted row (the second excludes the consumer group join), and the CPU seconds used."""
    settings = Settings(kafka_bootstrap_servers=bootstrap, topic_prefix=topics_prefix)
    catalog = load_topic_catalog(prefix=topics_prefix)
    store = ChdbStore(data_dir)
    projection = ProjectionSettings(data_dir=data_dir, group_id=f"bench-{uuid.uuid4().hex[:6]}")
    migrate(store, projection.database, projection.events_ttl_days)
    projector = Projector(store, serde_for(settings), catalog, bootstrap, projection)
    reader = store.reader(projection.database)
    started, cpu_started = time.perf_counter(), time.process_time()
    thread = threading.Thread(target=projector.run)
    thread.start()
    first = None
    try:
        while True:
            count = int(reader.query("SELECT count() FROM events", "CSV"))
            if count and first is None:
                first = time.perf_counter()
            if count >= events:
                break
            time.sleep(0.05)  # poll interval of the measurement, not synchronisation
        done, cpu = time.perf_counter(), time.process_time() - cpu_started
    finally:
        projector.stop()
        thread.join()
        store.close()
    return done - started, done - (first or started), cpu


def replay(bootstrap: str, topics_prefix: str, data_dir: Path) -> tuple[dict[str, object], float]:
    """The replay's result and the CPU seconds it used."""
    settings = Settings(kafka_bootstrap_servers=bootstrap, topic_prefix=topics_prefix)
    serde = serde_for(settings)
    catalog = load_topic_catalog(prefix=topics_prefix)
    store = ChdbStore(data_dir)
    try:
        rebuild = Replay(store, serde, bootstrap, catalog.event_topics(), "platform")
        cpu_started = time.process_time()
        result = rebuild.run(ReplayRequest(), lambda line: print("   ", line, flush=True))
        return result, time.process_time() - cpu_started
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with ExitStack() as stack:
        configured = Settings.from_env().kafka_bootstrap_servers
        bootstrap = configured or stack.enter_context(LocalKafka()).bootstrap_servers
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="projector-bench-")))
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        catalog = load_topic_catalog(prefix=prefix)
        ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), catalog)
        topic = catalog.topic_for("llm.request.completed")

        print("per-event cost of each step alone (one thread):")
        for step, micros in component_costs(serde_for(Settings()), work / "components").items():
            print(f"  {step}: {micros:.1f} us")
        seconds = produce(bootstrap, topic, args.events)
        print(f"produced {args.events:,} events in {seconds:.1f} s (2 encoding processes)")

        total, steady, cpu = live(bootstrap, prefix, args.events, work / "chdb")
        print(
            f"live projector: {args.events:,} events queryable in {total:.1f} s "
            f"({args.events / total:,.0f} events/s; {args.events / steady:,.0f} events/s "
            f"from the first inserted row); {_cpu(cpu, args.events)}"
        )
        result, cpu = replay(bootstrap, prefix, work / "chdb")
        print(
            f"replay (every table, from the topics): {result['messages']:,} events "
            f"in {result['seconds']} s; {_cpu(cpu, args.events)}"
        )


def _cpu(seconds: float, events: int) -> str:
    return f"CPU {seconds:.1f} s ({seconds / events * 1e6:.1f} us/event)"


if __name__ == "__main__":
    main()
