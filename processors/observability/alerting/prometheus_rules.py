"""The SLOs and threshold rules of ``configs/observability.yaml`` as a Prometheus rule file
(pure), over the observability processor's traffic metrics, with our alerter's semantics.

Per SLO: a recording rule of its error ratio (bad over all events, per tenant and ``group_by``
dimension) over every burn-rate window, ``platform_slo:error_ratio:increase<window>`` labelled
``slo``, and an alert per burn pair that holds when both windows burn the error budget at least
``factor`` times (ratio >= factor x (1 - objective)). Per threshold rule: an alert when its ratio
over its window is above the limit. Ratios are over ``increase``, so ``min_events`` compares
with counts of runs. Indicators as the alerter reads them from ``metrics_minute``:

- availability: failed runs over runs, both without the client-caused error codes;
- latency: completed runs slower than ``threshold_ms`` over completed runs (a bucket bound of
  ``gen_ai_client_operation_duration_seconds``, whose labels it groups by);
- fallback_rate, guardrail_rate, timeout_rate: fallbacks, guardrail violations and provider
  attempt timeouts per run (a violation has no provider: grouped by provider, it counts under
  ``""``, as in ``metrics_minute``).

A group with no bad event has ratio 0 rather than no series, so the recorded ratios show a
healthy tenant too."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from prometheus_client.utils import floatToGoString

from processors.observability.alerting.indicators import CLIENT_CAUSED
from processors.observability.config import (
    Alerting,
    BurnRateWindows,
    Slo,
    ThresholdRule,
    minutes,
)
from processors.observability.traffic_metrics import (
    ATTEMPT_FAILURES,
    DURATION,
    FALLBACKS,
    GUARDRAIL_VIOLATIONS,
    REQUESTS,
    VERDICTS,
)

__all__ = ["ERROR_RATIO", "prometheus_rules", "rule_file"]

ERROR_RATIO = "platform_slo:error_ratio:increase"
"""The recorded ratios' name, the window appended (``...increase5m``)."""

_CLIENT_CODES = "|".join(sorted(CLIENT_CAUSED))
# The histogram names the target as the GenAI conventions do; the counters say provider, model.
_HISTOGRAM_DIMENSIONS = {"provider": "gen_ai_provider_name", "model": "gen_ai_request_model"}


def _string(value: str) -> str:
    """A PromQL string literal (Go's escapes, which JSON's are a subset of)."""
    return json.dumps(value)


def _group_labels(rule: Slo | ThresholdRule) -> list[str]:
    """The labels a rule's ratios are per: the tenant and its ``group_by`` dimensions."""
    if rule.indicator == "latency":
        return ["tenant", *(_HISTOGRAM_DIMENSIONS[d] for d in rule.group_by)]
    return ["tenant", *rule.group_by]


def _grouping(rule: Slo | ThresholdRule) -> str:
    return ", ".join(_group_labels(rule))


def _increase(rule: Slo | ThresholdRule, window: str, metric: str, *matchers: str) -> str:
    if rule.tenants is not None:
        tenants = "|".join(re.escape(tenant) for tenant in rule.tenants)
        matchers = (*matchers, f"tenant=~{_string(tenants)}")
    selector = f"{metric}{{{', '.join(matchers)}}}" if matchers else metric
    return f"sum by ({_grouping(rule)}) (increase({selector}[{window}]))"


def _bad_and_total(rule: Slo | ThresholdRule, window: str) -> tuple[str, str]:
    """Bad events and all events over ``window``, each a vector per group."""
    if rule.indicator == "availability":
        own = f"error_code!~{_string(_CLIENT_CODES)}"
        failed = _increase(rule, window, REQUESTS, 'outcome="failed"', own)
        return failed, _increase(rule, window, REQUESTS, own)
    if rule.indicator == "latency":
        completed = _increase(rule, window, f"{DURATION}_count", 'error_type=""')
        seconds = (rule.threshold_ms or 0) / 1000  # set on every latency rule (validated)
        bound = f"le={_string(floatToGoString(seconds))}"
        fast = _increase(rule, window, f"{DURATION}_bucket", 'error_type=""', bound)
        return f"{completed} - {fast}", completed
    if rule.indicator == "eval_pass_rate":
        which = (
            (f"evaluator=~{_string('|'.join(re.escape(e) for e in rule.evaluators))}",)
            if rule.evaluators is not None
            else ()
        )
        failed = _increase(rule, window, VERDICTS, 'passed="false"', *which)
        return failed, _increase(rule, window, VERDICTS, *which)
    runs = _increase(rule, window, REQUESTS)
    if rule.indicator == "fallback_rate":
        return _increase(rule, window, FALLBACKS), runs
    if rule.indicator == "guardrail_rate":
        return _increase(rule, window, GUARDRAIL_VIOLATIONS), runs
    return _increase(rule, window, ATTEMPT_FAILURES, 'failure_kind="timeout"'), runs


def _ratio(rule: Slo | ThresholdRule, window: str) -> str:
    bad, total = _bad_and_total(rule, window)
    return f"(\n  ({bad})\n  or\n  ({total}) * 0\n)\n/\n({total})"


def _enough_runs(rule: Slo | ThresholdRule, window: str) -> str:
    """``and`` at least ``min_events`` runs over ``window``; nothing when one run is enough
    (a group with no run has no ratio)."""
    if rule.min_events <= 1:
        return ""
    _, total = _bad_and_total(rule, window)
    return f"\nand on ({_grouping(rule)})\n({total}) >= {rule.min_events}"


def _where(rule: Slo | ThresholdRule) -> str:
    """The group an alert is about, as an annotation template."""
    return ", ".join(f"{name} {{{{ $labels.{name} }}}}" for name in _group_labels(rule))


def _slo_group(slo: Slo, pairs: list[BurnRateWindows], interval: str) -> dict[str, Any]:
    windows = sorted({w for pair in pairs for w in (pair.long, pair.short)}, key=minutes)
    rules: list[dict[str, Any]] = [
        {
            "record": f"{ERROR_RATIO}{window}",
            "expr": _ratio(slo, window),
            "labels": {"slo": slo.name, "indicator": slo.indicator},
        }
        for window in windows
    ]
    budget = f"(1 - {slo.objective!r})"
    for pair in pairs:
        limit = f"{float(pair.factor)!r} * {budget}"
        slo_is = f"slo={_string(slo.name)}"
        long, short = (f"{ERROR_RATIO}{w}{{{slo_is}}}" for w in (pair.long, pair.short))
        rules.append(
            {
                "alert": slo.name,
                "expr": f"{long} >= {limit}\nand\n{short} >= {limit}"
                + _enough_runs(slo, pair.long),
                "labels": {
                    "severity": pair.severity,
                    "indicator": slo.indicator,
                    "long_window": pair.long,
                    "short_window": pair.short,
                },
                "annotations": {
                    "summary": (
                        f"{slo.name}: error budget burning {pair.factor:g}x too fast for "
                        f"{_where(slo)}"
                    ),
                    "description": (
                        f"The {slo.indicator} error ratio is {{{{ $value | humanizePercentage }}}}"
                        f" over {pair.long}, and at least {pair.factor:g}x the error budget over "
                        f"{pair.short} too (objective {slo.objective * 100:g}%)."
                    ),
                },
            }
        )
    return {"name": f"slo-{slo.name}", "interval": interval, "rules": rules}


def _threshold_alert(rule: ThresholdRule) -> dict[str, Any]:
    return {
        "alert": rule.name,
        "expr": f"{_ratio(rule, rule.window)}\n> {rule.above!r}" + _enough_runs(rule, rule.window),
        "labels": {"severity": rule.severity, "indicator": rule.indicator},
        "annotations": {
            "summary": f"{rule.name}: {rule.indicator} above {rule.above:g} for {_where(rule)}",
            "description": (
                f"{rule.indicator} is {{{{ $value | humanizePercentage }}}} over {rule.window} "
                f"(limit {rule.above:g}, at least {rule.min_events} runs)."
            ),
        },
    }


def _interval(seconds: float) -> str:
    return f"{seconds:g}s" if seconds == int(seconds) else f"{round(seconds * 1000)}ms"


def prometheus_rules(alerting: Alerting) -> dict[str, Any]:
    """The rule file's content: a group per SLO, one for the threshold rules."""
    interval = _interval(alerting.evaluate_every_s)
    groups = [_slo_group(slo, alerting.burn_rate_windows, interval) for slo in alerting.slos]
    if alerting.thresholds:
        alerts = [_threshold_alert(rule) for rule in alerting.thresholds]
        groups.append({"name": "thresholds", "interval": interval, "rules": alerts})
    return {"groups": groups}


class _RuleDumper(yaml.SafeDumper):
    """Multi-line PromQL as YAML block scalars, so the file reads like hand-written rules."""


def _block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RuleDumper.add_representer(str, _block)


def rule_file(alerting: Alerting) -> str:
    """``prometheus_rules`` as YAML, for ``rule_files:`` in prometheus.yml."""
    return yaml.dump(prometheus_rules(alerting), Dumper=_RuleDumper, sort_keys=False, width=100)
