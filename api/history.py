"""A tenant's events as the projections' ``events`` table holds them. Every query is scoped to
one tenant; ids were validated at the edge (``[A-Za-z0-9_.:-]``) before they are inlined."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from streams.projections_client import ProjectionsClient, sql_literal

__all__ = ["EventHistory", "iso_timestamp"]

_COLUMNS = (
    "event_id, event_type, schema_version, timestamp, layer, service_name, env, trace_id, "
    "span_id, correlation_id, tenant_id, causation_id, payload"
)


def iso_timestamp(value: str) -> str:
    """ClickHouse's ``2026-11-26 10:14:37.123456`` as the envelope JSON's ISO 8601 form."""
    return datetime.fromisoformat(value.replace(" ", "T")).replace(tzinfo=UTC).isoformat()


def _event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "timestamp": iso_timestamp(str(row["timestamp"])),
        "schema_version": int(row["schema_version"]),
        "layer": int(row["layer"]),
        "payload": json.loads(row["payload"]),
    }


class EventHistory:
    def __init__(self, projections: ProjectionsClient) -> None:
        self._projections = projections

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
        where = [f"tenant_id = {sql_literal(tenant)}"]
        if correlation_ids is not None:
            where.append(f"correlation_id IN ({', '.join(map(sql_literal, correlation_ids))})")
        if since is not None:
            micros = int(since.timestamp() * 1_000_000)
            where.append(f"timestamp >= fromUnixTimestamp64Micro({micros}, 'UTC')")
        # Every value was validated at the edge and went through sql_literal.
        sql = (
            f"SELECT {_COLUMNS} FROM {self._projections.database}.events FINAL "  # noqa: S608
            f"WHERE {' AND '.join(where)} ORDER BY timestamp, event_id LIMIT {int(limit)}"
        )
        return [_event(row) for row in await self._projections.rows(sql)]
