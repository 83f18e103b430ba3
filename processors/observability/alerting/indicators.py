"""A rule's indicator as SQL over ``metrics_minute`` (or ``eval_minute`` for eval pass rates:
bad and total events per group, one pair
per window, all windows ending at the evaluation time) and its rows read back (pure).

Every expression sums columns that are additive across unmerged parts, so no ``FINAL`` is
needed and the numbers do not depend on how inserts were batched."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from processors.observability.config import Indicator, Slo, ThresholdRule
from streams.errors import ErrorCode
from streams.projections_client import sql_literal

__all__ = ["CLIENT_CAUSED", "Counts", "Observation", "indicator_query", "observations"]

CLIENT_CAUSED = frozenset(
    {
        ErrorCode.GUARDRAIL_BLOCKED,
        ErrorCode.BUDGET_EXCEEDED,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.NO_ROUTE,
        ErrorCode.UNKNOWN_TENANT,
    }
)
"""Failures the caller caused: neither good nor bad for availability (a blocked prompt is the
platform doing its job)."""

_CLIENT_CODES = ", ".join(sql_literal(code.value) for code in sorted(CLIENT_CAUSED))
_CLIENT_FAILURES = (
    f"arraySum(mapValues(mapFilter((c, n) -> c IN ({_CLIENT_CODES}), errors_by_code)))"
)


def _bad_and_total(indicator: Indicator, threshold_ms: int | None) -> tuple[str, str]:
    if indicator == "eval_pass_rate":
        return "failed", "verdicts"
    if indicator == "availability":
        return f"errors - {_CLIENT_FAILURES}", f"requests - {_CLIENT_FAILURES}"
    if indicator == "latency":
        slow = f"arraySum(mapValues(mapFilter((b, n) -> b > {threshold_ms}, latency_buckets)))"
        return slow, "arraySum(mapValues(latency_buckets))"
    if indicator == "fallback_rate":
        return "fallbacks", "requests"
    if indicator == "guardrail_rate":
        return "guardrail_violations", "requests"
    return "attempt_failures_by_kind['timeout']", "requests"


@dataclass(frozen=True)
class Counts:
    bad: int
    total: int

    @property
    def ratio(self) -> float:
        return self.bad / self.total if self.total > 0 else 0.0


@dataclass(frozen=True)
class Observation:
    """One group's counts (``labels``: tenant and the grouped dimensions) by window length in
    minutes."""

    labels: Mapping[str, str]
    counts: Mapping[int, Counts]


def _minute_literal(moment: datetime) -> str:
    return f"toDateTime({sql_literal(moment.strftime('%Y-%m-%d %H:%M:%S'))}, 'UTC')"


def indicator_query(
    rule: Slo | ThresholdRule, windows: Iterable[int], now: datetime, database: str
) -> str:
    """One row per tenant (and grouped dimension) with ``bad_<w>`` and ``total_<w>`` for each
    window of ``w`` minutes: the minutes ``(now - w, now]``, the current one included."""
    bad, total = _bad_and_total(rule.indicator, rule.threshold_ms)
    table, only = "metrics_minute", ""
    if rule.indicator == "eval_pass_rate":
        table = "eval_minute"
        if rule.evaluators is not None:
            only = f" AND evaluator IN ({', '.join(sql_literal(e) for e in rule.evaluators)})"
    current = now.replace(second=0, microsecond=0)
    lengths = sorted(set(windows))
    sums = []
    for length in lengths:
        since = _minute_literal(current - timedelta(minutes=length - 1))
        sums.append(f"sumIf(bad, minute >= {since}) AS bad_{length}")
        sums.append(f"sumIf(total, minute >= {since}) AS total_{length}")
    groups = ", ".join(["tenant_id", *rule.group_by])
    tenants = (
        f" AND tenant_id IN ({', '.join(sql_literal(t) for t in rule.tenants)})"
        if rule.tenants is not None
        else ""
    )
    earliest = _minute_literal(current - timedelta(minutes=lengths[-1] - 1))
    return (
        f"SELECT {groups}, {', '.join(sums)} "  # noqa: S608 (literals escaped, names validated)
        f"FROM (SELECT minute, tenant_id, provider, model, toInt64({bad}) AS bad, "
        f"toInt64({total}) AS total FROM {database}.{table} "
        f"WHERE minute >= {earliest} AND minute <= {_minute_literal(current)}{tenants}{only}) "
        f"GROUP BY {groups} ORDER BY {groups}"
    )


def observations(
    rule: Slo | ThresholdRule, windows: Iterable[int], rows: Iterable[Mapping[str, Any]]
) -> list[Observation]:
    """The query's rows (64-bit sums arrive as strings) as observations."""
    lengths = sorted(set(windows))
    found = []
    for row in rows:
        labels = {"tenant": str(row["tenant_id"])}
        labels.update({dimension: str(row[dimension]) for dimension in rule.group_by})
        counts = {w: Counts(int(row[f"bad_{w}"]), int(row[f"total_{w}"])) for w in lengths}
        found.append(Observation(labels, counts))
    return found
