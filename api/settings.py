"""The API process's environment (names as in ``.env.example``); what it tunes is in
``configs/api.yaml`` (``API_CONFIG`` names another file)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from streams.projections_client import projections_database, projections_url
from streams.settings import Settings

__all__ = ["DEFAULT_CONFIG", "ApiSettings"]

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "api.yaml"


class ApiSettings(BaseModel):
    """``API_AUTH_MODE=dev`` (and only that) admits requests without a key as the dev tenant;
    ClickHouse is ``CLICKHOUSE_URL`` when set, else the projections' embedded query endpoint."""

    streams: Settings
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    auth_mode: Literal["keys", "dev"] = "keys"
    config_path: Path = DEFAULT_CONFIG
    redis_url: str | None = None
    clickhouse_url: str = Field(default_factory=lambda: projections_url({}))
    clickhouse_database: str = Field("platform", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ApiSettings:
        return cls(
            streams=Settings.from_env(environ),
            host=environ.get("API_HOST") or "127.0.0.1",
            port=int(environ.get("API_GATEWAY_PORT") or 8080),
            auth_mode="dev" if environ.get("API_AUTH_MODE") == "dev" else "keys",
            config_path=Path(environ.get("API_CONFIG") or DEFAULT_CONFIG),
            redis_url=environ.get("REDIS_URL") or None,
            clickhouse_url=projections_url(environ),
            clickhouse_database=projections_database(environ),
        )
