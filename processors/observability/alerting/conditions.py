"""Which alert conditions hold now, from a rule's observations (pure).

An SLO's burn rate is its bad-event ratio over the error budget (``1 - objective``): at 1 the
budget lasts exactly the SLO period, at 14.4 a 30-day budget's 2% is gone in an hour. A burn-rate
alert holds when both of a pair's windows burn at least ``factor`` times; of a severity's pairs
the one burning fastest over its long window is reported. A threshold rule holds when its
ratio over its window is above the limit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from processors.observability.alerting.indicators import Counts, Observation
from processors.observability.config import BurnRateWindows, Slo, ThresholdRule, minutes
from schemas.payloads import AlertKind

__all__ = ["Condition", "burn_rate", "slo_conditions", "slo_windows", "threshold_conditions"]


@dataclass(frozen=True)
class Condition:
    """An alert that should be firing now, and what was seen."""

    rule: str
    kind: AlertKind
    severity: str
    indicator: str
    labels: Mapping[str, str]
    value: float
    threshold: float
    long_window: str
    short_window: str | None
    short_value: float | None
    objective: float | None
    message: str

    @property
    def key(self) -> str:
        """At most one alert per key fires at a time."""
        where = ",".join(f"{name}={value}" for name, value in sorted(self.labels.items()))
        return f"{self.rule}/{self.severity}/{where}"


def burn_rate(counts: Counts, objective: float) -> float:
    return counts.ratio / (1 - objective)


def slo_windows(pairs: Iterable[BurnRateWindows]) -> set[int]:
    """Every window length (minutes) an SLO's evaluation needs."""
    return {minutes(w) for pair in pairs for w in (pair.long, pair.short)}


def _where(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {value or '(none)'}" for name, value in sorted(labels.items()))


def slo_conditions(
    slo: Slo, pairs: Iterable[BurnRateWindows], seen: Iterable[Observation]
) -> list[Condition]:
    conditions: list[Condition] = []
    for observation in seen:
        burning: dict[str, Condition] = {}
        for pair in pairs:
            long = observation.counts[minutes(pair.long)]
            short = observation.counts[minutes(pair.short)]
            if long.total < slo.min_events:
                continue
            long_burn, short_burn = burn_rate(long, slo.objective), burn_rate(short, slo.objective)
            if long_burn < pair.factor or short_burn < pair.factor:
                continue
            known = burning.get(pair.severity)
            if known is not None and known.value >= long_burn:
                continue
            burning[pair.severity] = Condition(
                rule=slo.name,
                kind="burn_rate",
                severity=pair.severity,
                indicator=slo.indicator,
                labels=observation.labels,
                value=long_burn,
                threshold=pair.factor,
                long_window=pair.long,
                short_window=pair.short,
                short_value=short_burn,
                objective=slo.objective,
                message=(
                    f"{slo.name}: error budget burning {long_burn:.1f}x over {pair.long} "
                    f"and {short_burn:.1f}x over {pair.short} (limit {pair.factor:g}x, "
                    f"objective {slo.objective:g}) for {_where(observation.labels)}"
                ),
            )
        conditions.extend(burning[severity] for severity in sorted(burning))
    return conditions


def threshold_conditions(rule: ThresholdRule, seen: Iterable[Observation]) -> list[Condition]:
    window = minutes(rule.window)
    conditions: list[Condition] = []
    for observation in seen:
        counts = observation.counts[window]
        if counts.total < rule.min_events or counts.ratio <= rule.above:
            continue
        conditions.append(
            Condition(
                rule=rule.name,
                kind="threshold",
                severity=rule.severity,
                indicator=rule.indicator,
                labels=observation.labels,
                value=counts.ratio,
                threshold=rule.above,
                long_window=rule.window,
                short_window=None,
                short_value=None,
                objective=None,
                message=(
                    f"{rule.name}: {rule.indicator} {counts.ratio:.3f} over {rule.window} "
                    f"({counts.bad} of {counts.total}, limit {rule.above:g}) "
                    f"for {_where(observation.labels)}"
                ),
            )
        )
    return conditions
