"""The run list's read model: one page of a tenant's LLM runs from the projections' ``runs_latest``,
newest first, with keyset pagination (a cursor names the last row seen, so page N costs what
page 1 does and runs arriving meanwhile never shift a page).

Only validated values reach the SQL: strings through ``sql_literal``, times as integers, the
cursor decoded and re-validated before use."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from api.history import iso_timestamp
from streams.projections_client import sql_literal

__all__ = ["RunFilter", "decode_cursor", "encode_cursor", "run_page_sql", "run_row"]

_LATEST_MICROS = 4_102_444_800_000_000  # 2100-01-01
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_COLUMNS = (
    "correlation_id, status, mode, provider, model, started_at, ended_at, latency_ms, "
    "prompt_tokens, completion_tokens, cost_usd, attempts, cache_hit, fallback_used, "
    "guardrail_blocked, guardrail_rules, error_code, "
    "toUnixTimestamp64Micro(started_at) AS started_micros"
)


# The columns a run's row in ``runs`` holds before its states are merged, as ``runs_latest``
# folds them: a page filtered on these alone is found from them, without merging every run.
_UNMERGED = {
    "correlation_id": "correlation_id",
    "mode": "max(mode)",
    "started_at": "min(started_at)",
    "cache_hit": "max(cache_hit)",
    "fallback_used": "max(fallback_used)",
    "guardrail_blocked": "max(guardrail_blocked)",
}
_MERGED = ("status", "provider", "model")


def _as_listed(column: str) -> str:
    return column


@dataclass(frozen=True)
class RunFilter:
    """What a client may narrow the list by; ``None`` leaves a field unfiltered."""

    status: Literal["running", "completed", "failed"] | None = None
    provider: str | None = None
    model: str | None = None
    mode: str | None = None
    cache_hit: bool | None = None
    fallback_used: bool | None = None
    guardrail_blocked: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    correlation_id_prefix: str | None = None

    @property
    def merged(self) -> bool:
        """Whether a filter needs the merged outcome or target (status, provider, model)."""
        return any(getattr(self, column) is not None for column in _MERGED)

    def conditions(self, column: Callable[[str], str] = _as_listed) -> list[str]:
        """The filters as SQL conditions, each column named by ``column``."""
        where = []
        for name in (*_MERGED, "mode"):
            value = getattr(self, name)
            if value is not None:
                where.append(f"{column(name)} = {sql_literal(value)}")
        for name in ("cache_hit", "fallback_used", "guardrail_blocked"):
            flag = getattr(self, name)
            if flag is not None:
                where.append(f"{column(name)} = {int(flag)}")
        if self.since is not None:
            where.append(f"{column('started_at')} >= {_micros_sql(_micros(self.since))}")
        if self.until is not None:
            where.append(f"{column('started_at')} < {_micros_sql(_micros(self.until))}")
        if self.correlation_id_prefix is not None:
            prefix = sql_literal(self.correlation_id_prefix)
            where.append(f"startsWith({column('correlation_id')}, {prefix})")
        return where


def run_page_sql(
    database: str, tenant: str, runs: RunFilter, after: tuple[int, str] | None, limit: int
) -> str:
    """``limit`` runs after the cursor ``after`` (start in Unix microseconds, correlation id),
    newest first. Only runs the foundation layer started (``mode`` set) are listed: alerts and
    judge calls have correlation ids of their own but are not runs.

    Without a filter on merged columns the page's correlation ids are first picked from the
    unmerged rows (start time and flags only), so only those runs' outcomes are merged: about
    five times faster than merging all of a tenant's runs to keep fifty."""
    tenant_is = f"tenant_id = {sql_literal(tenant)}"
    where = [tenant_is, *_page(runs, after, _as_listed)]
    if not runs.merged:
        unmerged = _UNMERGED.__getitem__
        picked = (
            f"SELECT correlation_id FROM {database}.runs WHERE {tenant_is} "  # noqa: S608
            f"GROUP BY correlation_id HAVING {' AND '.join(_page(runs, after, unmerged))} "
            f"ORDER BY min(started_at) DESC, correlation_id DESC LIMIT {int(limit)}"
        )
        where.append(f"correlation_id IN ({picked})")
    return (
        f"SELECT {_COLUMNS} FROM {database}.runs_latest "  # noqa: S608 - see module doc
        f"WHERE {' AND '.join(where)} "
        f"ORDER BY started_at DESC, correlation_id DESC LIMIT {int(limit)}"
    )


def _page(
    runs: RunFilter, after: tuple[int, str] | None, column: Callable[[str], str]
) -> list[str]:
    """A started run matching ``runs``, after the cursor, its columns named by ``column``."""
    where = [f"{column('mode')} != ''", *runs.conditions(column)]
    if after is not None:
        micros, correlation_id = after
        where.append(
            f"({column('started_at')}, {column('correlation_id')}) "
            f"< ({_micros_sql(micros)}, {sql_literal(correlation_id)})"
        )
    return where


def run_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the API returns it: ISO times, numbers as numbers, flags as booleans."""
    ended = row.get("ended_at")
    return {
        "correlation_id": row["correlation_id"],
        "status": row["status"],
        "mode": row["mode"],
        "provider": row["provider"] or None,
        "model": row["model"] or None,
        "started_at": iso_timestamp(str(row["started_at"])),
        "ended_at": iso_timestamp(str(ended)) if ended else None,
        "latency_ms": int(row["latency_ms"]) if row.get("latency_ms") is not None else None,
        "prompt_tokens": int(row["prompt_tokens"]),
        "completion_tokens": int(row["completion_tokens"]),
        "cost_usd": float(row["cost_usd"]),
        "attempts": int(row["attempts"]),
        "cache_hit": bool(int(row["cache_hit"])),
        "fallback_used": bool(int(row["fallback_used"])),
        "guardrail_blocked": bool(int(row["guardrail_blocked"])),
        "guardrail_rules": [rule for rule in row["guardrail_rules"] if rule],
        "error_code": row["error_code"] or None,
    }


def encode_cursor(row: dict[str, Any]) -> str:
    """The position after ``row`` (a raw row of ``run_page_sql``), opaque to clients."""
    position = json.dumps([int(row["started_micros"]), row["correlation_id"]])
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raises ``ValueError`` for anything ``encode_cursor`` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, correlation_id = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as error:
        raise ValueError("not a cursor this API returned") from error
    if not isinstance(micros, int) or not isinstance(correlation_id, str):
        raise ValueError("not a cursor this API returned")
    if not _ID.match(correlation_id) or not 0 <= micros <= _LATEST_MICROS:
        raise ValueError("not a cursor this API returned")
    return micros, correlation_id


def _micros(moment: datetime) -> int:
    """Clamped to what ClickHouse's DateTime64 holds: a bound outside it filters nothing more."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return max(0, min(int(aware.timestamp() * 1_000_000), _LATEST_MICROS))


def _micros_sql(micros: int) -> str:
    return f"fromUnixTimestamp64Micro(toInt64({int(micros)}), 'UTC')"
