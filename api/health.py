"""Liveness, readiness and metrics. Ready means: this replica's hub is positioned on the event
topics, the broker answers, and ClickHouse (server or embedded query endpoint) answers."""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import error_payload, error_responses
from api.services import Services, services_of
from streams.errors import ErrorCode
from streams.projections_client import ProjectionsUnavailable

__all__ = ["router"]

router = APIRouter(tags=["health"])
_BROKER_TIMEOUT_S = 2.0


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Kafka and ClickHouse are reachable",
    responses=error_responses(503),
)
async def readyz(request: Request) -> JSONResponse:
    services = services_of(request)
    kafka, clickhouse = await asyncio.gather(_kafka(services), _clickhouse(services))
    checks = {"kafka": kafka, "clickhouse": clickhouse}
    if all(check == "ok" for check in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = "; ".join(f"{name}: {check}" for name, check in checks.items() if check != "ok")
    body: dict[str, Any] = error_payload(
        ErrorCode.DEPENDENCY_UNAVAILABLE.value,
        f"not ready: {failing}",
        True,
        request.state.correlation_id,
    )
    return JSONResponse({**body, "status": "not_ready", "checks": checks}, status_code=503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _kafka(services: Services) -> str:
    link = services.kafka_link
    if link is None:
        return "KAFKA_BOOTSTRAP_SERVERS is not set"
    if not link.hub.ready:
        return "event hub not positioned yet"
    if not link.keys.ready:
        return "managed keys not read yet"
    return await asyncio.to_thread(
        _broker_reachable, str(services.settings.streams.kafka_bootstrap_servers)
    )


def _broker_reachable(bootstrap_servers: str) -> str:
    try:
        AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(timeout=_BROKER_TIMEOUT_S)
    except Exception as error:
        return f"unreachable: {error}"
    return "ok"


async def _clickhouse(services: Services) -> str:
    try:
        await services.projections.ping()
    except ProjectionsUnavailable as error:
        return f"unreachable: {error}"
    return "ok"
