"""Rebuild projections from the topics into shadow tables, then swap them in.

1. Shadows of the requested tables (``shadow.py``); with ``from_timestamp``, the live events
   older than it are copied into the shadow first and the topics are read from the offsets for
   that time (less a margin: the Kafka timestamp of a message is taken after its envelope's).
2. A fresh consumer reads every ``events.*`` partition up to the end offsets seen at the start,
   through the same decode and exactly-once insert as the live projector.
3. Catch up with the live projector (when it runs in this process): read up to what it has
   inserted, first without blocking it, then once more while its writes are paused, and swap
   (``EXCHANGE TABLES``) before releasing it. Readers see the old table, then the new one,
   never a half-built one.
4. Drop the old tables and the shadow views.

A replay that fails or is interrupted leaves the live tables untouched; the next one drops the
leftover shadows first."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from confluent_kafka import Message

from projections.batch import InsertGroup, PartitionBatch, decode_batch
from projections.log_reader import LogReader
from projections.shadow import SHADOW_SUFFIX, SOURCE, Shadows
from projections.store import ProjectionStore
from projections.writer import EventWriter
from streams.offsets import PartitionKey
from streams.serde import AvroSerde

__all__ = ["LiveWrites", "Replay", "ReplayAborted", "ReplayRequest", "parse_timestamp"]

log = logging.getLogger("projections.replay")
Progress = Callable[[str], None]
KAFKA_TIMESTAMP_MARGIN = timedelta(minutes=1)
_CATCH_UP_ROUNDS = 3


class LiveWrites(Protocol):
    def writes_paused(self) -> AbstractContextManager[dict[PartitionKey, int]]:
        """Pause live inserts; yields the offset each partition is inserted up to."""
        ...


class _NoLiveWriter:
    """A replay in a process of its own: no live writer here to wait for."""

    @contextmanager
    def writes_paused(self) -> Iterator[dict[PartitionKey, int]]:
        yield {}


class ReplayAborted(RuntimeError):
    """Stopping was requested; the live tables were not touched."""


@dataclass(frozen=True)
class ReplayRequest:
    tables: tuple[str, ...] = ()
    from_timestamp: datetime | None = None


def parse_timestamp(text: str) -> datetime:
    """ISO 8601; without an offset it is UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Replay:
    def __init__(
        self,
        store: ProjectionStore,
        serde: AvroSerde,
        bootstrap_servers: str,
        topics: list[str],
        database: str,
        *,
        live: LiveWrites | None = None,
        stopping: threading.Event | None = None,
        batch_size: int = 60_000,
        progress_every_s: float = 1.0,
    ) -> None:
        self._store = store
        self._serde = serde
        self._bootstrap = bootstrap_servers
        self._topics = topics
        self._database = database
        self._live = live or _NoLiveWriter()
        self._stopping = stopping or threading.Event()
        self._batch_size = batch_size
        self._progress_every_s = progress_every_s
        self._skipped = 0

    def run(self, request: ReplayRequest, progress: Progress) -> dict[str, Any]:
        shadows = Shadows(self._store, self._database)
        tables = shadows.plan(request.tables)
        started = time.monotonic()
        progress(f"replay: rebuilding {', '.join(tables)}")
        shadows.create(tables)
        try:
            since = request.from_timestamp
            if since is not None:
                shadows.seed_before(since)
                since -= KAFKA_TIMESTAMP_MARGIN
            reader = LogReader(self._bootstrap, self._topics, since)
            try:
                inserted = self._rebuild(reader, progress, started)
                inserted += self._catch_up_and_swap(reader, shadows, tables)
            finally:
                reader.close()
        finally:
            shadows.drop()
        seconds = time.monotonic() - started
        result = {
            "tables": tables,
            "messages": reader.done_count,
            "rows_inserted": inserted,
            "undecodable_skipped": self._skipped,
            "seconds": round(seconds, 2),
        }
        progress(f"replay done: {_summary(reader.done_count, reader.total, started)}")
        return result

    def _rebuild(self, reader: LogReader, progress: Progress, started: float) -> int:
        """Read to the targets, decoding the next batches while the previous ones insert."""
        writer = EventWriter(
            self._store, f"{self._database}.{SOURCE}{SHADOW_SUFFIX}", self._stopping, live=False
        )
        inserted = 0
        last_report = started
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-insert") as pool:
            in_flight: Future[int] | None = None
            while not reader.finished():
                if self._stopping.is_set():
                    raise ReplayAborted("stopping")
                batches = self._decode(reader.read(self._batch_size, 0.5))
                if in_flight is not None:
                    inserted += in_flight.result()
                in_flight = pool.submit(writer.write, InsertGroup.split(batches))
                if time.monotonic() - last_report >= self._progress_every_s:
                    last_report = time.monotonic()
                    progress(f"replay: {_summary(reader.done_count, reader.total, started)}")
            if in_flight is not None:
                inserted += in_flight.result()
        return inserted

    def _catch_up_and_swap(self, reader: LogReader, shadows: Shadows, tables: list[str]) -> int:
        inserted = 0
        for _ in range(_CATCH_UP_ROUNDS):
            with self._live.writes_paused() as positions:
                pass
            reader.raise_targets(positions)
            if reader.finished():
                break
            inserted += self._rebuild(reader, _quiet, time.monotonic())
        with self._live.writes_paused() as positions:
            reader.raise_targets(positions)
            inserted += self._rebuild(reader, _quiet, time.monotonic())
            shadows.swap(tables)
        log.info("swapped %s", tables)
        return inserted

    def _decode(self, messages: list[Message]) -> list[PartitionBatch]:
        runs: dict[PartitionKey, list[Message]] = {}
        for message in messages:
            runs.setdefault((str(message.topic()), int(message.partition() or 0)), []).append(
                message
            )
        return [decode_batch(run, self._serde, self._skip) for run in runs.values()]

    def _skip(self, message: Message, error: str) -> None:
        """Poison was dead-lettered when the live projector met it; a replay skips it."""
        self._skipped += 1


def _quiet(line: str) -> None:
    return None


def _summary(done: int, total: int, started: float) -> str:
    elapsed = max(time.monotonic() - started, 1e-9)
    rate = done / elapsed
    eta = (total - done) / rate if rate > 0 else 0.0
    share = 100.0 * done / total if total else 100.0
    return (
        f"{done:,}/{total:,} messages ({share:.1f}%), {rate:,.0f} msg/s, "
        f"elapsed {elapsed:.1f} s, ETA {eta:.0f} s"
    )
