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

    def conditions(self) -> list[str]:
        where = []
        for column in ("status", "provider", "model", "mode"):
            value = getattr(self, column)
            if value is not None:
                where.append(f"{column} = {sql_literal(value)}")
        for column in ("cache_hit", "fallback_used", "guardrail_blocked"):
            flag = getattr(self, column)
            if flag is not None:
                where.append(f"{column} = {int(flag)}")
        if self.since is not None:
            where.append(f"started_at >= {_micros_sql(_micros(self.since))}")
        if self.until is not None:
            where.append(f"started_at < {_micros_sql(_micros(self.until))}")
        if self.correlation_id_prefix is not None:
            where.append(f"startsWith(correlation_id, {sql_literal(self.correlation_id_prefix)})")
        return where


def run_page_sql(
    database: str, tenant: str, runs: RunFilter, after: tuple[int, str] | None, limit: int
) -> str:
    """``limit`` runs after the cursor ``after`` (start in Unix microseconds, correlation id),
    newest first. Only runs the foundation layer started (``mode`` set) are listed: alerts and
    judge calls have correlation ids of their own but are not runs."""
    where = [f"tenant_id = {sql_literal(tenant)}", "mode != ''", *runs.conditions()]
    if after is not None:
        micros, correlation_id = after
        where.append(
            f"(started_at, correlation_id) < ({_micros_sql(micros)}, {sql_literal(correlation_id)})"
        )
    return (
        f"SELECT {_COLUMNS} FROM {database}.runs_latest "  # noqa: S608 - see module doc
        f"WHERE {' AND '.join(where)} "
        f"ORDER BY started_at DESC, correlation_id DESC LIMIT {int(limit)}"
    )


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
