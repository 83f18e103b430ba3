"""Prometheus metrics of the projector (consumption, lag and dead letters reuse streams.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SECONDS",
    "DUPLICATES_DROPPED",
    "INSERT_FAILURES",
    "PROJECTION_LAG",
    "PROJECTION_LAG_SECONDS",
    "ROWS_INSERTED",
]

_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

PROJECTION_LAG = Gauge(
    "platform_projection_lag_seconds",
    "Event timestamp to queryable, for the newest event of the last inserted batch",
    ["table"],
)
PROJECTION_LAG_SECONDS = Histogram(
    "platform_projection_batch_lag_seconds",
    "Event timestamp to queryable, for the oldest event of each inserted batch (worst case)",
    ["table"],
    buckets=_LAG_BUCKETS,
)
ROWS_INSERTED = Counter(
    "platform_projection_rows_inserted_total", "Event rows inserted into ClickHouse", ["table"]
)
DUPLICATES_DROPPED = Counter(
    "platform_projection_duplicates_dropped_total",
    "Events not inserted because their event_id was already in the batch or the table",
    ["table"],
)
INSERT_FAILURES = Counter(
    "platform_projection_insert_failures_total",
    "Failed insert attempts (each retry counts); the batch is retried, never skipped",
    ["table"],
)
BATCH_SECONDS = Histogram(
    "platform_projection_batch_seconds",
    "Duplicate check and insert of one batch, retries included",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
