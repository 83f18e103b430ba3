"""Where projections live: embedded chDB by default, a ClickHouse server when ``CLICKHOUSE_URL``
is set. One small interface, so the same DDL and SQL run on both."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ChdbStore", "ClickHouseServerStore", "ProjectionStore", "open_store"]


class ProjectionStore(Protocol):
    def command(self, sql: str) -> None:
        """Run a statement that returns nothing (DDL, INSERT ... SELECT)."""
        ...

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Run a query; each row as a column-name mapping."""
        ...

    def close(self) -> None: ...


class ChdbStore:
    """The ClickHouse engine in this process; the data dir may be owned by one process only."""

    def __init__(self, data_dir: Path) -> None:
        from chdb import session

        data_dir.mkdir(parents=True, exist_ok=True)
        self._session = session.Session(str(data_dir))

    def command(self, sql: str) -> None:
        self._session.query(sql)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        result = self._session.query(sql, "JSONEachRow")
        return [json.loads(line) for line in result.bytes().decode().splitlines() if line]

    def close(self) -> None:
        self._session.close()


class ClickHouseServerStore:
    """A ClickHouse server over HTTP (clickhouse-connect)."""

    def __init__(self, url: str) -> None:
        import clickhouse_connect

        self._client = clickhouse_connect.get_client(dsn=url)

    def command(self, sql: str) -> None:
        self._client.command(sql)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        result = self._client.query(sql)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def close(self) -> None:
        self._client.close()


def open_store(data_dir: Path) -> ProjectionStore:
    url = os.environ.get("CLICKHOUSE_URL")
    return ClickHouseServerStore(url) if url else ChdbStore(data_dir)
