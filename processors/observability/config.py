"""``configs/observability.yaml`` validated (errors name file, line and field): which online
evaluators run and on what share of runs, per tenant; the SLOs and threshold rules the alerter
evaluates."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, Self, get_args

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from streams.config import load_config

__all__ = [
    "ALL_EVALUATORS",
    "DEFAULT_CONFIG",
    "DEFAULT_RUBRIC",
    "LATENCY_BUCKETS_MS",
    "Alerting",
    "BurnRateWindows",
    "Dimension",
    "EvaluatorName",
    "Indicator",
    "Judge",
    "ObservabilityConfig",
    "OnlineEvaluation",
    "Slo",
    "ThresholdRule",
    "Webhook",
    "load_observability_config",
    "minutes",
]

EvaluatorName = Literal["empty", "truncated", "refusal", "guardrail_flags", "tool_arguments"]
ALL_EVALUATORS: tuple[EvaluatorName, ...] = get_args(EvaluatorName)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TenantSampling(_Strict):
    sample_rate: float = Field(ge=0, le=1)


class _Sampled(_Strict):
    sample_rate: float = Field(1.0, ge=0, le=1)
    tenants: dict[str, _TenantSampling] = Field(default_factory=dict)

    def rate_for(self, tenant: str) -> float:
        sampling = self.tenants.get(tenant)
        return sampling.sample_rate if sampling is not None else self.sample_rate


DEFAULT_RUBRIC = (
    "Judge the answer: is it relevant, correct as far as you can tell, complete, and safe? "
    "A clear refusal of a harmful request is a good answer."
)


class Judge(_Sampled):
    """An LLM-as-judge called through layer 1 (routing, guardrails and the tenant's budget
    apply) after a run ends, on a sampled share of runs; each call capped in tokens and USD."""

    enabled: bool = False
    sample_rate: float = Field(0.1, ge=0, le=1)
    model: str | None = None  # the model hint layer 1 routes; None: the default route
    rubric: str = Field(DEFAULT_RUBRIC, min_length=1)
    pass_score: float = Field(0.7, ge=0, le=1)  # score (0-1) at or above which a run passes
    max_tokens: int = Field(80, ge=1)
    max_cost_usd: float = Field(0.01, gt=0)
    max_answer_chars: int = Field(4000, ge=1)  # the answer is cut to this before judging


class OnlineEvaluation(_Sampled):
    evaluators: list[EvaluatorName] = Field(default_factory=lambda: list(ALL_EVALUATORS))
    judge: Judge = Judge()


Indicator = Literal[
    "availability", "latency", "fallback_rate", "guardrail_rate", "timeout_rate", "eval_pass_rate"
]
"""What a rule measures, as bad events over all events in ``metrics_minute``: failed runs
(client-caused codes excluded), completed runs slower than ``threshold_ms``, fallbacks,
guardrail violations and provider attempt timeouts, each per run; or in ``eval_minute``:
online verdicts that failed (of ``evaluators``, or all)."""

Dimension = Literal["provider", "model"]

LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000)
"""The bounds ``metrics_minute.latency_buckets`` counts under (migration 0007)."""

_DURATION = re.compile(r"^([1-9][0-9]*)([mhd])$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}


def minutes(duration: str) -> int:
    """``"5m"``, ``"1h"``, ``"3d"`` in minutes."""
    match = _DURATION.match(duration)
    if match is None:
        raise ValueError(f"{duration!r} is not a duration such as 5m, 1h or 3d")
    return int(match.group(1)) * _UNIT_MINUTES[match.group(2)]


def _duration(value: str) -> str:
    minutes(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]
RuleName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]


class BurnRateWindows(_Strict):
    """Alert at ``severity`` when the error budget burns ``factor`` times too fast over both
    windows: the long one proves it matters, the short one that it is still happening."""

    severity: str = Field(pattern=r"^[a-z]+$")
    long: Duration
    short: Duration
    factor: float = Field(gt=0)


# Google's SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate alerts.
_WORKBOOK_WINDOWS = (
    BurnRateWindows(severity="page", long="1h", short="5m", factor=14.4),
    BurnRateWindows(severity="page", long="6h", short="30m", factor=6),
    BurnRateWindows(severity="ticket", long="3d", short="6h", factor=1),
)


class _Rule(_Strict):
    name: RuleName
    indicator: Indicator
    threshold_ms: int | None = Field(None, description="latency: what counts as slow")
    tenants: list[str] | None = None  # None: every tenant with traffic, each its own alert
    group_by: list[Dimension] = Field(default_factory=list)
    min_events: int = Field(1, ge=1)  # fewer runs than this in the long window: no verdict
    evaluators: list[str] | None = None  # eval_pass_rate: which verdicts count (None: all)

    @model_validator(mode="after")
    def _latency_has_a_bucket(self) -> Self:
        if self.evaluators is not None and self.indicator != "eval_pass_rate":
            raise ValueError("evaluators applies to eval_pass_rate rules only")
        if self.indicator == "latency" and self.threshold_ms not in LATENCY_BUCKETS_MS:
            raise ValueError(f"a latency rule needs threshold_ms, one of {LATENCY_BUCKETS_MS}")
        if self.indicator != "latency" and self.threshold_ms is not None:
            raise ValueError("threshold_ms applies to latency rules only")
        return self


class Slo(_Rule):
    """An objective for the share of good events (0.999: one bad in a thousand allowed)."""

    objective: float = Field(gt=0, lt=1)


class ThresholdRule(_Rule):
    """A plain limit: the bad-event ratio over ``window`` above ``above``."""

    above: float = Field(ge=0)
    window: Duration = "5m"
    severity: str = Field("warning", pattern=r"^[a-z]+$")
    min_events: int = Field(20, ge=1)


class Webhook(_Strict):
    """Where alert events are POSTed, signed with the secret in the environment variable
    ``secret_env`` (never in this file)."""

    name: RuleName
    url: AnyHttpUrl
    secret_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    severities: list[str] | None = None  # None: every severity
    timeout_s: float = Field(5.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_s: float = Field(0.5, gt=0)  # doubled per attempt, full jitter, capped at 30 s
    disable_after: int = Field(5, ge=1)  # consecutive alerts not delivered

    def wants(self, severity: str) -> bool:
        return self.severities is None or severity in self.severities


class Alerting(_Strict):
    evaluate_every_s: float = Field(30.0, gt=0)
    burn_rate_windows: list[BurnRateWindows] = Field(
        default_factory=lambda: list(_WORKBOOK_WINDOWS)
    )
    slos: list[Slo] = Field(default_factory=list)
    thresholds: list[ThresholdRule] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_are_unique(self) -> Self:
        for kind, names in (
            ("rule", [rule.name for rule in (*self.slos, *self.thresholds)]),
            ("webhook", [hook.name for hook in self.webhooks]),
        ):
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"{kind} names must be unique: {', '.join(repeated)}")
        return self


class ObservabilityConfig(_Strict):
    online: OnlineEvaluation = OnlineEvaluation()
    alerting: Alerting = Alerting()


DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "observability.yaml"


def load_observability_config(path: Path | None = None) -> ObservabilityConfig:
    """``path``, else ``OBSERVABILITY_CONFIG``, else ``configs/observability.yaml``."""
    return load_config(
        path or Path(os.environ.get("OBSERVABILITY_CONFIG") or DEFAULT_CONFIG), ObservabilityConfig
    )
