"""Where projections live: embedded chDB by default, a ClickHouse server when ``CLICKHOUSE_URL``
is set. One small interface, so the same DDL and SQL run on both."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "ChdbStore",
    "ClickHouseServerStore",
    "ProjectionStore",
    "SqlReader",
    "StoreError",
    "error_code",
    "open_store",
    "read_rows",
    "sql_string",
]

InsertSettings = Mapping[str, str | int]
_CODE = re.compile(r"Code: (\d+)")


class StoreError(RuntimeError):
    """A statement the store refused or could not run (including an unreachable server)."""

    @property
    def code(self) -> int | None:
        """ClickHouse's error code, when the message carries one."""
        return error_code(str(self))


def error_code(message: str) -> int | None:
    match = _CODE.search(message)
    return int(match.group(1)) if match else None


class SqlReader(Protocol):
    """A read-only handle: the store rejects anything that would write or change settings."""

    def query(self, sql: str, fmt: str) -> bytes:
        """The result of ``sql`` serialized in ClickHouse format ``fmt`` (a FORMAT clause wins)."""
        ...


class ProjectionStore(Protocol):
    def command(self, sql: str) -> None:
        """Run a statement that returns nothing (DDL, INSERT ... SELECT)."""
        ...

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Run a query; each row as a column-name mapping."""
        ...

    def insert(self, table: str, json_lines: str, settings: InsertSettings) -> None:
        """Insert JSONEachRow text; returns once the rows are written (parts on disk)."""
        ...

    def reader(self, database: str) -> SqlReader:
        """A read-only handle whose unqualified names resolve in ``database``."""
        ...

    def close(self) -> None: ...


class ChdbStore:
    """The ClickHouse engine in this process; the data dir may be owned by one process only.

    Sessions on the same path share the engine, so the read-only handle is a second session
    with ``readonly=1``: it cannot write or change settings while this one inserts. Closing the
    store closes its readers too (the engine stays up while any session is open)."""

    def __init__(self, data_dir: Path) -> None:
        from chdb import session

        data_dir.mkdir(parents=True, exist_ok=True)
        self._data_dir = data_dir
        self._session = session.Session(str(data_dir))
        self._readers: list[Any] = []

    def command(self, sql: str) -> None:
        _chdb_query(self._session, sql, "CSV")

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return _json_lines(_chdb_query(self._session, sql, "JSONEachRow"))

    def insert(self, table: str, json_lines: str, settings: InsertSettings) -> None:
        clause = f" SETTINGS {_settings_clause(settings)}" if settings else ""
        _chdb_query(self._session, f"INSERT INTO {table}{clause} FORMAT JSONEachRow\n{json_lines}")

    def reader(self, database: str) -> SqlReader:
        from chdb import session

        reader = session.Session(str(self._data_dir))
        self._readers.append(reader)
        _chdb_query(reader, f"USE {database}")
        _chdb_query(reader, "SET readonly = 1")
        return _ChdbReader(reader)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._session.close()


class _ChdbReader:
    def __init__(self, session: Any) -> None:
        self._session = session

    def query(self, sql: str, fmt: str) -> bytes:
        return _chdb_query(self._session, sql, fmt)


def _chdb_query(session: Any, sql: str, fmt: str = "CSV") -> bytes:
    try:
        data: bytes = session.query(sql, fmt).bytes()
    except RuntimeError as exc:  # chdb's ChdbError
        raise StoreError(str(exc)) from exc
    return data


class ClickHouseServerStore:
    """A ClickHouse server over HTTP (clickhouse-connect)."""

    def __init__(self, url: str) -> None:
        import clickhouse_connect

        self._url = url
        self._client = clickhouse_connect.get_client(dsn=url)

    def command(self, sql: str) -> None:
        from clickhouse_connect.driver.exceptions import Error

        try:
            self._client.command(sql)
        except Error as exc:
            raise StoreError(str(exc)) from exc

    def rows(self, sql: str) -> list[dict[str, Any]]:
        from clickhouse_connect.driver.exceptions import Error

        try:
            result = self._client.query(sql)
        except Error as exc:
            raise StoreError(str(exc)) from exc
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def insert(self, table: str, json_lines: str, settings: InsertSettings) -> None:
        from clickhouse_connect.driver.exceptions import Error

        try:
            self._client.raw_insert(
                table, insert_block=json_lines.encode(), settings=dict(settings), fmt="JSONEachRow"
            )
        except Error as exc:
            raise StoreError(str(exc)) from exc

    def reader(self, database: str) -> SqlReader:
        import clickhouse_connect

        return _ServerReader(
            clickhouse_connect.get_client(
                dsn=self._url, database=database, settings={"readonly": 1}
            )
        )

    def close(self) -> None:
        self._client.close()


class _ServerReader:
    def __init__(self, client: Any) -> None:
        self._client = client

    def query(self, sql: str, fmt: str) -> bytes:
        from clickhouse_connect.driver.exceptions import Error

        try:
            data: bytes = self._client.raw_query(sql, fmt=fmt)
        except Error as exc:
            raise StoreError(str(exc)) from exc
        return data


def read_rows(reader: SqlReader, sql: str) -> list[dict[str, Any]]:
    """A reader's result as column-name mappings."""
    return _json_lines(reader.query(sql, "JSONEachRow"))


def _json_lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line]


def _settings_clause(settings: InsertSettings) -> str:
    return ", ".join(
        f"{name} = {value}" if isinstance(value, int) else f"{name} = {sql_string(value)}"
        for name, value in settings.items()
    )


def sql_string(value: str) -> str:
    """A ClickHouse string literal: backslashes and quotes escaped, so any text is safe."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def open_store(data_dir: Path, clickhouse_url: str | None = None) -> ProjectionStore:
    """The server named by ``clickhouse_url`` (or ``CLICKHOUSE_URL``), else chDB in ``data_dir``."""
    url = clickhouse_url or os.environ.get("CLICKHOUSE_URL")
    return ClickHouseServerStore(url) if url else ChdbStore(data_dir)
