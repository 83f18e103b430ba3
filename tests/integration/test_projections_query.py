"""The embedded store's read endpoint speaks enough of ClickHouse's HTTP interface for
ClickHouse's own clients, and only reads."""

from __future__ import annotations

import json
from collections.abc import Iterator

import clickhouse_connect
import httpx
import pytest

from bench.projector_workload import mixed_events
from projections import ChdbStore, QueryClient, QueryServer, StoreError
from projections.migrator import migrate
from tests.integration.test_projections_support import START, ProjectionDb, write


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A projector-less query server over chDB holding 1,000 projected events."""
    tmp_path = tmp_path_factory.mktemp("query")
    store = ChdbStore(tmp_path)
    try:
        migrate(store, "platform", 30)
        reader = store.reader("platform")
        write(ProjectionDb(store, reader, tmp_path, "platform"), mixed_events(1000, START), 500)
        server = QueryServer(reader, "platform", 0).start()
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            server.close()
    finally:
        store.close()


def test_formats_like_clickhouse(endpoint: str) -> None:
    assert httpx.get(f"{endpoint}/ping").text == "Ok.\n"
    plain = httpx.post(endpoint, content="SELECT count() FROM events")
    assert (plain.status_code, plain.text) == (200, "1000\n")
    assert plain.headers["X-ClickHouse-Format"] == "TabSeparated"
    rows = httpx.post(
        endpoint,
        params={"default_format": "JSONEachRow"},
        content="SELECT event_type, count() AS n FROM events GROUP BY event_type ORDER BY n DESC",
    )
    assert rows.headers["content-type"].startswith("application/x-ndjson")
    assert sum(json.loads(line)["n"] for line in rows.text.splitlines()) == 1000
    clause = httpx.get(endpoint, params={"query": "SELECT 1 AS a FORMAT JSONEachRow"})
    assert clause.text == '{"a":1}\n'


def test_errors_carry_the_code_and_the_message(endpoint: str) -> None:
    missing = httpx.post(endpoint, content="SELECT * FROM nowhere")
    assert missing.status_code == 404
    assert missing.headers["X-ClickHouse-Exception-Code"] == "60"
    assert "nowhere" in missing.text
    syntax = httpx.post(endpoint, content="SELECT 1 +")
    assert (syntax.status_code, syntax.headers["X-ClickHouse-Exception-Code"]) == (400, "62")


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO events SELECT * FROM events",
        "DROP TABLE events",
        "SELECT 1; DROP TABLE events",
        "SYSTEM STOP MERGES",
        "SELECT 1 INTO OUTFILE '/tmp/x'",
        "SELECT * FROM events SETTINGS readonly = 0",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    ],
)
def test_only_reads(endpoint: str, sql: str) -> None:
    response = httpx.post(endpoint, content=sql)
    assert response.status_code == 403, response.text
    assert response.headers["X-ClickHouse-Exception-Code"] == "164"
    assert httpx.post(endpoint, content="SELECT count() FROM events").text == "1000\n"


def test_clickhouse_clients_work_unchanged(endpoint: str) -> None:
    client = clickhouse_connect.get_client(dsn=f"{endpoint}/platform")
    try:
        result = client.query("SELECT tenant_id, count() AS n FROM events GROUP BY tenant_id")
        assert sum(n for _, n in result.result_rows) == 1000
    finally:
        client.close()
    ours = QueryClient(endpoint, "platform")
    assert ours.ping()
    assert ours.rows("SELECT count() AS n FROM events") == [{"n": 1000}]
    with pytest.raises(StoreError, match="READONLY"):
        ours.query("ALTER TABLE events DELETE WHERE 1", "TabSeparated")
    ours.close()
