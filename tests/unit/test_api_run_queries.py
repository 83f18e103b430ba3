"""The run list's pure parts: cursors survive a round trip and refuse anything else; filters
become conditions on validated values only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.run_queries import RunFilter, decode_cursor, encode_cursor, run_page_sql


def test_a_cursor_names_the_row_it_was_made_from() -> None:
    row = {"started_micros": "1795688766535000", "correlation_id": "req_abc"}
    assert decode_cursor(encode_cursor(row)) == (1795688766535000, "req_abc")


@pytest.mark.parametrize(
    "cursor",
    ["", "not base64!", "W10", "WyJ4IiwgMV0", "WzEsICJhJyBPUiAxPTEgLS0iXQ", "Wy0xLCAiYSJd"],
)
def test_anything_else_is_refused(cursor: str) -> None:
    # empty, garbage, [], ["x", 1], [1, "a' OR 1=1 --"], [-1, "a"]
    with pytest.raises(ValueError, match="not a cursor"):
        decode_cursor(cursor)


def test_the_page_is_the_tenants_filtered_and_after_the_cursor() -> None:
    runs = RunFilter(
        status="failed",
        model="m'x",
        cache_hit=False,
        since=datetime(2026, 1, 1, tzinfo=UTC),
        correlation_id_prefix="req_",
    )
    sql = run_page_sql("db", "acme", runs, (1_000_000, "req_z"), 51)
    assert "tenant_id = 'acme'" in sql and "mode != ''" in sql
    assert "status = 'failed'" in sql and "model = 'm\\'x'" in sql and "cache_hit = 0" in sql
    assert "started_at >= fromUnixTimestamp64Micro(toInt64(1767225600000000), 'UTC')" in sql
    assert "startsWith(correlation_id, 'req_')" in sql
    assert "(started_at, correlation_id) < (fromUnixTimestamp64Micro(toInt64(1000000)" in sql
    assert sql.endswith("ORDER BY started_at DESC, correlation_id DESC LIMIT 51")


def test_times_outside_what_clickhouse_holds_are_clamped() -> None:
    sql = run_page_sql("db", "t", RunFilter(until=datetime(9999, 1, 1, tzinfo=UTC)), None, 1)
    assert "started_at < fromUnixTimestamp64Micro(toInt64(4102444800000000), 'UTC')" in sql


def test_without_merged_filters_the_page_is_picked_from_unmerged_rows() -> None:
    sql = run_page_sql("db", "acme", RunFilter(cache_hit=True), (5, "req_a"), 51)
    picked = sql[sql.index("IN (SELECT") :]
    assert "FROM db.runs WHERE tenant_id = 'acme' GROUP BY correlation_id" in picked
    assert "HAVING max(mode) != '' AND max(cache_hit) = 1" in picked
    assert "(min(started_at), correlation_id) < (fromUnixTimestamp64Micro(toInt64(5)" in picked
    assert "ORDER BY min(started_at) DESC, correlation_id DESC LIMIT 51)" in picked
    merged = run_page_sql("db", "acme", RunFilter(provider="p"), None, 51)
    assert "FROM db.runs WHERE" not in merged  # a provider is known only once merged
