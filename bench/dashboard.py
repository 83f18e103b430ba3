"""How fast the dashboard's two hot paths are at volume: ``GET /v1/runs`` (a first page, a
filtered page, a correlation id search, and page 21 by its cursor) over ``--runs`` projected
runs, and the overview's first render in Debian's chromium with each request it makes.

The runs' events (``bench.projector_workload.mixed_events``, four tenants) are written straight
into a fresh embedded chDB projection, served by the projections' query endpoint to a real
``python -m api`` process, as in the API's analytics tests. Times are loopback round trips
(upper bounds of the server time); the render time is ``performance.now()`` when the overview's
totals are on screen, from navigation start.

    .venv/bin/python -m bench.dashboard [--runs 100000] [--repeat 20]

Prints numbers only."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from bench.projector_workload import mixed_events
from projections import QueryServer
from tests.integration.test_api_support import Tenant, launch_api, write_api_config
from tests.integration.test_dashboard import CHROMIUM, CHROMIUM_ARGS
from tests.integration.test_projections_support import projection_db, write

EVENTS_PER_RUN = 5.7  # what mixed_events averages
CHUNK_EVENTS = 200_000
TENANT = Tenant("acme", "sk-bench-dashboard")
OVERVIEW_CALLS = [  # what the overview asks for on first render (its default: 24 hours)
    ("/v1/analytics/latency", {"interval": "hour"}),
    ("/v1/analytics/errors", {"interval": "hour"}),
    ("/v1/analytics/cache", {"interval": "hour"}),
    ("/v1/analytics/cost", {"group_by": "model"}),
    ("/v1/analytics/guardrails", {}),
    ("/v1/alerts", {"state": "firing"}),
]


def _seed(db: Any, runs: int) -> None:
    """``runs`` runs over the last 24 hours, written in chunks so memory stays flat."""
    total = int(runs * EVENTS_PER_RUN)
    spacing_ms = 86_400_000 / runs
    start = datetime.now(UTC) - timedelta(days=1)
    for chunk, offset in enumerate(range(0, total, CHUNK_EVENTS)):
        count = min(CHUNK_EVENTS, total - offset)
        at = start + timedelta(milliseconds=offset / EVENTS_PER_RUN * spacing_ms)
        events = mixed_events(count, at, seed=chunk + 1, spacing_ms=spacing_ms)
        write(db, events, batch_size=50_000, first_offset=offset)


def _timed(call: Callable[[], httpx.Response], repeat: int) -> str:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * len(times)))]
    return f"p50 {statistics.median(times):7.1f} ms  p95 {p95:7.1f} ms"


def _cursor_after(client: httpx.Client, pages: int) -> str:
    """The cursor of page ``pages + 1``, followed page by page as a client would."""
    page: dict[str, Any] = {"limit": 50}
    for _ in range(pages):
        response = client.get("/v1/runs", params=page)
        page["cursor"] = response.raise_for_status().json()["next_cursor"]
    cursor = page["cursor"]
    if cursor is None:
        raise SystemExit(f"fewer than {pages + 1} pages of runs: raise --runs")
    return str(cursor)


def _first_render_ms(url: str, repeat: int) -> list[float]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        times = []
        for _ in range(repeat):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(
                f"sessionStorage.setItem('llm-platform.api-key', '{TENANT.key}')"
            )
            page = context.new_page()
            page.goto(f"{url}/dashboard/#/overview")
            page.wait_for_selector("dl.tiles", timeout=30_000)
            times.append(float(page.evaluate("performance.now()")))
            context.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs of all four tenants")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, projection_db(Path(workdir)) as db:
        started = time.perf_counter()
        _seed(db, args.runs)
        print(f"seeded {args.runs} runs in {time.perf_counter() - started:.0f} s")
        server = QueryServer(db.reader, db.database, 0).start()
        config = write_api_config(Path(workdir) / "api.yaml", {"acme": TENANT})
        api = launch_api(
            Path(workdir),
            config,
            KAFKA_BOOTSTRAP_SERVERS="",
            CLICKHOUSE_URL="",
            PROJECTIONS_QUERY_URL=f"http://127.0.0.1:{server.port}",
            PROJECTIONS_DATABASE=db.database,
        )
        try:
            api.wait_ready(needs=("clickhouse",))
            with httpx.Client(base_url=api.url, headers=TENANT.headers, timeout=60) as client:
                first = client.get("/v1/runs", params={"limit": 50}).json()["runs"]
                prefix = first[0]["correlation_id"][:12]
                deep = _cursor_after(client, 20)
                cases: dict[str, Callable[[], httpx.Response]] = {
                    "first page (50)": lambda: client.get("/v1/runs", params={"limit": 50}),
                    "status=failed": lambda: client.get("/v1/runs", params={"status": "failed"}),
                    "correlation id search": lambda: client.get(
                        "/v1/runs", params={"correlation_id": prefix}
                    ),
                    "page 21 (its cursor)": lambda: client.get(
                        "/v1/runs", params={"limit": 50, "cursor": deep}
                    ),
                }
                for name, call in cases.items():
                    print(f"GET /v1/runs {name:24} {_timed(call, args.repeat)}")
                for path, params in OVERVIEW_CALLS:
                    timed = _timed(lambda p=path, q=params: client.get(p, params=q), args.repeat)
                    print(f"GET {path:33} {timed}")
            renders = sorted(_first_render_ms(api.url, 5))
            print(
                f"overview first render          p50 {statistics.median(renders):7.1f} ms  "
                f"max {renders[-1]:7.1f} ms"
            )
        finally:
            api.stop()
            server.close()


if __name__ == "__main__":
    main()
