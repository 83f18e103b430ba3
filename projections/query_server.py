"""The embedded store's read endpoint: the projector owns chDB (one process may open it), so it
serves read-only SQL to other processes over loopback, shaped like ClickHouse's HTTP interface:
SQL as the POST body (or ``?query=``), ``default_format``, a ``FORMAT`` clause winning, errors as
4xx/5xx with ClickHouse's message and ``X-ClickHouse-Exception-Code``, ``GET /ping``. Readers
use the same client for it as for a ClickHouse server.

``POST /replay`` (JSON: ``from_timestamp``, ``tables``) runs a replay inside the projector,
streaming its progress lines; it is the only way to rebuild while the projector runs."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from projections.replay import ReplayRequest, parse_timestamp
from projections.sql_guard import NotReadOnly, read_only_statement
from projections.store import SqlReader, StoreError

__all__ = ["QueryServer", "ReplayHook", "http_status"]

log = logging.getLogger("projections.query_server")

ReplayHook = Callable[[ReplayRequest, Callable[[str], None]], dict[str, Any]]

_READONLY = 164
# ClickHouse's own mapping (HTTPHandler): client mistakes are 4xx, the rest 500.
_STATUS_BY_CODE = {
    **dict.fromkeys((6, 26, 27, 33, 36, 38, 41, 43, 44, 46, 47, 53, 62, 69, 70, 72, 80, 115), 400),
    **dict.fromkeys((164, 497), 403),
    **dict.fromkeys((60, 81, 390), 404),
    159: 504,
}
_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_CONTENT_TYPES = {
    "JSON": "application/json",
    "JSONCompact": "application/json",
    "JSONEachRow": "application/x-ndjson",
    "CSV": "text/csv",
    "CSVWithNames": "text/csv",
    "TabSeparated": "text/tab-separated-values",
    "TSV": "text/tab-separated-values",
}


def http_status(code: int | None) -> int:
    return _STATUS_BY_CODE.get(code, 500) if code is not None else 500


class QueryServer:
    """Serves until ``close()``, each request in its own thread."""

    def __init__(
        self, reader: SqlReader, database: str, port: int, replay: ReplayHook | None = None
    ) -> None:
        handler = type(
            "Handler",
            (_Handler,),
            {
                "reader": reader,
                "database": database,
                "replay": staticmethod(replay) if replay else None,
                "busy": threading.Lock(),
            },
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="query-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> QueryServer:
        self._thread.start()
        log.info("query endpoint on http://127.0.0.1:%d", self.port)
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    reader: SqlReader
    database: str
    replay: ReplayHook | None
    busy: threading.Lock
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path in ("/ping", "/ping/"):
            self._send(200, b"Ok.\n", "text/plain")
            return
        params = parse_qs(url.query)
        self._sql(params.get("query", [""])[0], params)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if url.path == "/replay":
            self._replay(body)
            return
        params = parse_qs(url.query)
        query = params.get("query", [""])[0]
        self._sql(f"{query}\n{body}" if query else body, params)

    def _sql(self, sql: str, params: dict[str, list[str]]) -> None:
        fmt = params.get("default_format", ["TabSeparated"])[0]
        database = params.get("database", [self.database])[0]
        try:
            if database != self.database:
                raise StoreError(f"Code: 81. DB::Exception: Database {database} is not served here")
            statement = read_only_statement(sql)
        except NotReadOnly as exc:
            self._error(_READONLY, f"Code: 164. DB::Exception: {exc}. (READONLY)")
            return
        except StoreError as exc:
            self._error(exc.code, str(exc))
            return
        try:
            data = self.reader.query(statement, fmt)
        except StoreError as exc:
            self._error(exc.code, str(exc))
            return
        match = _FORMAT_CLAUSE.search(statement)
        actual = match.group(1) if match else fmt
        content_type = _CONTENT_TYPES.get(actual, "text/plain")
        self._send(200, data, f"{content_type}; charset=UTF-8", {"X-ClickHouse-Format": actual})

    def _replay(self, body: str) -> None:
        if self.replay is None:
            self._send(404, b"no replay here\n", "text/plain")
            return
        try:
            options = json.loads(body or "{}")
            request = ReplayRequest(
                tables=tuple(options.get("tables") or ()),
                from_timestamp=(
                    parse_timestamp(options["from_timestamp"])
                    if options.get("from_timestamp")
                    else None
                ),
            )
        except (ValueError, TypeError) as exc:
            self._send(400, f"{exc}\n".encode(), "text/plain")
            return
        if not self.busy.acquire(blocking=False):
            self._send(409, b"a replay is already running\n", "text/plain")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                result = self.replay(request, self._line)
                self._line(json.dumps({"status": "done", **result}))
            except Exception as exc:
                log.exception("replay failed")
                self._line(json.dumps({"status": "failed", "error": str(exc)}))
        finally:
            self.busy.release()

    def _line(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\n")
        self.wfile.flush()

    def _error(self, code: int | None, message: str) -> None:
        headers = {"X-ClickHouse-Exception-Code": str(code)} if code is not None else {}
        self._send(http_status(code), message.encode() + b"\n", "text/plain", headers)

    def _send(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)
