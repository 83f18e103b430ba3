"""The API process. For now: liveness, readiness (the broker answers) and Prometheus metrics;
the OpenAI-compatible endpoints and the WebSocket feed come with their issue."""

from __future__ import annotations

import asyncio

from confluent_kafka.admin import AdminClient
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.settings import Settings

__all__ = ["create_app"]

_BROKER_TIMEOUT_S = 2.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(title="LLM reliability platform", version="0.1.0")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        kafka = await asyncio.to_thread(_broker_reachable, settings.kafka_bootstrap_servers)
        ready = kafka == "ok"
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": {"kafka": kafka}},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _broker_reachable(bootstrap_servers: str | None) -> str:
    if not bootstrap_servers:
        return "KAFKA_BOOTSTRAP_SERVERS is not set"
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    try:
        admin.list_topics(timeout=_BROKER_TIMEOUT_S)
    except Exception as exc:
        return f"unreachable: {exc}"
    return "ok"
