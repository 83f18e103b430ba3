"""Pure parts of the projections: the events row, the migration files, the settings."""

import json
import re
from datetime import UTC, datetime, timedelta

from projections import ProjectionSettings
from projections.migrator import load_migrations
from projections.rows import event_row
from streams.serde import WireMessage

EVENT_ID = "00000000-0000-4000-8000-000000000001"


def envelope(**payload: object) -> WireMessage:
    """A decoded event as ``AvroSerde.decode_wire`` gives it."""
    moment = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
    micros = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    record = {
        "event_id": EVENT_ID,
        "event_type": "llm.request.completed",
        "schema_version": 1,
        "timestamp": micros,
        "layer": 1,
        "service_name": "foundation",
        "env": "dev",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": None,
        "correlation_id": "run-1",
        "tenant_id": "acme",
        "causation_id": None,
        "payload": payload,
    }
    return WireMessage("llm.request.completed", EVENT_ID, micros, record)


def test_an_event_row_keeps_every_envelope_field_and_the_payload_as_json() -> None:
    row = json.loads(event_row(envelope(cost_usd=0.1 + 0.2, flags=["a"], text='é\n"')))
    assert row["event_id"] == "00000000-0000-4000-8000-000000000001"
    assert row["timestamp"] == "1795694400.123456"  # exact micros, no float rounding
    assert (row["tenant_id"], row["correlation_id"], row["layer"]) == ("acme", "run-1", 1)
    assert (row["trace_id"], row["span_id"], row["causation_id"]) == (
        "0af7651916cd43dd8448eb211c80319c",
        None,
        None,
    )
    assert row["payload"] == {"cost_usd": 0.30000000000000004, "flags": ["a"], "text": 'é\n"'}


def test_event_rows_are_deterministic_and_logical_values_are_text() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    one = event_row(envelope(deadline=moment, blob=b"\x00\x01"))
    assert one == event_row(envelope(deadline=moment, blob=b"\x00\x01"))
    payload = json.loads(one)["payload"]
    assert payload == {"deadline": "2026-01-02T03:04:05+00:00", "blob": "AAE="}


def test_migrations_are_numbered_and_split_into_statements() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    statements = [s for m in migrations for s in m.statements("analytics", 9)]
    assert all("{" + "database}" not in s and "{events_ttl_days}" not in s for s in statements)
    assert any("INTERVAL 9 DAY" in s for s in statements)
    assert all(not s.rstrip().endswith(";") for s in statements)
    created = [
        m.group(1) for s in statements if (m := re.search(r"CREATE TABLE IF NOT EXISTS (\S+)", s))
    ]
    assert created == [
        "analytics.events",
        "analytics.runs",
        "analytics.metrics_minute",
        "analytics.eval_results",
        "analytics.alerts",
        "analytics.dataset_versions",
        "analytics.dataset_items",
        "analytics.eval_runs",
        "analytics.eval_run_aggregates",
        "analytics.eval_minute",
        "analytics.rag_documents",
        "analytics.rag_chunks",
        "analytics.rag_postings",
        "analytics.groundings",
    ]


def test_settings_come_from_the_environment() -> None:
    settings = ProjectionSettings.from_env(
        {
            "PROJECTIONS_DATA_DIR": "/var/chdb",
            "PROJECTIONS_QUERY_PORT": "9000",
            "CLICKHOUSE_URL": "",
        }
    )
    assert (str(settings.data_dir), settings.query_port, settings.clickhouse_url) == (
        "/var/chdb",
        9000,
        None,
    )
    assert settings.query_url == "http://127.0.0.1:9000"
    server = ProjectionSettings.from_env({"CLICKHOUSE_URL": "http://ch:8123/platform"})
    assert server.query_url == "http://ch:8123/platform"
