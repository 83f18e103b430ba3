"""``GET /v1/runs/{correlation_id}``: one run of the caller's tenant, folded from its events.

The events come from the projections' ``events`` table, joined with this replica's recent
events so a run that just ended reads complete before the projector has caught up (each
replica sees every event). Another tenant's run is a 404, exactly like a missing one."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from api.auth import Principal
from api.errors import ApiError, HttpErrorCode, error_responses
from api.projections_client import ProjectionsUnavailable
from api.run_view import RunSummary
from api.services import authenticated, services_of
from streams.errors import ErrorCode

__all__ = ["CORRELATION_ID", "RunView", "router"]

router = APIRouter(tags=["runs"])
CORRELATION_ID = r"^[A-Za-z0-9_.:-]{1,128}$"


class RunView(BaseModel):
    correlation_id: str
    tenant_id: str
    status: Literal["running", "completed", "failed"]
    started_at: str | None
    ended_at: str | None
    output: dict[str, Any] | None
    error: dict[str, Any] | None
    usage: dict[str, int] | None
    cost_usd: float
    saved_cost_usd: float
    provider: str | None
    model: str | None
    latency_ms: int | None
    attempts: int
    cache_hit: bool
    fallback_used: bool
    router_decisions: list[dict[str, Any]]
    guardrail_flags: list[dict[str, Any]]
    trace_ids: list[str]
    events: list[dict[str, Any]]
    truncated: bool


@router.get(
    "/v1/runs/{correlation_id}",
    response_model=RunView,
    responses=error_responses(401, 404, 422, 503),
    summary="Read one run: state, outputs, ordered events, decisions, usage, cost",
)
async def get_run(
    request: Request,
    correlation_id: Annotated[str, Path(pattern=CORRELATION_ID)],
    principal: Annotated[Principal, Depends(authenticated)],
) -> RunView:
    services = services_of(request)
    limit = services.config.feed.history_limit
    recent = [dict(item.event) for item in services.recent.of_run(principal.tenant, correlation_id)]
    try:
        projected = await services.history.run_events(principal.tenant, correlation_id, limit)
    except ProjectionsUnavailable as error:
        if not recent:
            raise ApiError(
                ErrorCode.DEPENDENCY_UNAVAILABLE, "run projections unavailable; retry"
            ) from error
        projected = []
    known = {event["event_id"] for event in recent}
    events = [e for e in projected if e["event_id"] not in known] + recent
    summary = RunSummary.of(events)
    if summary is None:
        raise ApiError(HttpErrorCode.NOT_FOUND, f"no run {correlation_id} for this tenant")
    return RunView(**summary.state(), events=events, truncated=len(projected) >= limit)
