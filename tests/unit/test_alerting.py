"""Alert conditions and transitions (pure): burn rates over window pairs, thresholds, one alert
per key, ids fixed by what happened, and rules that could not be evaluated left alone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from processors.observability.alerting.alert_states import (
    RESOLVED,
    TRIGGERED,
    evaluated,
    restored,
)
from processors.observability.alerting.conditions import (
    slo_conditions,
    slo_windows,
    threshold_conditions,
)
from processors.observability.alerting.indicators import Counts, Observation
from processors.observability.alerting.signatures import sign, verify
from processors.observability.alerting.webhooks import backoff_s
from processors.observability.config import (
    Alerting,
    Slo,
    ThresholdRule,
    Webhook,
    load_observability_config,
)
from streams.config import ConfigError
from streams.envelope import WriterIdentity

WINDOWS = Alerting().burn_rate_windows
SLO = Slo(name="availability", indicator="availability", objective=0.999)
NOW = datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)
WRITER = WriterIdentity("alerter", 4, "dev")


def seen(ratio_by_window: dict[int, float], total: int = 1000, **labels: str) -> Observation:
    counts = {w: Counts(0, total) for w in slo_windows(WINDOWS)}
    counts.update({w: Counts(round(r * total), total) for w, r in ratio_by_window.items()})
    return Observation({"tenant": "acme", **labels}, counts)


def test_a_page_needs_both_windows_burning() -> None:
    # 2% errors = 20x burn at 99.9%: over the hour and the last 5 minutes it pages.
    both = slo_conditions(SLO, WINDOWS, [seen({60: 0.02, 5: 0.02})])
    assert [(c.severity, c.long_window, round(c.value, 1)) for c in both] == [("page", "1h", 20.0)]
    # Over, then no longer: the short window says it stopped.
    assert slo_conditions(SLO, WINDOWS, [seen({60: 0.02, 5: 0.0})]) == []
    # A blip: the short window burns, the hour does not.
    assert slo_conditions(SLO, WINDOWS, [seen({60: 0.001, 5: 0.02})]) == []


def test_of_a_severitys_pairs_the_fastest_long_burn_is_reported() -> None:
    all_windows = {60: 0.02, 5: 0.02, 360: 0.03, 30: 0.03, 4320: 0.002}
    found = slo_conditions(SLO, WINDOWS, [seen(all_windows)])
    assert [(c.severity, c.long_window, c.short_window) for c in found] == [
        ("page", "6h", "30m"),
        ("ticket", "3d", "6h"),
    ]
    assert found[0].key == "availability/page/tenant=acme"


def test_too_few_events_give_no_verdict() -> None:
    few = SLO.model_copy(update={"min_events": 2000})
    assert slo_conditions(few, WINDOWS, [seen({60: 0.5, 5: 0.5})]) == []


def test_a_threshold_rule_holds_above_its_limit_with_enough_events() -> None:
    rule = ThresholdRule(
        name="timeouts", indicator="timeout_rate", above=0.05, window="5m", group_by=["provider"]
    )
    over = Observation({"tenant": "acme", "provider": "openai"}, {5: Counts(6, 100)})
    at_limit = Observation({"tenant": "acme", "provider": "anthropic"}, {5: Counts(5, 100)})
    quiet = Observation({"tenant": "globex", "provider": "openai"}, {5: Counts(5, 10)})
    found = threshold_conditions(rule, [over, at_limit, quiet])
    assert [(c.key, c.value, c.severity) for c in found] == [
        ("timeouts/warning/provider=openai,tenant=acme", 0.06, "warning")
    ]


def test_an_alert_fires_once_then_resolves_with_the_same_id() -> None:
    burning = slo_conditions(SLO, WINDOWS, [seen({60: 0.02, 5: 0.02})])
    first = evaluated({}, burning, {"availability"}, NOW, WRITER)
    assert [e.message_type for e in first.events] == [TRIGGERED]
    again = evaluated(first.firing, burning, {"availability"}, NOW + timedelta(minutes=1), WRITER)
    assert again.events == [] and again.firing.keys() == first.firing.keys()
    over = evaluated(again.firing, [], {"availability"}, NOW + timedelta(minutes=2), WRITER)
    assert [e.message_type for e in over.events] == [RESOLVED] and over.firing == {}
    fired, resolved = first.events[0], over.events[0]
    assert fired.correlation_id == resolved.correlation_id == fired.payload["alert_id"]
    assert resolved.payload["fired_at"] == NOW
    assert fired.message_id != resolved.message_id


def test_ids_depend_on_the_key_and_the_minute_not_on_who_evaluates() -> None:
    burning = slo_conditions(SLO, WINDOWS, [seen({60: 0.02, 5: 0.02})])
    one = evaluated({}, burning, {"availability"}, NOW, WRITER).events
    other = evaluated({}, burning, {"availability"}, NOW + timedelta(seconds=20), WRITER).events
    later = evaluated({}, burning, {"availability"}, NOW + timedelta(minutes=1), WRITER).events
    assert one[0].message_id == other[0].message_id
    assert one[0].payload["alert_id"] != later[0].payload["alert_id"]


def test_an_alert_of_a_rule_not_evaluated_stays_firing() -> None:
    burning = slo_conditions(SLO, WINDOWS, [seen({60: 0.02, 5: 0.02})])
    firing = evaluated({}, burning, {"availability"}, NOW, WRITER).firing
    unjudged = evaluated(firing, [], set(), NOW + timedelta(minutes=1), WRITER)
    assert unjudged.events == [] and unjudged.firing == firing


def test_an_alert_restored_from_its_trigger_resolves_like_the_original() -> None:
    burning = slo_conditions(SLO, WINDOWS, [seen({60: 0.02, 5: 0.02})])
    first = evaluated({}, burning, {"availability"}, NOW, WRITER)
    payload = dict(first.events[0].payload)
    back = restored(payload, payload["fired_at"])
    assert {back.condition.key: back} == first.firing
    resolved = evaluated({back.condition.key: back}, [], {"availability"}, NOW, WRITER)
    original = evaluated(first.firing, [], {"availability"}, NOW, WRITER)
    assert resolved.events == original.events


@pytest.mark.parametrize(
    ("slo", "problem"),
    [
        ("{name: slow, indicator: latency, objective: 0.99}", "threshold_ms"),
        ("{name: slow, indicator: latency, objective: 0.99, threshold_ms: 700}", "threshold_ms"),
        ("{name: a, indicator: availability, objective: 1.5}", "objective"),
        ("{name: a, indicator: availability, objective: 0.9, min_events: 0}", "min_events"),
    ],
)
def test_a_broken_rule_is_refused_with_its_line_and_field(
    tmp_path: Path, slo: str, problem: str
) -> None:
    path = tmp_path / "observability.yaml"
    path.write_text(f"alerting:\n  slos:\n    - {slo}\n")
    with pytest.raises(ConfigError) as refused:
        load_observability_config(path)
    message = str(refused.value)
    assert "observability.yaml" in message and ":3" in message and problem in message


def test_durations_and_unique_names_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "observability.yaml"
    path.write_text(
        "alerting:\n  thresholds:\n    - {name: a, indicator: fallback_rate, above: 0.1}\n"
        "    - {name: a, indicator: guardrail_rate, above: 0.1, window: 5x}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_observability_config(path)
    assert "5x" in str(refused.value)
    path.write_text(
        "alerting:\n  thresholds:\n    - {name: a, indicator: fallback_rate, above: 0.1}\n"
        "    - {name: a, indicator: guardrail_rate, above: 0.1}\n"
    )
    with pytest.raises(ConfigError, match="rule names must be unique: a"):
        load_observability_config(path)


def test_the_shipped_config_loads() -> None:
    config = load_observability_config()
    assert config.alerting.slos and config.alerting.thresholds


def test_a_signature_verifies_only_the_same_body_secret_and_recent_time() -> None:
    body = b'{"event_type": "alert.rule.triggered"}'
    header = sign("s3cret", 1_000_000, body)
    assert verify("s3cret", header, body, now=1_000_100)
    assert not verify("s3cret", header, body + b" ", now=1_000_100)
    assert not verify("other", header, body, now=1_000_100)
    assert not verify("s3cret", header, body, now=1_000_000 + 301)
    assert not verify("s3cret", "v1=abc", body, now=1_000_000)


def test_backoff_doubles_with_full_jitter_honours_retry_after_and_is_capped() -> None:
    hook = Webhook.model_validate(
        {"name": "h", "url": "http://127.0.0.1:1/x", "secret_env": "S", "backoff_s": 1.0}
    )
    rng = random.Random(7)
    waits = [backoff_s(hook, attempt, None, rng) for attempt in (1, 2, 3) for _ in range(200)]
    assert max(waits[:200]) <= 1.0 < max(waits[200:400]) <= 2.0 < max(waits[400:]) <= 4.0
    assert backoff_s(hook, 1, 7.0, rng) == 7.0
    assert backoff_s(hook, 12, None, rng) <= 30.0 and backoff_s(hook, 1, 300.0, rng) == 30.0
