"""``/v1/analytics/*`` on the real API process over projected events (chDB behind the
projections' query endpoint): every number equals what the events themselves imply, computed
here independently in Python, and every answer is the caller's tenant's alone."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bench.projector_workload import mixed_events
from projections import QueryServer
from streams.envelope import Envelope
from tests.integration.test_api_support import ApiProcess, Tenant, launch_api, write_api_config
from tests.integration.test_projections_support import projection_db, write

HOUR = timedelta(hours=1)
# Four whole hours, ending a few hours ago: inside any default window but a day ago.
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 6 * HOUR
END = START + 4 * HOUR
EVENTS = mixed_events(4000, START, seed=7, spacing_ms=27_000)
TENANTS = {"acme": Tenant("acme", "sk-acme-analytics"), "globex": Tenant("globex", "sk-gx")}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    workdir = tmp_path_factory.mktemp("analytics")
    with projection_db(workdir) as db:
        write(db, EVENTS, batch_size=1000)
        server = QueryServer(db.reader, db.database, 0).start()
        config = write_api_config(workdir / "api.yaml", TENANTS)
        process = launch_api(
            workdir,
            config,
            KAFKA_BOOTSTRAP_SERVERS="",
            CLICKHOUSE_URL="",
            PROJECTIONS_QUERY_URL=f"http://127.0.0.1:{server.port}",
            PROJECTIONS_DATABASE=db.database,
        )
        try:
            process.wait_ready(needs=("clickhouse",))
            yield process
        finally:
            process.stop()
            server.close()


def get(api: ApiProcess, path: str, tenant: str = "acme", **params: Any) -> Any:
    window = {"start": START.isoformat(), "end": END.isoformat()}
    response = httpx.get(
        f"{api.url}/v1/analytics/{path}",
        params={**window, **params},
        headers=TENANTS[tenant].headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


# --- the oracle: what the events imply -----------------------------------------------------


def of(tenant: str, event_type: str) -> list[Envelope]:
    """The tenant's events of one type inside the window the tests ask about."""
    return [
        e
        for e in EVENTS
        if e.tenant_id == tenant and e.message_type == event_type and START <= e.timestamp < END
    ]


def terminals(tenant: str) -> list[Envelope]:
    return of(tenant, "llm.request.completed") + of(tenant, "llm.request.failed")


def in_hour(events: Sequence[Envelope], hour: int) -> list[Envelope]:
    start = START + hour * HOUR
    return [e for e in events if start <= e.timestamp < start + HOUR]


def quantile_exact(values: Sequence[int], level: float) -> int:
    """ClickHouse's ``quantileExact``: the element at index ``floor(level * n)`` once sorted."""
    return sorted(values)[math.floor(level * len(values))]


def nano(amount: float) -> int:
    return round(amount * 1e9)


# --- the tests ------------------------------------------------------------------------------


def test_latency_percentiles_per_hour_are_those_of_the_completed_requests(
    api: ApiProcess,
) -> None:
    body = get(api, "latency", interval="hour")
    assert body["tenant_id"] == "acme" and body["interval"] == "hour"
    assert [point["bucket"] for point in body["series"]] == [
        (START + hour * HOUR).isoformat().replace("+00:00", "Z") for hour in range(4)
    ]
    completed = of("acme", "llm.request.completed")
    for hour, point in enumerate(body["series"]):
        latencies = [e.payload["latency_ms"] for e in in_hour(completed, hour)]
        assert point["completed"] == len(latencies) > 0
        assert [point["p50_ms"], point["p95_ms"], point["p99_ms"]] == [
            quantile_exact(latencies, level) for level in (0.5, 0.95, 0.99)
        ]
    everything = [e.payload["latency_ms"] for e in completed]
    assert body["total"]["p95_ms"] == quantile_exact(everything, 0.95)


def test_latency_can_be_narrowed_to_one_model(api: ApiProcess) -> None:
    body = get(api, "latency", interval="day", model="gpt-4.1")
    completed = [e for e in of("acme", "llm.request.completed") if e.payload["model"] == "gpt-4.1"]
    assert body["total"]["completed"] == len(completed) > 0
    assert sum(point["completed"] for point in body["series"]) == len(completed)


def test_errors_and_fallback_rates_per_hour(api: ApiProcess) -> None:
    body = get(api, "errors", interval="hour")
    for hour, point in enumerate(body["series"]):
        ended = in_hour(terminals("acme"), hour)
        failed = in_hour(of("acme", "llm.request.failed"), hour)
        fallbacks = in_hour(of("acme", "router.fallback.triggered"), hour)
        assert (point["requests"], point["errors"]) == (len(ended), len(failed))
        assert point["error_rate"] == round(len(failed) / len(ended), 6)
        assert point["fallbacks"] == len(fallbacks)
        assert point["fallback_rate"] == round(len(fallbacks) / len(ended), 6)
        assert point["errors_by_code"] == dict(Counter(e.payload["error_code"] for e in failed))
    rejected = [
        e for e in of("acme", "budget.check.completed") if e.payload["decision"] == "rejected"
    ]
    assert body["total"]["budget_rejections"] == len(rejected) > 0
    assert body["total"]["attempt_failures"] == len(of("acme", "llm.attempt.failed"))


def test_cache_hit_ratio_and_savings(api: ApiProcess) -> None:
    body = get(api, "cache", interval="hour")
    completed = of("acme", "llm.request.completed")
    hits = [e for e in completed if e.payload["cache_hit"]]
    total = body["total"]
    assert (total["requests"], total["cache_hits"]) == (len(terminals("acme")), len(hits))
    assert total["hit_ratio"] == round(len(hits) / len(terminals("acme")), 6)
    saved = sum(nano(e.payload["saved_cost_usd"]) for e in completed)
    assert total["saved_cost_usd"] == pytest.approx(saved / 1e9, abs=1e-9)
    assert sum(point["cache_hits"] for point in body["series"]) == len(hits)


def test_cost_by_model_most_expensive_first(api: ApiProcess) -> None:
    body = get(api, "cost")
    completed = of("acme", "llm.request.completed")
    expected: dict[tuple[str, str], int] = Counter()
    for event in completed:
        expected[event.payload["provider"], event.payload["model"]] += nano(
            event.payload["cost_usd"]
        )
    groups = {(g["provider"], g["model"]): g for g in body["groups"]}
    assert set(groups) >= set(expected)
    for target, cost in expected.items():
        assert groups[target]["cost_usd"] == pytest.approx(cost / 1e9, abs=1e-9)
    costs = [group["cost_usd"] for group in body["groups"]]
    assert costs == sorted(costs, reverse=True)
    assert body["total"]["requests"] == len(terminals("acme"))
    assert body["total"]["prompt_tokens"] == sum(e.payload["prompt_tokens"] for e in completed)
    by_provider = get(api, "cost", group_by="provider")["groups"]
    assert {g["provider"] for g in by_provider} == {p for p, _ in expected}
    assert all("model" not in group for group in by_provider)


def test_top_guardrail_rules(api: ApiProcess) -> None:
    body = get(api, "guardrails", limit=3)
    violations = of("acme", "guardrail.violation.detected")
    counts = Counter(
        (e.payload["rule"], e.payload["stage"], e.payload["action"]) for e in violations
    )
    top = [(r["rule"], r["stage"], r["action"], r["violations"]) for r in body["rules"]]
    assert len(top) == 3
    assert [n for *_, n in top] == sorted(counts.values(), reverse=True)[:3]
    assert all(counts[rule, stage, action] == n for rule, stage, action, n in top)


def test_each_tenant_sees_only_its_own_traffic(api: ApiProcess) -> None:
    mine, theirs = get(api, "errors", interval="day"), get(api, "errors", "globex", interval="day")
    assert theirs["tenant_id"] == "globex"
    assert mine["total"]["requests"] == len(terminals("acme"))
    assert theirs["total"]["requests"] == len(terminals("globex"))
    assert mine["total"]["requests"] != theirs["total"]["requests"]


def test_an_empty_window_is_all_zeros_with_no_ratios(api: ApiProcess) -> None:
    later = END + 10 * HOUR
    body = get(
        api, "cache", interval="hour", start=later.isoformat(), end=(later + 2 * HOUR).isoformat()
    )
    assert [p["requests"] for p in body["series"]] == [0, 0]
    assert body["total"]["hit_ratio"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"interval": "fortnight"}, "interval"),
        ({"start": END.isoformat(), "end": START.isoformat()}, "end must be after start"),
        ({"interval": "minute", "start": (END - 40 * HOUR).isoformat()}, "at most 2000"),
        ({"model": "x' OR 1=1 --"}, "model"),
        ({"start": "1969-12-31T23:00:00Z"}, "between 1970-01-01 and 2106-01-01"),
        ({"end": "9999-12-31T23:59:59-23:59"}, "out of range"),
        ({"end": "0001-01-01T00:00:00Z"}, "between 1970-01-01 and 2106-01-01"),
    ],
)
def test_bad_parameters_are_structured_422s(
    api: ApiProcess, params: dict[str, str], message: str
) -> None:
    window = {"start": START.isoformat(), "end": END.isoformat()}
    response = httpx.get(
        f"{api.url}/v1/analytics/latency",
        params={**window, **params},
        headers=TENANTS["acme"].headers,
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST" and message in error["message"]


def test_analytics_need_a_key(api: ApiProcess) -> None:
    response = httpx.get(f"{api.url}/v1/analytics/cost")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
