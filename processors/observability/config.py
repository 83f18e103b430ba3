"""``configs/observability.yaml`` validated (errors name file, line and field): which online
evaluators run and on what share of runs, per tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from streams.config import load_config

__all__ = [
    "ALL_EVALUATORS",
    "EvaluatorName",
    "ObservabilityConfig",
    "OnlineEvaluation",
    "load_observability_config",
]

EvaluatorName = Literal["empty", "truncated", "refusal", "guardrail_flags", "tool_arguments"]
ALL_EVALUATORS: tuple[EvaluatorName, ...] = get_args(EvaluatorName)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TenantSampling(_Strict):
    sample_rate: float = Field(ge=0, le=1)


class OnlineEvaluation(_Strict):
    sample_rate: float = Field(1.0, ge=0, le=1)
    tenants: dict[str, _TenantSampling] = Field(default_factory=dict)
    evaluators: list[EvaluatorName] = Field(default_factory=lambda: list(ALL_EVALUATORS))

    def rate_for(self, tenant: str) -> float:
        sampling = self.tenants.get(tenant)
        return sampling.sample_rate if sampling is not None else self.sample_rate


class ObservabilityConfig(_Strict):
    online: OnlineEvaluation = OnlineEvaluation()


def load_observability_config(path: Path) -> ObservabilityConfig:
    return load_config(path, ObservabilityConfig)
