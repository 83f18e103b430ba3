"""The Prometheus rule file generated from ``configs/observability.yaml``: every expression
parses with a real PromQL parser, selects series the traffic metrics really expose, and has
the alerter's semantics (client-caused codes out of availability, a latency threshold that is
a bucket bound, a burn pair's two windows, a threshold's minimum of runs)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from processors.observability.__main__ import main
from processors.observability.alerting.indicators import CLIENT_CAUSED
from processors.observability.alerting.prometheus_rules import rule_file
from processors.observability.config import (
    Alerting,
    ObservabilityConfig,
    load_observability_config,
)
from processors.observability.traffic_metrics import COUNTED, VERDICTS, TrafficMetrics
from schemas import default_catalog
from tests.factories import sample_envelope

SHIPPED = load_observability_config().alerting


def rules_of(alerting: Alerting) -> list[dict[str, Any]]:
    parsed = yaml.safe_load(rule_file(alerting))
    return [rule for group in parsed["groups"] for rule in group["rules"]]


def alerting(**settings: Any) -> Alerting:
    return ObservabilityConfig.model_validate({"alerting": settings}).alerting


def selectors(expr: str) -> Iterator[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return iter(found)


def matchers(selector: promql_parser.VectorSelector) -> dict[str, tuple[str, str]]:
    return {m.name: (str(m.op), m.value) for m in selector.matchers.matchers}


def exposed_series() -> dict[str, set[str]]:
    """Each sample name the traffic metrics expose, with its label names (bucket bounds as
    ``le=<bound>``), after one event of each counted type."""
    registry = CollectorRegistry()
    metrics = TrafficMetrics(registry)
    catalog = default_catalog()
    for message_type in COUNTED:
        metrics.count(sample_envelope(catalog.latest(message_type)))
    judged = sample_envelope(catalog.latest("eval.result.recorded"))
    verdict = {"evaluator": "refusal", "score": 0.0, "passed": False, "label": None}
    metrics.count(replace(judged, payload={**judged.payload, "results": [verdict]}))
    series: dict[str, set[str]] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            labels = series.setdefault(sample.name, set())
            labels.update(sample.labels)
            if "le" in sample.labels:
                labels.add(f"le={sample.labels['le']}")
    return series


EVERY_INDICATOR = alerting(
    slos=[
        {"name": "avail", "indicator": "availability", "objective": 0.999, "min_events": 10},
        {"name": "slow", "indicator": "latency", "threshold_ms": 2500, "objective": 0.99},
        {
            "name": "judged",
            "indicator": "eval_pass_rate",
            "objective": 0.9,
            "evaluators": ["refusal", "llm_judge"],
        },
    ],
    thresholds=[
        {"name": "timeouts", "indicator": "timeout_rate", "above": 0.05, "group_by": ["provider"]},
        {"name": "fallbacks", "indicator": "fallback_rate", "above": 0.1, "window": "10m"},
        {"name": "flags", "indicator": "guardrail_rate", "above": 0.2, "tenants": ["acme", "a.b"]},
    ],
)


@pytest.mark.parametrize("config", [SHIPPED, EVERY_INDICATOR], ids=["shipped", "every indicator"])
def test_every_expression_parses_and_selects_exposed_series(config: Alerting) -> None:
    series = exposed_series()
    recorded = {rule["record"] for rule in rules_of(config) if "record" in rule}
    for rule in rules_of(config):
        for selector in selectors(rule["expr"]):
            if selector.name in recorded:
                continue
            assert selector.name in series, f"{rule.get('alert') or rule['record']}"
            for name, (_, value) in matchers(selector).items():
                assert name in series[selector.name], (selector.name, name)
                if name == "le":
                    assert f"le={value}" in series[selector.name], value


def test_each_slo_records_its_ratio_over_every_window_and_alerts_per_burn_pair() -> None:
    rules = rules_of(SHIPPED)
    for slo in SHIPPED.slos:
        records = [r for r in rules if r.get("labels", {}).get("slo") == slo.name]
        windows = [r["record"].rsplit("increase", 1)[1] for r in records]
        assert windows == ["5m", "30m", "1h", "6h", "3d"]
        alerts = [r for r in rules if r.get("alert") == slo.name]
        pairs = [(a["labels"]["severity"], a["labels"]["long_window"]) for a in alerts]
        assert pairs == [("page", "1h"), ("page", "6h"), ("ticket", "3d")]
        [page] = [a for a in alerts if a["labels"]["long_window"] == "1h"]
        both = {s.name for s in selectors(page["expr"])}
        assert both == {
            "platform_slo:error_ratio:increase1h",
            "platform_slo:error_ratio:increase5m",
        }
        assert f">= 14.4 * (1 - {slo.objective!r})" in page["expr"]
        both_windows = promql_parser.parse(page["expr"])
        assert str(both_windows.op) == "and"
        assert "{{ $labels.tenant }}" in page["annotations"]["summary"]


def test_availability_leaves_out_exactly_the_client_caused_codes() -> None:
    [ratio] = [
        r
        for r in rules_of(EVERY_INDICATOR)
        if r.get("labels", {}).get("slo") == "avail" and r["record"].endswith("increase5m")
    ]
    codes = set()
    for selector in selectors(ratio["expr"]):
        op, value = matchers(selector)["error_code"]
        assert op == "MatchOp.NotRe"
        codes.add(value)
    [excluded] = codes
    assert set(excluded.split("|")) == {str(code) for code in CLIENT_CAUSED}


def test_latency_counts_completed_runs_over_the_threshold_bucket() -> None:
    [ratio] = [
        r
        for r in rules_of(EVERY_INDICATOR)
        if r.get("labels", {}).get("slo") == "slow" and r["record"].endswith("increase1h")
    ]
    found = {(s.name, tuple(sorted(matchers(s).items()))) for s in selectors(ratio["expr"])}
    count = "gen_ai_client_operation_duration_seconds_count"
    bucket = "gen_ai_client_operation_duration_seconds_bucket"
    completed = ("error_type", ("MatchOp.Equal", ""))
    assert found == {
        (count, (completed,)),
        (bucket, (completed, ("le", ("MatchOp.Equal", "2.5")))),
    }


def test_thresholds_alert_over_their_window_per_group_with_enough_runs() -> None:
    alerts = {r["alert"]: r for r in rules_of(EVERY_INDICATOR) if "alert" in r}
    timeouts = alerts["timeouts"]
    assert "sum by (tenant, provider)" in timeouts["expr"]
    assert "> 0.05" in timeouts["expr"] and ">= 20" in timeouts["expr"]
    assert timeouts["labels"] == {"severity": "warning", "indicator": "timeout_rate"}
    attempts = [s for s in selectors(timeouts["expr"]) if "attempt" in s.name]
    assert [matchers(s) for s in attempts] == [{"failure_kind": ("MatchOp.Equal", "timeout")}]
    assert "[10m]" in alerts["fallbacks"]["expr"] and "[5m]" not in alerts["fallbacks"]["expr"]
    for selector in selectors(alerts["flags"]["expr"]):
        assert matchers(selector)["tenant"] == ("MatchOp.Re", r"acme|a\.b")  # a dot is no wildcard


def test_the_cli_writes_the_shipped_config_as_a_rule_file(tmp_path: Path) -> None:
    out = tmp_path / "platform-rules.yaml"
    assert main(["prometheus-rules", "--out", str(out)]) == 0
    assert out.read_text() == rule_file(SHIPPED)
    assert [g["name"] for g in yaml.safe_load(out.read_text())["groups"]] == [
        "slo-availability",
        "slo-latency-10s",
        "thresholds",
    ]


def test_an_eval_pass_rate_counts_failed_verdicts_of_the_chosen_evaluators() -> None:
    recorded = [
        rule
        for rule in rules_of(EVERY_INDICATOR)
        if rule.get("labels", {}).get("slo") == "judged" and "record" in rule
    ]
    assert recorded
    for rule in recorded:
        found = [matchers(s) for s in selectors(rule["expr"])]
        assert found and all(s.name == VERDICTS for s in selectors(rule["expr"]))
        assert all(m["evaluator"] == ("MatchOp.Re", "refusal|llm_judge") for m in found)
        assert sum(m.get("passed") == ("MatchOp.Equal", "false") for m in found) == 1
