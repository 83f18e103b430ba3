"""The analytics read model: SQL over the projections' ``metrics_minute`` rollup (and ``events``
for guardrail rules), always scoped to one tenant and one time window, and the pure shaping of
the rows that come back (zero-filled buckets, ratios, dollars).

Windows are half-open ``[start, end)``, aligned down to the interval, in UTC. Only validated
values reach the SQL: the tenant and filters go through ``sql_literal``, times as integers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from streams.projections_client import sql_literal

__all__ = [
    "MAX_BUCKETS",
    "Interval",
    "Window",
    "cache_point",
    "cost_group",
    "error_point",
    "filled",
    "guardrail_rules_sql",
    "latency_point",
    "metrics_sql",
    "ratio",
]

MAX_BUCKETS = 2000
# What ClickHouse's DateTime holds.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2106, 1, 1, tzinfo=UTC)
_NANO = 1e9


class Interval(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def step(self) -> timedelta:
        return {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}.get(
            self.value, timedelta(days=1)
        )


@dataclass(frozen=True)
class Window:
    """``[start, end)`` with ``start`` aligned down to ``interval``."""

    start: datetime
    end: datetime
    interval: Interval

    @classmethod
    def of(
        cls, start: datetime | None, end: datetime | None, interval: Interval, series: bool = True
    ) -> Window:
        """The window a request asks for: by default the last 24 hours. Raises ``ValueError``
        (a client mistake) for an empty window, or a ``series`` of more than ``MAX_BUCKETS``."""
        end = _utc(end) if end is not None else datetime.now(UTC)
        bounds = f"times must lie between {_EARLIEST:%Y-%m-%d} and {_LATEST:%Y-%m-%d}"
        if not _EARLIEST < end <= _LATEST:  # checked first: a day before year 1 overflows
            raise ValueError(bounds)
        start = _utc(start) if start is not None else end - timedelta(days=1)
        if start < _EARLIEST:
            raise ValueError(bounds)
        step = int(interval.step.total_seconds())
        aligned = datetime.fromtimestamp(int(start.timestamp()) // step * step, UTC)
        if end <= aligned:
            raise ValueError("end must be after start")
        buckets = math.ceil((end - aligned) / interval.step)
        if series and buckets > MAX_BUCKETS:
            raise ValueError(
                f"{buckets} {interval.value} buckets asked for, at most {MAX_BUCKETS}: "
                "narrow the window or widen the interval"
            )
        return cls(aligned, end, interval)

    def buckets(self) -> list[datetime]:
        count = math.ceil((self.end - self.start) / self.interval.step)
        return [self.start + index * self.interval.step for index in range(count)]

    def condition(self, column: str) -> str:
        return (
            f"{column} >= toDateTime({int(self.start.timestamp())}, 'UTC') "
            f"AND {column} < toDateTime64({self.end.timestamp():.6f}, 6, 'UTC')"
        )


def _utc(moment: datetime) -> datetime:
    """A client's time without an offset is read as UTC."""
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError as error:  # an offset that pushes it past year 1 or 9999
        raise ValueError(f"{moment.isoformat()} is out of range") from error


_METRICS = {
    "requests": "sum(requests)",
    "errors": "sum(errors)",
    "errors_by_code": "sumMap(errors_by_code)",
    "latency_ms": "quantilesExactMerge(0.5, 0.95, 0.99)(latency_ms)",
    "prompt_tokens": "sum(prompt_tokens)",
    "completion_tokens": "sum(completion_tokens)",
    "cost_nanousd": "sum(cost_nanousd)",
    "saved_cost_nanousd": "sum(saved_cost_nanousd)",
    "cache_hits": "sum(cache_hits)",
    "fallbacks": "sum(fallbacks)",
    "attempt_failures": "sum(attempt_failures)",
    "budget_rejections": "sum(budget_rejections)",
}


def metrics_sql(
    database: str,
    tenant: str,
    window: Window,
    group_by: Iterable[str] = ("bucket",),
    provider: str | None = None,
    model: str | None = None,
) -> str:
    """Every rollup of the tenant's minutes in ``window``, grouped by any of ``bucket`` (the
    start of the interval, as Unix seconds), ``provider`` and ``model``."""
    keys = list(group_by)
    where = [f"tenant_id = {sql_literal(tenant)}", window.condition("minute")]
    if provider is not None:
        where.append(f"provider = {sql_literal(provider)}")
    if model is not None:
        where.append(f"model = {sql_literal(model)}")
    bucket = {
        Interval.MINUTE: "minute",
        Interval.HOUR: "toStartOfHour(minute)",
        Interval.DAY: "toStartOfDay(minute)",
    }[window.interval]
    columns = [f"toUnixTimestamp({bucket}) AS bucket" if key == "bucket" else key for key in keys]
    columns += [f"{aggregate} AS {name}" for name, aggregate in _METRICS.items()]
    grouping = f" GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}" if keys else ""
    return (
        f"SELECT {', '.join(columns)} FROM {database}.metrics_minute "  # noqa: S608 - see module doc
        f"WHERE {' AND '.join(where)}{grouping}"
    )


def guardrail_rules_sql(database: str, tenant: str, window: Window, limit: int) -> str:
    """The tenant's most violated guardrail rules in ``window``."""
    return (
        "SELECT JSONExtractString(payload, 'rule') AS rule, "  # noqa: S608 - see module doc
        "JSONExtractString(payload, 'stage') AS stage, "
        "JSONExtractString(payload, 'action') AS action, "
        "count() AS violations, uniqExact(correlation_id) AS runs "
        f"FROM {database}.events FINAL "
        f"WHERE tenant_id = {sql_literal(tenant)} "
        f"AND event_type = 'guardrail.violation.detected' AND {window.condition('timestamp')} "
        f"GROUP BY rule, stage, action ORDER BY violations DESC, rule, stage, action "
        f"LIMIT {int(limit)}"
    )


def filled(window: Window, rows: Iterable[Mapping[str, Any]]) -> list[tuple[datetime, Any]]:
    """Every bucket of ``window`` in order with its row, or an empty one where nothing happened,
    so a chart's x axis has no holes."""
    by_bucket = {int(row["bucket"]): row for row in rows}
    return [(at, by_bucket.get(int(at.timestamp()), {})) for at in window.buckets()]


def ratio(part: int, whole: int) -> float | None:
    """``part / whole``, or None where there was nothing to divide."""
    return round(part / whole, 6) if whole else None


def _int(row: Mapping[str, Any], column: str) -> int:
    return int(row.get(column, 0))  # ClickHouse quotes 64-bit integers in JSON


def _usd(row: Mapping[str, Any], column: str) -> float:
    return round(_int(row, column) / _NANO, 9)


def latency_point(row: Mapping[str, Any]) -> dict[str, Any]:
    """Percentiles of completed requests; None where none completed."""
    completed = _int(row, "requests") - _int(row, "errors")
    quantiles = [int(v) for v in row.get("latency_ms", [])] if completed else []
    p50, p95, p99 = quantiles if len(quantiles) == 3 else (None, None, None)
    return {"completed": completed, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def error_point(row: Mapping[str, Any]) -> dict[str, Any]:
    requests, errors, fallbacks = (_int(row, c) for c in ("requests", "errors", "fallbacks"))
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": ratio(errors, requests),
        "errors_by_code": {code: int(n) for code, n in row.get("errors_by_code", {}).items()},
        "fallbacks": fallbacks,
        "fallback_rate": ratio(fallbacks, requests),
        "attempt_failures": _int(row, "attempt_failures"),
        "budget_rejections": _int(row, "budget_rejections"),
    }


def cache_point(row: Mapping[str, Any]) -> dict[str, Any]:
    requests, hits = _int(row, "requests"), _int(row, "cache_hits")
    return {
        "requests": requests,
        "cache_hits": hits,
        "hit_ratio": ratio(hits, requests),
        "saved_cost_usd": _usd(row, "saved_cost_nanousd"),
    }


def cost_group(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "requests": _int(row, "requests"),
        "prompt_tokens": _int(row, "prompt_tokens"),
        "completion_tokens": _int(row, "completion_tokens"),
        "cost_usd": _usd(row, "cost_nanousd"),
        "saved_cost_usd": _usd(row, "saved_cost_nanousd"),
    }
