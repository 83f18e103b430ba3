"""The projections as readers outside the projector (the API, the alerter) reach them:
ClickHouse's HTTP interface (a ClickHouse server at ``CLICKHOUSE_URL``, or the projector's
embedded query endpoint that mimics it). Plain HTTP, so readers need no ClickHouse driver and
never import the projections layer.

Queries go as ``GET``, which ClickHouse runs read-only. Values are inlined as literals only
after validation at the edge and escaping here, so nothing a client sends is ever interpreted
as SQL."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "ProjectionsClient",
    "ProjectionsUnavailable",
    "projections_database",
    "projections_url",
    "sql_literal",
]

_EMBEDDED_QUERY_URL = "http://127.0.0.1:8124"


def projections_url(environ: Mapping[str, str] = os.environ) -> str:
    """``CLICKHOUSE_URL`` when set, else the projector's embedded query endpoint."""
    return (
        environ.get("CLICKHOUSE_URL") or environ.get("PROJECTIONS_QUERY_URL") or _EMBEDDED_QUERY_URL
    )


def projections_database(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("PROJECTIONS_DATABASE") or "platform"


class ProjectionsUnavailable(RuntimeError):
    """ClickHouse did not answer, or answered with an error."""


def sql_literal(value: str) -> str:
    """A ClickHouse string literal holding exactly ``value``."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ProjectionsClient:
    def __init__(self, base_url: str, database: str, timeout_s: float = 5.0) -> None:
        self.database = database
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def ping(self) -> None:
        await self.rows("SELECT 1")

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        """The result as one dict per row (64-bit integers arrive as strings, as ClickHouse's
        JSON formats quote them)."""
        try:
            response = await self._client.get("/", params={"query": f"{sql} FORMAT JSONEachRow"})
        except httpx.HTTPError as error:
            raise ProjectionsUnavailable(f"{type(error).__name__}: {error}") from error
        if response.status_code != 200:
            raise ProjectionsUnavailable(f"HTTP {response.status_code}: {response.text[:300]}")
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]
