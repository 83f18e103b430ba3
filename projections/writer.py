"""Inserts groups of partition batches into an events table so that each ``event_id`` lands
once.

A chDB query costs tens of milliseconds of CPU whatever its size, so a cycle makes one
duplicate check for all its groups and one insert per group (``InsertGroup``). Per group: drop
the ids the table already holds for the group's runs (a run's duplicates always arrive on its
one partition, in order, so its earlier copies are already inserted), ignoring rows this very
group wrote in an earlier attempt (``batch_id``, the group's id); then insert with the group's
deduplication token. Every attempt computes the same rows and token, so a retry after a failed
or half-applied insert (events written, a materialized view not) completes exactly what is
missing: ClickHouse skips the blocks, per table and per view, that it already has."""

from __future__ import annotations

import logging
import threading
import time

from projections.batch import InsertGroup, PartitionBatch
from projections.metrics import (
    BATCH_SECONDS,
    DUPLICATES_DROPPED,
    INSERT_FAILURES,
    PROJECTION_LAG,
    PROJECTION_LAG_SECONDS,
    ROWS_INSERTED,
)
from projections.rows import INSERT_SETTINGS
from projections.store import ProjectionStore, StoreError, sql_string

__all__ = ["EventWriter", "WriteInterrupted"]

log = logging.getLogger("projections.writer")
# Runs per duplicate check: their keys stay well inside ClickHouse's max_query_size (256 KiB).
_RUNS_PER_QUERY = 1_000


class WriteInterrupted(RuntimeError):
    """Stopping was requested while the store kept failing; the batch is not durable."""


class EventWriter:
    """Writes into ``table`` (``database.events`` or a replay's shadow), retrying a failing
    store with exponential backoff until it succeeds or ``stopping`` is set."""

    def __init__(
        self,
        store: ProjectionStore,
        table: str,
        stopping: threading.Event,
        *,
        live: bool,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._store = store
        self._table = table
        self._label = table.rsplit(".", 1)[-1]
        self._stopping = stopping
        self._live = live
        self._max_backoff_s = max_backoff_s

    def write(self, groups: list[InsertGroup]) -> int:
        """Returns the number of rows sent (duplicates excluded; a retry after a half-applied
        attempt sends, and counts, the same rows again: ClickHouse keeps what it has)."""
        if not groups:
            return 0
        started = time.monotonic()
        delay = 0.1
        while True:
            try:
                inserted = self._write_once(groups)
                break
            except StoreError as exc:
                INSERT_FAILURES.labels(self._label).inc()
                log.warning("insert into %s failed, retrying in %.1fs: %s", self._table, delay, exc)
                if self._stopping.wait(delay):
                    tokens = ", ".join(group.token for group in groups)
                    raise WriteInterrupted(f"{tokens} not written") from exc
                delay = min(delay * 2, self._max_backoff_s)
        BATCH_SECONDS.labels(self._label).observe(time.monotonic() - started)
        total = sum(inserted.values())
        ROWS_INSERTED.labels(self._label).inc(total)
        DUPLICATES_DROPPED.labels(self._label).inc(
            sum(b.messages - b.poison for group in groups for b in group.batches) - total
        )
        if self._live:
            for group in groups:
                if inserted[group.group_id]:
                    for batch in group.batches:
                        self._observe_lag(batch)
        return total

    def _write_once(self, groups: list[InsertGroup]) -> dict[int, int]:
        holders = self._holders([b for group in groups for b in group.batches])
        inserted = {}
        for group in groups:
            own = {group.group_id}
            fresh = [
                row
                for batch in group.batches
                for row in batch.rows
                if not holders.get(row.event_id, set()) - own
            ]
            inserted[group.group_id] = len(fresh)
            if not fresh:
                continue
            suffix = f',"batch_id":{group.group_id}}}'
            lines = "\n".join(row.line[:-1] + suffix for row in fresh)
            self._store.insert(
                self._table, lines, {**INSERT_SETTINGS, "insert_deduplication_token": group.token}
            )
        return inserted

    def _holders(self, batches: list[PartitionBatch]) -> dict[str, set[int]]:
        """The inserts (``batch_id``) already holding each event id of these batches' runs."""
        runs = sorted({(row.tenant_id, row.correlation_id) for b in batches for row in b.rows})
        holders: dict[str, set[int]] = {}
        for first in range(0, len(runs), _RUNS_PER_QUERY):
            keys = ", ".join(
                f"({sql_string(t)}, {sql_string(c)})"
                for t, c in runs[first : first + _RUNS_PER_QUERY]
            )
            rows = self._store.rows(
                f"SELECT event_id, batch_id FROM {self._table} "  # noqa: S608
                f"WHERE (tenant_id, correlation_id) IN ({keys})"
            )
            for row in rows:
                holders.setdefault(str(row["event_id"]), set()).add(int(row["batch_id"]))
        return holders

    def _observe_lag(self, batch: PartitionBatch) -> None:
        now = time.time()
        newest = max(row.timestamp_micros for row in batch.rows) / 1e6
        oldest = min(row.timestamp_micros for row in batch.rows) / 1e6
        PROJECTION_LAG.labels(self._label).set(now - newest)
        PROJECTION_LAG_SECONDS.labels(self._label).observe(now - oldest)
