"""The projection tables on the real engine, without Kafka: migrations, order-independent and
idempotent run state and metrics, and the writer's exactly-once inserts."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.run_view import RunSummary
from bench.projector_workload import mixed_events
from projections import MigrationError, table_digests
from projections.batch import InsertGroup
from projections.migrator import load_migrations, migrate
from projections.rows import INSERT_SETTINGS
from projections.writer import EventWriter
from streams.envelope import Envelope, envelope_json
from tests.integration.test_projections_support import (
    START,
    ProjectionDb,
    batch_of,
    projection_db,
    write,
)


def rows(db: ProjectionDb, sql: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in db.reader.query(sql, "JSONEachRow").decode().splitlines()]


def test_migrations_apply_once_and_refuse_an_edited_file(tmp_path: Path) -> None:
    with projection_db(tmp_path) as db:
        assert migrate(db.store, db.database, 30) == []
        tables = {
            r["name"]
            for r in rows(db, "SELECT name FROM system.tables WHERE database = currentDatabase()")
        }
        assert {
            "events",
            "runs",
            "runs_latest",
            "metrics_minute",
            "eval_results",
            "alerts",
        } <= tables
        edited = [
            m if m.version != 2 else type(m)(m.version, m.name, m.template + "\n-- edited\n")
            for m in load_migrations()
        ]
        with pytest.raises(MigrationError, match="0002_runs changed"):
            migrate(db.store, db.database, 30, edited)


def test_events_ttl_follows_the_setting(tmp_path: Path) -> None:
    with projection_db(tmp_path) as db:
        migrate(db.store, db.database, 7)
        (table,) = rows(
            db,
            "SELECT engine_full FROM system.tables "
            "WHERE database = currentDatabase() AND name = 'events'",
        )
        assert "toIntervalDay(7)" in str(table["engine_full"])


def test_any_order_duplicates_and_late_events_give_the_same_tables(tmp_path: Path) -> None:
    """Runs never regress: terminal events written before a run's start, events repeated in
    later batches, any batching: identical finalized tables."""
    events = mixed_events(3000, START, seed=3)
    shuffled = list(events)
    random.Random(5).shuffle(shuffled)
    repeated = shuffled + list(reversed(events))  # every event twice, the copies much later
    with projection_db(tmp_path) as db:
        write(db, events, batch_size=500)
        backwards = db.sibling("backwards")
        write(backwards, list(reversed(events)), batch_size=300)
        twice = db.sibling("twice")
        write(twice, repeated, batch_size=700)
        reference = table_digests(db.reader, db.database)
        assert table_digests(backwards.reader, backwards.database) == reference
        assert table_digests(twice.reader, twice.database) == reference
        assert twice.count() == len(events)

        completed = next(e for e in reversed(events) if e.message_type == "llm.request.completed")
        (run,) = rows(
            backwards,
            "SELECT status, latency_ms, provider, cost_usd FROM runs_latest "  # noqa: S608
            f"WHERE correlation_id = '{completed.correlation_id}'",
        )
        assert run["status"] == "completed"
        assert run["latency_ms"] == completed.payload["latency_ms"]
        assert run["provider"] == completed.payload["provider"]
        assert run["cost_usd"] == pytest.approx(completed.payload["cost_usd"], abs=1e-9)

        db.store.command(f"OPTIMIZE TABLE {db.database}.runs FINAL")
        db.store.command(f"OPTIMIZE TABLE {db.database}.metrics_minute FINAL")
        assert table_digests(db.reader, db.database) == reference


def test_run_state_is_idempotent_even_without_deduplication(tmp_path: Path) -> None:
    """The same rows inserted twice past the writer (no duplicate check, no token): runs stay
    identical by construction; the metric sums double, which is why the writer drops
    duplicates (ReplacingMergeTree may even merge the raw rows away, the views saw them)."""
    events = mixed_events(2000, START, seed=4)
    rows_of = batch_of(events, 0).rows
    lines, again = ("\n".join(r.line[:-1] + f',"batch_id":{n}}}' for r in rows_of) for n in (1, 2))
    with projection_db(tmp_path) as db:
        once = db.sibling("once")
        table = f"{db.database}.events"
        db.store.insert(table, lines, INSERT_SETTINGS)
        db.store.insert(table, again, INSERT_SETTINGS)
        once.store.insert(f"{once.database}.events", lines, INSERT_SETTINGS)
        twice, single = (
            table_digests(db.reader, db.database),
            table_digests(once.reader, once.database),
        )
        assert twice["runs"] == single["runs"]
        assert twice["metrics_minute"] != single["metrics_minute"]


def test_retry_after_a_half_applied_insert_completes_only_what_is_missing(tmp_path: Path) -> None:
    """The insert reached ``events`` and the metrics view but not the runs view (the engine
    writes the source part before the views finish). Retrying the same batch fills ``runs``
    and doubles nothing."""
    events = mixed_events(3000, START, seed=6)
    with projection_db(tmp_path) as db:
        clean = db.sibling("clean")
        write(clean, events, batch_size=1000)
        writer = EventWriter(db.store, f"{db.database}.events", threading.Event(), live=False)
        batch = batch_of(events, 0)
        db.store.command(f"DETACH TABLE {db.database}.runs_mv")
        writer.write([InsertGroup.of([batch])])
        db.store.command(f"ATTACH TABLE {db.database}.runs_mv")
        assert db.count() == len(batch.rows)
        assert rows(db, "SELECT count() AS n FROM runs") == [{"n": 0}]

        # the same rows and token again
        assert writer.write([InsertGroup.of([batch])]) == len(batch.rows)
        assert table_digests(db.reader, db.database) == table_digests(clean.reader, clean.database)
        later = InsertGroup.of([batch_of(events, 5000)])
        assert writer.write([later]) == 0  # a later redelivery: all duplicates


def test_a_cycles_batches_go_in_one_insert_that_a_retry_completes_exactly(tmp_path: Path) -> None:
    """A cycle's batches (one per partition) are one insert. Half-applied (the runs view
    missed it), the same group again fills only what is missing; a later redelivery is all
    duplicates, grouped as before or each partition on its own (a rebalance split them)."""
    events = mixed_events(2000, START, seed=7)
    by_partition: list[list[Envelope]] = [[], []]
    for event in events:
        by_partition[zlib.crc32(event.correlation_id.encode()) % 2].append(event)
    with projection_db(tmp_path) as db:
        clean = db.sibling("clean")
        write(clean, events, batch_size=len(events))
        writer = EventWriter(db.store, f"{db.database}.events", threading.Event(), live=False)
        first, second = (batch_of(part, 0, partition=p) for p, part in enumerate(by_partition))
        cycle = InsertGroup.of([second, first])
        assert cycle == InsertGroup.of([first, second])  # members in partition order
        db.store.command(f"DETACH TABLE {db.database}.runs_mv")
        writer.write([cycle])
        db.store.command(f"ATTACH TABLE {db.database}.runs_mv")
        assert writer.write([cycle]) == len(first.rows) + len(second.rows)
        assert table_digests(db.reader, db.database) == table_digests(clean.reader, clean.database)
        later = [batch_of(part, 5000, partition=p) for p, part in enumerate(by_partition)]
        assert writer.write([InsertGroup.of(later)]) == 0
        assert writer.write([InsertGroup.of([b]) for b in later]) == 0


def test_the_api_fold_and_the_runs_projection_agree_on_every_run(tmp_path: Path) -> None:
    """One rule for run state: the API's fold over events in any order, duplicates included,
    gives what ``runs_latest`` gives for the same events."""
    events = mixed_events(2500, START, seed=11)
    events += _runs_the_workload_lacks(events)
    by_run: dict[str, list[dict[str, Any]]] = {}
    for envelope in events:
        by_run.setdefault(envelope.correlation_id, []).append(envelope_json(envelope))
    with projection_db(tmp_path) as db:
        write(db, events, batch_size=800)
        projected = {
            r["correlation_id"]: r
            for r in rows(
                db,
                "SELECT correlation_id, status, provider, model, attempts, cache_hit, "
                "fallback_used, latency_ms, cost_usd, saved_cost_usd, prompt_tokens, error_code, "
                "started_at, ended_at FROM runs_latest",
            )
        }
    assert projected.keys() == by_run.keys()
    shuffler = random.Random(2)
    for correlation_id, run_events in by_run.items():
        scrambled = run_events + run_events[: len(run_events) // 2]
        shuffler.shuffle(scrambled)
        folded = RunSummary.of(scrambled)
        assert folded is not None
        assert folded.state() == RunSummary.of(run_events).state()  # type: ignore[union-attr]
        row = projected[correlation_id]
        usage = folded.usage or {}
        error = folded.error or {}
        assert {
            "status": folded.status,
            "provider": folded.provider or "",
            "model": folded.model or "",
            "attempts": folded.attempts,
            "cache_hit": int(folded.cache_hit),
            "fallback_used": int(folded.fallback_used),
            "latency_ms": folded.latency_ms,
            "cost_usd": pytest.approx(folded.cost_usd, abs=1e-9),
            "saved_cost_usd": pytest.approx(folded.saved_cost_usd, abs=1e-9),
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "error_code": error.get("error_code", ""),
            "started_at": _instant(folded.started_at),
            "ended_at": _instant(folded.ended_at),
        } == {k: v for k, v in row.items() if k != "correlation_id"} | {
            "started_at": _instant(row["started_at"]),
            "ended_at": _instant(row["ended_at"]),
        }, correlation_id


def _instant(text: object) -> datetime | None:
    """ClickHouse's ``2026-01-01 10:00:00.123456`` and ISO text with an offset, comparable."""
    if text is None:
        return None
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _runs_the_workload_lacks(events: list[Envelope]) -> list[Envelope]:
    """A completed run that also got an earlier failure (logged after it), and a run that
    failed naming no target after its router had chosen one."""
    completed = next(e for e in events if e.message_type == "llm.request.completed")
    failure = next(
        e for e in events if e.message_type == "llm.request.failed" and e.payload["provider"]
    )
    earlier_failure = dataclasses.replace(
        failure,
        message_id=str(uuid.uuid4()),
        correlation_id=completed.correlation_id,
        tenant_id=completed.tenant_id,
        timestamp=completed.timestamp - timedelta(milliseconds=1),
    )
    untargeted = dataclasses.replace(
        failure,
        message_id=str(uuid.uuid4()),
        timestamp=failure.timestamp + timedelta(milliseconds=1),
        payload={**failure.payload, "provider": None, "model": None},
    )
    return [earlier_failure, untargeted]
