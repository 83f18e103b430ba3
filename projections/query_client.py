"""ClickHouse's HTTP interface as readers use it: the SQL in a POST body, the output format as
``default_format``, ``readonly=1``. The same client serves a ClickHouse server
(``CLICKHOUSE_URL``, e.g. ``http://user:pass@host:8123/platform``) and the embedded projector's
query endpoint (``http://127.0.0.1:8124``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from projections.store import StoreError, read_rows

__all__ = ["QueryClient"]


class QueryClient:
    """A ``SqlReader`` over HTTP; errors raise ``StoreError`` with ClickHouse's message."""

    def __init__(self, url: str, database: str | None = None, timeout_s: float = 60.0) -> None:
        parts = urlsplit(url)
        auth = (parts.username or "default", parts.password or "") if parts.username else None
        path_database = parts.path.strip("/") or None
        self._database = database or path_database
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc += f":{parts.port}"
        self._url = urlunsplit((parts.scheme or "http", netloc, "/", "", ""))
        self._client = httpx.Client(auth=auth, timeout=timeout_s)

    def query(self, sql: str, fmt: str) -> bytes:
        params = {"default_format": fmt, "readonly": "1"}
        if self._database:
            params["database"] = self._database
        try:
            response = self._client.post(self._url, params=params, content=sql.encode())
        except httpx.HTTPError as exc:
            raise StoreError(f"{self._url}: {exc}") from exc
        if response.status_code != 200:
            raise StoreError(response.text.strip() or f"HTTP {response.status_code}")
        return response.content

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return read_rows(self, sql)

    def ping(self) -> bool:
        try:
            return self._client.get(self._url + "ping", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._client.close()
