"""The projection a case ends with, read as the API reads it: plain SQL (no ``FINAL``) over the
projector's query endpoint. Read only once the projector has committed the end of every events
topic: it commits an offset after the insert returned, views included, so by then nothing the
topic holds is still on its way into the tables."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException

from projections import QueryClient, StoreError
from projections.store import sql_string
from streams.topics import TopicCatalog
from tests.integration.kafka_reading import committed_offsets, end_offsets

DATABASE = "platform"
_POLL_S = 0.2  # poll interval of the waits below, each bounded by its deadline


@dataclass(frozen=True)
class Projection:
    """What queries return: rows per ``event_id`` in ``events``, one ``(correlation_id,
    status, error_code)`` per ``runs_latest`` row, and ``sum(requests)`` of ``metrics_minute``
    (one per terminal event, if each was inserted once: a sum is not idempotent)."""

    event_rows: Counter[str]
    runs: list[tuple[str, str, str]]
    requests: int


class ProjectionEndpoint:
    """The projector's loopback SQL endpoint (ClickHouse's HTTP interface)."""

    def __init__(self, port: int) -> None:
        self._client = QueryClient(f"http://127.0.0.1:{port}", DATABASE)

    def wait_for_run(self, correlation_id: str, timeout_s: float) -> None:
        """Until the run shows as ended (the projector has started, joined its group and
        projected the run's terminal event)."""
        run = sql_string(correlation_id)
        sql = f"SELECT status FROM runs_latest WHERE correlation_id = {run}"  # noqa: S608

        def ended() -> bool:
            return self._client.query(sql, "TabSeparated").strip() not in (b"", b"running")

        _poll(ended, timeout_s, f"run {correlation_id} in the projection")

    def wait_caught_up(
        self, bootstrap: str, topics: TopicCatalog, group: str, timeout_s: float
    ) -> bool:
        """Until ``group`` has committed the end of every events topic (call once no
        processor writes any more); False if ``timeout_s`` passed first (the tally then shows
        what is missing)."""
        event_topic_names = topics.event_topics()

        def committed_to_end() -> bool:
            behind = written = 0
            for topic in event_topic_names:
                ends = {p: end for p, end in end_offsets(bootstrap, topic).items() if end > 0}
                written += len(ends)
                behind += committed_offsets(bootstrap, group, topic) != ends
            return written > 0 and behind == 0  # no end seen at all: metadata not there yet

        try:
            _poll(committed_to_end, timeout_s, "the projector to commit every event")
        except AssertionError:
            return False
        return True

    def read(self) -> Projection:
        events = self._client.rows("SELECT event_id, count() AS n FROM events GROUP BY event_id")
        runs = self._client.rows("SELECT correlation_id, status, error_code FROM runs_latest")
        (requests,) = self._client.rows("SELECT sum(requests) AS n FROM metrics_minute")
        return Projection(
            event_rows=Counter({row["event_id"]: int(row["n"]) for row in events}),
            runs=[(row["correlation_id"], row["status"], row["error_code"]) for row in runs],
            requests=int(requests["n"]),
        )

    def close(self) -> None:
        self._client.close()


def _poll(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """``condition`` until true; a store or broker error (a process still starting, a leader
    moving) counts as not yet, and the last one is reported if the deadline passes."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            if condition():
                return
        except (StoreError, KafkaException) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}: {last_error}")
        time.sleep(_POLL_S)
