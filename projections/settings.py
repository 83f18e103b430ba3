"""Projector settings from the environment (names as in ``.env.example`` and PROJECTIONS.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field

from projections.store import ProjectionStore, open_store

__all__ = ["ProjectionSettings"]


class ProjectionSettings(BaseModel):
    """Embedded chDB under ``data_dir`` unless ``clickhouse_url`` names a server."""

    data_dir: Path = Path(".data/chdb")
    clickhouse_url: str | None = None
    database: str = Field("platform", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    query_port: int = Field(8124, ge=0, le=65535)
    events_ttl_days: int = Field(30, ge=1)
    batch_size: int = Field(60_000, ge=1)
    batch_wait_ms: int = Field(1000, ge=1)
    group_id: str = "projector"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ProjectionSettings:
        names = {
            "data_dir": "PROJECTIONS_DATA_DIR",
            "clickhouse_url": "CLICKHOUSE_URL",
            "database": "PROJECTIONS_DATABASE",
            "query_port": "PROJECTIONS_QUERY_PORT",
            "events_ttl_days": "PROJECTIONS_EVENTS_TTL_DAYS",
            "batch_size": "PROJECTIONS_BATCH_SIZE",
            "batch_wait_ms": "PROJECTIONS_BATCH_WAIT_MS",
            "group_id": "PROJECTIONS_GROUP_ID",
        }
        return cls.model_validate(
            {field: environ[env] for field, env in names.items() if environ.get(env)}
        )

    @property
    def query_url(self) -> str:
        """Where readers send SQL: the server, or the projector's loopback endpoint."""
        return self.clickhouse_url or f"http://127.0.0.1:{self.query_port}"

    def open_store(self) -> ProjectionStore:
        return open_store(self.data_dir, self.clickhouse_url)
