"""The projections as the API reads them: the ``events`` table over ClickHouse's HTTP interface
(a ClickHouse server at ``CLICKHOUSE_URL``, or the embedded query endpoint that mimics it).
Plain HTTP, so the API needs no ClickHouse driver and never imports the projections layer.

Every query is scoped to one tenant. Values are inlined as literals only after validation at
the edge (ids match ``[A-Za-z0-9_.:-]``) and escaping here, so nothing a client sends is ever
interpreted as SQL."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

__all__ = ["EventHistory", "ProjectionsUnavailable"]

_COLUMNS = (
    "event_id, event_type, schema_version, timestamp, layer, service_name, env, trace_id, "
    "span_id, correlation_id, tenant_id, causation_id, payload"
)


class ProjectionsUnavailable(RuntimeError):
    """ClickHouse did not answer, or answered with an error."""


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _timestamp(value: str) -> str:
    """ClickHouse's ``2026-11-26 10:14:37.123456`` as the envelope JSON's ISO 8601 form."""
    return datetime.fromisoformat(value.replace(" ", "T")).replace(tzinfo=UTC).isoformat()


def _event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "timestamp": _timestamp(str(row["timestamp"])),
        "schema_version": int(row["schema_version"]),
        "layer": int(row["layer"]),
        "payload": json.loads(row["payload"]),
    }


class EventHistory:
    def __init__(self, base_url: str, database: str, timeout_s: float = 5.0) -> None:
        self._database = database
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def ping(self) -> None:
        await self._query("SELECT 1")

    async def run_events(
        self, tenant: str, correlation_id: str, limit: int
    ) -> list[dict[str, Any]]:
        """One run's events, oldest first (a run's events are stamped in order by one writer)."""
        return await self._events(tenant, [correlation_id], None, limit)

    async def events_since(
        self, tenant: str, correlation_ids: Iterable[str] | None, since: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """The tenant's events (of ``correlation_ids`` if given) stamped at or after ``since``."""
        return await self._events(tenant, correlation_ids, since, limit)

    async def _events(
        self,
        tenant: str,
        correlation_ids: Iterable[str] | None,
        since: datetime | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        where = [f"tenant_id = {_literal(tenant)}"]
        if correlation_ids is not None:
            where.append(f"correlation_id IN ({', '.join(map(_literal, correlation_ids))})")
        if since is not None:
            micros = int(since.timestamp() * 1_000_000)
            where.append(f"timestamp >= fromUnixTimestamp64Micro({micros}, 'UTC')")
        # Every value was validated at the edge and went through _literal.
        sql = (
            f"SELECT {_COLUMNS} FROM {self._database}.events FINAL "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY timestamp, event_id LIMIT {int(limit)}"
        )
        return [_event(row) for row in await self._query(sql)]

    async def _query(self, sql: str) -> list[dict[str, Any]]:
        try:
            response = await self._client.get("/", params={"query": f"{sql} FORMAT JSONEachRow"})
        except httpx.HTTPError as error:
            raise ProjectionsUnavailable(f"{type(error).__name__}: {error}") from error
        if response.status_code != 200:
            raise ProjectionsUnavailable(f"HTTP {response.status_code}: {response.text[:300]}")
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]
