"""``GET /v1/runs``: a page of the caller's tenant's runs, newest first, filtered;
``GET /v1/runs/{correlation_id}``: one run of the caller's tenant, folded from its events;
``POST /v1/runs/{correlation_id}/scores``: a score on it.

The events come from the projections' ``events`` table, joined with this replica's recent
events so a run that just ended reads complete before the projector has caught up (each
replica sees every event). Another tenant's run is a 404, exactly like a missing one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.auth import Principal
from api.errors import ApiError, HttpErrorCode, error_responses
from api.run_queries import RunFilter, decode_cursor, encode_cursor, run_page_sql, run_row
from api.run_view import RunSummary
from api.services import Services, authenticated, services_of
from api.waterfall import waterfall
from schemas.payloads import EvalScoreRecordedPayload
from streams.envelope import new_message
from streams.errors import ErrorCode
from streams.projections_client import ProjectionsUnavailable

__all__ = [
    "CORRELATION_ID",
    "RunPage",
    "RunRow",
    "RunView",
    "ScoreAccepted",
    "ScoreRequest",
    "router",
]

router = APIRouter(tags=["runs"])
CORRELATION_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
_NAME = r"^[A-Za-z0-9_.:/-]{1,128}$"


class RunRow(BaseModel):
    """One run as the list shows it: ``runs_latest``'s row (``GET /v1/runs/{id}`` has it all)."""

    correlation_id: str
    status: Literal["running", "completed", "failed"]
    mode: str
    provider: str | None
    model: str | None
    started_at: str
    ended_at: str | None
    latency_ms: int | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    attempts: int
    cache_hit: bool
    fallback_used: bool
    guardrail_blocked: bool
    guardrail_rules: list[str]
    error_code: str | None


class RunPage(BaseModel):
    """``next_cursor`` is None on the last page."""

    tenant_id: str
    runs: list[RunRow]
    next_cursor: str | None


@router.get(
    "/v1/runs",
    response_model=RunPage,
    responses=error_responses(401, 422, 503),
    summary="List runs, newest first: filters and keyset pagination (pass next_cursor back)",
)
async def list_runs(
    request: Request,
    principal: Annotated[Principal, Depends(authenticated)],
    status: Annotated[Literal["running", "completed", "failed"] | None, Query()] = None,
    provider: Annotated[str | None, Query(pattern=_NAME)] = None,
    model: Annotated[str | None, Query(pattern=_NAME)] = None,
    mode: Annotated[str | None, Query(pattern=_NAME)] = None,
    cache_hit: bool | None = None,
    fallback_used: bool | None = None,
    guardrail_blocked: bool | None = None,
    since: Annotated[datetime | None, Query(description="Started at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Started before (ISO 8601)")] = None,
    correlation_id: Annotated[
        str | None, Query(pattern=CORRELATION_ID, description="Correlation ids starting with this")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RunPage:
    try:
        after = decode_cursor(cursor) if cursor is not None else None
    except ValueError as error:
        raise ApiError(ErrorCode.INVALID_REQUEST, str(error), status=422) from error
    runs = RunFilter(
        status=status,
        provider=provider,
        model=model,
        mode=mode,
        cache_hit=cache_hit,
        fallback_used=fallback_used,
        guardrail_blocked=guardrail_blocked,
        since=since,
        until=until,
        correlation_id_prefix=correlation_id,
    )
    projections = services_of(request).projections
    sql = run_page_sql(projections.database, principal.tenant, runs, after, limit + 1)
    try:
        rows = await projections.rows(sql)
    except ProjectionsUnavailable as error:
        raise ApiError(
            ErrorCode.DEPENDENCY_UNAVAILABLE, "run projections unavailable; retry"
        ) from error
    more = len(rows) > limit
    return RunPage(
        tenant_id=principal.tenant,
        runs=[RunRow(**run_row(row)) for row in rows[:limit]],
        next_cursor=encode_cursor(rows[limit - 1]) if more else None,
    )


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
    scores: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    events: list[dict[str, Any]]
    waterfall: list[dict[str, Any]]
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
    events, truncated = await _run_events(services, principal.tenant, correlation_id)
    summary = RunSummary.of(events)
    if summary is None:
        raise ApiError(HttpErrorCode.NOT_FOUND, f"no run {correlation_id} for this tenant")
    return RunView(
        **summary.state(), events=events, waterfall=waterfall(events), truncated=truncated
    )


class ScoreRequest(BaseModel):
    """Thumbs (``value: true|false``), a number, a label, or both; and a comment."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    value: float | bool | None = None
    label: Annotated[str | None, Field(max_length=64)] = None
    comment: Annotated[str | None, Field(max_length=2000)] = None
    score_id: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")] = None

    @model_validator(mode="after")
    def _something_scored(self) -> ScoreRequest:
        if self.value is None and self.label is None:
            raise ValueError("a score needs a value, a label or both")
        return self


class ScoreAccepted(BaseModel):
    score_id: str
    correlation_id: str
    status: Literal["accepted"] = "accepted"


@router.post(
    "/v1/runs/{correlation_id}/scores",
    status_code=202,
    response_model=ScoreAccepted,
    responses=error_responses(401, 404, 422, 503),
    summary="Score a run (thumbs, a number, a label, a comment)",
)
async def score_run(
    request: Request,
    correlation_id: Annotated[str, Path(pattern=CORRELATION_ID)],
    body: ScoreRequest,
    principal: Annotated[Principal, Depends(authenticated)],
) -> JSONResponse:
    """An ``eval.score.recorded`` event on the run, projected into ``eval_results`` and shown
    on the run. Sending the same ``score_id`` again replaces that score."""
    services = services_of(request)
    services.kafka()  # 503 before any read while the bus is not there
    events, _ = await _run_events(services, principal.tenant, correlation_id)
    if not events:
        raise ApiError(HttpErrorCode.NOT_FOUND, f"no run {correlation_id} for this tenant")
    score_id = body.score_id or f"score_{uuid.uuid4().hex}"
    payload: EvalScoreRecordedPayload = {
        "score_id": score_id,
        "name": body.name,
        "value": float(body.value) if body.value is not None else None,
        "label": body.label,
        "comment": body.comment,
        "source": "user",
        "scored_by": principal.key_id,
    }
    event = new_message(
        "eval.score.recorded",
        payload,
        correlation_id=correlation_id,
        tenant_id=principal.tenant,
        writer=services.writer,
    )
    await services.publish(event)
    accepted = ScoreAccepted(score_id=score_id, correlation_id=correlation_id)
    return JSONResponse(accepted.model_dump(), status_code=202)


async def _run_events(
    services: Services, tenant: str, correlation_id: str
) -> tuple[list[dict[str, Any]], bool]:
    """The run's events: the projections' and this replica's recent ones; and whether the
    projections had more than the history limit."""
    limit = services.config.feed.history_limit
    recent = [dict(item.event) for item in services.recent.of_run(tenant, correlation_id)]
    try:
        projected = await services.history.run_events(tenant, correlation_id, limit)
    except ProjectionsUnavailable as error:
        if not recent:
            raise ApiError(
                ErrorCode.DEPENDENCY_UNAVAILABLE, "run projections unavailable; retry"
            ) from error
        projected = []
    known = {event["event_id"] for event in recent}
    return [e for e in projected if e["event_id"] not in known] + recent, len(projected) >= limit
