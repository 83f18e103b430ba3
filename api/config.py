"""``configs/api.yaml`` as typed models: keys (as SHA-256 hashes) and their tenants and limits,
request limits, the request-reply timings and the live feed's bounds."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.config import load_config

__all__ = [
    "HUB_BATCH",
    "ApiConfig",
    "ApiKey",
    "ChatSettings",
    "FeedSettings",
    "RateLimits",
    "load_api_config",
]

_TENANT = r"^[A-Za-z0-9_.-]{1,64}$"
HUB_BATCH = 500  # events the hub reads and dispatches at once


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimits(_Strict):
    """Per key: requests and tokens (prompt estimate + completion) per minute."""

    rpm: int = Field(600, ge=1)
    tpm: int = Field(1_000_000, ge=1)


class ApiKey(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    tenant: str = Field(pattern=_TENANT)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    limits: RateLimits | None = None


class DevMode(_Strict):
    tenant: str = Field("default", pattern=_TENANT)


class AdminKey(_Strict):
    """A key for the admin API (``/v1/admin/keys``); no tenant, no traffic."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Auth(_Strict):
    keys: list[ApiKey] = Field(default_factory=list)
    admin_keys: list[AdminKey] = Field(default_factory=list)
    dev: DevMode = DevMode()

    @model_validator(mode="after")
    def _unique(self) -> Auth:
        for attribute in ("id", "sha256"):
            values = [getattr(key, attribute) for key in self.keys]
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise ValueError(f"duplicate key {attribute}: {', '.join(duplicates)}")
        return self


class Limits(_Strict):
    default: RateLimits = RateLimits()
    max_body_bytes: int = Field(1_048_576, ge=1024)


class ChatSettings(_Strict):
    """``wait_timeout_s`` bounds how long a call waits; ``run_deadline_s`` is the command's
    deadline, longer, so a run outlives a client that gave up (fetch it from /v1/runs).
    ``max_in_flight`` bounds the calls one replica waits for at once, ``max_queue_delay_ms``
    how long admitted runs may queue before a processor starts them: beyond either a call is
    refused at once rather than queued past every deadline (``api/in_flight.py``)."""

    wait_timeout_s: float = Field(60.0, gt=0)
    run_deadline_s: float = Field(300.0, gt=0)
    publish_timeout_s: float = Field(5.0, gt=0)
    idempotency_ttl_s: int = Field(86_400, ge=60)
    max_in_flight: int = Field(256, ge=1)
    max_queue_delay_ms: float = Field(100.0, gt=0)

    @model_validator(mode="after")
    def _deadline_outlives_wait(self) -> ChatSettings:
        if self.run_deadline_s < self.wait_timeout_s:
            raise ValueError("run_deadline_s must be at least wait_timeout_s")
        return self


class FeedSettings(_Strict):
    """``client_queue`` is at least twice the hub's batch (``HUB_BATCH``): one batch lands in
    every queue at once, so only a client that fell behind by more than that is cut off."""

    heartbeat_s: float = Field(15.0, gt=0)
    client_queue: int = Field(1000, ge=2 * HUB_BATCH)
    tenant_buffer: int = Field(10_000, ge=1)
    history_limit: int = Field(10_000, ge=1)


class ApiConfig(_Strict):
    auth: Auth = Auth()
    limits: Limits = Limits()
    chat: ChatSettings = ChatSettings()
    feed: FeedSettings = FeedSettings()


def load_api_config(path: Path) -> ApiConfig:
    return load_config(path, ApiConfig)
