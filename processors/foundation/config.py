"""Layer 1's configuration: ``configs/{providers,routing,guardrails,budgets}.yaml`` validated
into typed models (errors name file, line, field) and reloaded when a file changes."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.config import ConfigError, ConfigProblem, load_config, problem_at

__all__ = [
    "BreakerSettings",
    "BudgetSettings",
    "FoundationConfig",
    "GuardrailPolicy",
    "GuardrailSettings",
    "LatencyModel",
    "ModelPrice",
    "PiiEntity",
    "ProviderSettings",
    "ProvidersFile",
    "Route",
    "RouteTarget",
    "RoutingFile",
    "SimulationSettings",
    "TenantBudget",
    "WindowLimit",
    "load_foundation_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- providers.yaml ------------------------------------------------------------------------


class ModelPrice(_Strict):
    """USD per million tokens."""

    input_usd_per_mtok: float = Field(0.0, ge=0)
    output_usd_per_mtok: float = Field(0.0, ge=0)


class LatencyModel(_Strict):
    """Simulated latency: lognormal with the given median and p99 (ms), or fixed at ``p50_ms``."""

    distribution: Literal["fixed", "lognormal"] = "lognormal"
    p50_ms: float = Field(50.0, ge=0)
    p99_ms: float = Field(200.0, ge=0)


class SimulationSettings(_Strict):
    latency: LatencyModel = LatencyModel()
    error_rate: float = Field(0.0, ge=0, le=1)
    error_kind: Literal["server_error", "timeout", "rate_limited"] = "server_error"
    cut_rate: float = Field(0.0, ge=0, le=1)  # streams dropped halfway through their words
    completion_tokens: int = Field(32, ge=1)
    seed: int = 0


class ProviderSettings(_Strict):
    kind: Literal["openai", "anthropic", "simulated"] = "openai"
    enabled: bool = True
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_ms: int = Field(30_000, ge=1)
    # A stream that has begun and then sends nothing for this long is cut (and continued by
    # the next attempt); null: only timeout_ms bounds it. The wait for the first chunk is not
    # counted (a model may think long before it speaks).
    stream_idle_timeout_ms: int | None = Field(10_000, ge=1)
    max_in_flight: int = Field(200, ge=1)
    continues_streams: bool = True  # False: its models cannot go on from a cut answer
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    simulation: SimulationSettings = SimulationSettings()

    @model_validator(mode="after")
    def _endpoint_for_real_providers(self) -> ProviderSettings:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("an openai-compatible provider needs base_url")
        return self


class ProvidersFile(_Strict):
    providers: dict[str, ProviderSettings]

    def price(self, target: RouteTarget) -> ModelPrice | None:
        """The configured price of ``target``'s model; None when the list has none."""
        return self.providers[target.provider].models.get(target.model)

    def continuing(self) -> frozenset[str]:
        """The providers whose models can go on from a cut streamed answer."""
        return frozenset(name for name, p in self.providers.items() if p.continues_streams)


# --- routing.yaml --------------------------------------------------------------------------


class RouteTarget(_Strict):
    provider: str
    model: str
    weight: float = Field(1.0, gt=0)


class _RouteMatch(_Strict):
    """Glob patterns; ``*`` matches anything, an absent model hint matches only ``*``."""

    mode: str = "*"
    tenant: str = "*"
    model: str = "*"

    def matches(self, mode: str, tenant: str, model_hint: str | None) -> bool:
        return (
            fnmatchcase(mode, self.mode)
            and fnmatchcase(tenant, self.tenant)
            and (
                self.model == "*"
                or (model_hint is not None and fnmatchcase(model_hint, self.model))
            )
        )


class _RoutePolicy(_Strict):
    primary: RouteTarget
    fallbacks: list[RouteTarget] = Field(default_factory=list)


class _Constraints(_Strict):
    max_latency_ms: int | None = Field(None, ge=1)


class _Retry(_Strict):
    max_attempts: int = Field(2, ge=1, le=10)
    base_delay_ms: int = Field(100, ge=0)
    max_delay_ms: int = Field(2_000, ge=0)


class _CacheSettings(_Strict):
    exact: bool = True
    ttl_s: int = Field(3_600, ge=1)
    semantic: bool = False
    semantic_threshold: float = Field(0.95, gt=0, le=1)


class Route(_Strict):
    id: str
    match: _RouteMatch = _RouteMatch()
    strategy: Literal["ordered", "weighted", "lowest_latency"] = "ordered"
    policy: _RoutePolicy
    constraints: _Constraints = _Constraints()
    retry: _Retry = _Retry()
    cache: _CacheSettings = _CacheSettings()
    # A stream cut after some text: the next attempt continues it, or starts over (and the
    # client gets a retryable error if the new answer does not extend what it was sent).
    stream_resume: Literal["continue", "restart_error"] = "continue"

    def targets(self) -> list[RouteTarget]:
        return [self.policy.primary, *self.policy.fallbacks]


class BreakerSettings(_Strict):
    failure_threshold: int = Field(5, ge=1)
    window_s: float = Field(30.0, gt=0)
    open_for_s: float = Field(15.0, gt=0)
    half_open_probes: int = Field(1, ge=1)


class RoutingFile(_Strict):
    routes: list[Route] = Field(min_length=1)
    breaker: BreakerSettings = BreakerSettings()

    def route_for(self, mode: str, tenant: str, model_hint: str | None) -> Route | None:
        """The first route whose match fits, in file order."""
        return next((r for r in self.routes if r.match.matches(mode, tenant, model_hint)), None)

    def route_by_id(self, route_id: str) -> Route | None:
        return next((r for r in self.routes if r.id == route_id), None)


# --- guardrails.yaml -----------------------------------------------------------------------

PiiEntity = Literal["email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "secret"]
GuardrailAction = Literal["redact", "block", "flag"]
_ALL_PII: list[PiiEntity] = [
    "email",
    "phone",
    "credit_card",
    "iban",
    "us_ssn",
    "ip_address",
    "secret",
]


class _PiiRule(_Strict):
    action: GuardrailAction = "redact"
    entities: list[PiiEntity] = Field(default_factory=lambda: list(_ALL_PII))


class _InjectionRule(_Strict):
    action: GuardrailAction = "block"
    threshold: float = Field(0.7, gt=0, le=1)


class _TermRule(_Strict):
    action: GuardrailAction = "block"
    terms: list[str] = Field(default_factory=list)


class _OutputRules(_Strict):
    pii: _PiiRule | None = _PiiRule()
    deny_terms: _TermRule | None = None


class GuardrailPolicy(_Strict):
    pii: _PiiRule | None = _PiiRule()
    injection: _InjectionRule | None = _InjectionRule()
    deny_terms: _TermRule | None = None
    allow_models: list[str] = Field(default_factory=list)  # globs; empty allows all
    deny_models: list[str] = Field(default_factory=list)
    output: _OutputRules = _OutputRules()


class GuardrailSettings(_Strict):
    policies: dict[str, GuardrailPolicy]
    tenants: dict[str, str] = Field(default_factory=dict)  # tenant -> policy; "*" default

    @model_validator(mode="after")
    def _tenants_name_policies(self) -> GuardrailSettings:
        for tenant, policy in self.tenants.items():
            if policy not in self.policies:
                raise ValueError(f"tenant {tenant!r} names unknown policy {policy!r}")
        return self

    def policy_for(self, tenant: str) -> tuple[str, GuardrailPolicy] | None:
        name = self.tenants.get(tenant, self.tenants.get("*"))
        return (name, self.policies[name]) if name is not None else None


# --- budgets.yaml --------------------------------------------------------------------------

Window = Literal["minute", "day", "month"]


class WindowLimit(_Strict):
    tokens: int | None = Field(None, ge=0)
    cost_usd: float | None = Field(None, ge=0)


class _PerRequest(_Strict):
    max_tokens: int | None = Field(None, ge=1)
    max_cost_usd: float | None = Field(None, gt=0)


class _Burst(_Strict):
    requests_per_second: int | None = Field(None, ge=1)


class TenantBudget(_Strict):
    windows: dict[Window, WindowLimit] = Field(default_factory=dict)
    per_request: _PerRequest = _PerRequest()
    burst: _Burst = _Burst()
    on_exceeded: Literal["reject", "degrade"] = "reject"
    degrade_route: str | None = None

    @model_validator(mode="after")
    def _degrade_needs_route(self) -> TenantBudget:
        if self.on_exceeded == "degrade" and not self.degrade_route:
            raise ValueError("on_exceeded: degrade needs degrade_route (a route id)")
        return self


class BudgetSettings(_Strict):
    on_store_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    tenants: dict[str, TenantBudget]  # "*" applies to tenants not listed

    def budget_for(self, tenant: str) -> TenantBudget | None:
        return self.tenants.get(tenant, self.tenants.get("*"))


# --- all four ------------------------------------------------------------------------------


class FoundationConfig(_Strict):
    providers: ProvidersFile
    routing: RoutingFile
    guardrails: GuardrailSettings
    budgets: BudgetSettings


def load_foundation_config(directory: Path) -> FoundationConfig:
    """Load and cross-check the four files; every problem is reported with file and line."""
    providers = load_config(directory / "providers.yaml", ProvidersFile)
    routing = load_config(directory / "routing.yaml", RoutingFile)
    guardrails = load_config(directory / "guardrails.yaml", GuardrailSettings)
    budgets = load_config(directory / "budgets.yaml", BudgetSettings)
    problems = _dangling_references(directory, providers, routing, budgets)
    if problems:
        raise ConfigError(problems)
    return FoundationConfig(
        providers=providers, routing=routing, guardrails=guardrails, budgets=budgets
    )


def _dangling_references(
    directory: Path, providers: ProvidersFile, routing: RoutingFile, budgets: BudgetSettings
) -> list[ConfigProblem]:
    """Routes must name known providers; degrade routes must exist."""
    problems = []
    for r, route in enumerate(routing.routes):
        places = [("primary",), *(("fallbacks", i) for i in range(len(route.policy.fallbacks)))]
        for place, target in zip(places, route.targets(), strict=True):
            if target.provider not in providers.providers:
                problems.append(
                    problem_at(
                        directory / "routing.yaml",
                        ("routes", r, "policy", *place, "provider"),
                        f"unknown provider {target.provider!r} (not in providers.yaml)",
                    )
                )
    for tenant, budget in budgets.tenants.items():
        if budget.degrade_route and routing.route_by_id(budget.degrade_route) is None:
            problems.append(
                problem_at(
                    directory / "budgets.yaml",
                    ("tenants", tenant, "degrade_route"),
                    f"unknown route {budget.degrade_route!r} (not in routing.yaml)",
                )
            )
    return problems
