"""Process settings from the environment (names as in ``.env.example``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, Field

__all__ = ["Settings"]


class Settings(BaseModel):
    """``KAFKA_BOOTSTRAP_SERVERS`` unset means: start a local broker (``streams.local_kafka``)."""

    env: str = "dev"
    kafka_bootstrap_servers: str | None = None
    schema_registry_url: str | None = None
    topic_prefix: str = ""
    metrics_port: int | None = Field(None, ge=0, le=65535)
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            env=environ.get("ENV", "dev"),
            kafka_bootstrap_servers=environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            schema_registry_url=environ.get("SCHEMA_REGISTRY_URL") or None,
            topic_prefix=environ.get("TOPIC_PREFIX", ""),
            metrics_port=int(environ["METRICS_PORT"]) if environ.get("METRICS_PORT") else None,
            log_level=environ.get("LOG_LEVEL", "INFO"),
        )
