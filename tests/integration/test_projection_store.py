"""The projection store on the configured backend: chDB by default, a server via CLICKHOUSE_URL."""

from pathlib import Path

from projections import open_store


def test_same_ddl_and_sql_round_trip(tmp_path: Path) -> None:
    store = open_store(tmp_path / "chdb")
    try:
        store.command("CREATE DATABASE IF NOT EXISTS t_store")
        store.command(
            "CREATE TABLE IF NOT EXISTS t_store.runs (correlation_id String, version UInt64) "
            "ENGINE = ReplacingMergeTree(version) ORDER BY correlation_id"
        )
        store.command("INSERT INTO t_store.runs VALUES ('run-1', 1), ('run-1', 2), ('run-2', 1)")
        rows = store.rows(
            "SELECT correlation_id, max(version) AS v FROM t_store.runs "
            "GROUP BY correlation_id ORDER BY correlation_id"
        )
        assert rows == [{"correlation_id": "run-1", "v": 2}, {"correlation_id": "run-2", "v": 1}]
    finally:
        store.command("DROP DATABASE IF EXISTS t_store")
        store.close()
