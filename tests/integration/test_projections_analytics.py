"""Every query in docs/ANALYTICS.md runs on the real engine against a projected workload."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.projector_workload import mixed_events
from tests.integration.processes import REPO
from tests.integration.test_projections_support import projection_db, write

PAGE = REPO / "docs" / "ANALYTICS.md"
# Lookups of one run may find nothing; every aggregate must find the workload.
MAY_BE_EMPTY = ("FROM runs_latest\nWHERE tenant_id", "FROM events\nWHERE tenant_id")


def page_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", PAGE.read_text(), re.DOTALL)


def test_the_page_has_ten_queries() -> None:
    assert len(page_queries()) == 10


def test_every_query_on_the_page_runs(tmp_path: Path) -> None:
    # Recent enough for the pages' time windows, old enough for "stuck" runs.
    start = datetime.now(UTC) - timedelta(minutes=30)
    events = mixed_events(5000, start, seed=0, spacing_ms=200)
    with projection_db(tmp_path) as db:
        write(db, events, batch_size=2000)
        for query in page_queries():
            result = db.reader.query(query, "JSONEachRow").decode().splitlines()
            rows = [json.loads(line) for line in result]
            if not any(marker in query for marker in MAY_BE_EMPTY):
                assert rows, f"no rows from:\n{query}"
