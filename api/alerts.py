"""``GET /v1/alerts``: the caller's tenant's alerts as the projections' ``alerts`` table holds
them (one row per alert, its latest event winning): firing ones for the dashboard's overview,
or resolved ones too. Live changes arrive on the feed as ``alert.triggered|resolved``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api.auth import Principal
from api.errors import ApiError, error_responses
from api.history import iso_timestamp
from api.services import authenticated, services_of
from streams.errors import ErrorCode
from streams.projections_client import ProjectionsUnavailable, sql_literal

__all__ = ["Alert", "AlertList", "router"]

router = APIRouter(tags=["alerts"])


class Alert(BaseModel):
    """The ``alerts`` row: what fired, when, and what its evaluation saw."""

    alert_id: str
    rule: str
    kind: str
    severity: str
    indicator: str
    state: Literal["firing", "resolved"]
    fired_at: str
    resolved_at: str | None
    value: float
    threshold: float
    labels: dict[str, str]
    message: str


class AlertList(BaseModel):
    tenant_id: str
    alerts: list[Alert]


@router.get(
    "/v1/alerts",
    response_model=AlertList,
    responses=error_responses(401, 422, 503),
    summary="The tenant's alerts, latest fired first: firing ones by default",
)
async def list_alerts(
    request: Request,
    principal: Annotated[Principal, Depends(authenticated)],
    state: Annotated[Literal["firing", "resolved", "all"], Query()] = "firing",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertList:
    projections = services_of(request).projections
    where = f"tenant_id = {sql_literal(principal.tenant)}"
    if state != "all":
        where += f" AND state = {sql_literal(state)}"
    sql = (
        "SELECT alert_id, rule, kind, severity, indicator, state, fired_at, resolved_at, "  # noqa: S608 - tenant and state are literals
        f"value, threshold, labels, message FROM {projections.database}.alerts FINAL "
        f"WHERE {where} ORDER BY fired_at DESC, alert_id LIMIT {int(limit)}"
    )
    try:
        rows = await projections.rows(sql)
    except ProjectionsUnavailable as error:
        raise ApiError(ErrorCode.DEPENDENCY_UNAVAILABLE, "alerts unavailable; retry") from error
    return AlertList(
        tenant_id=principal.tenant,
        alerts=[
            Alert(
                **{
                    **row,
                    "fired_at": iso_timestamp(str(row["fired_at"])),
                    "resolved_at": iso_timestamp(str(row["resolved_at"]))
                    if row["resolved_at"]
                    else None,
                }
            )
            for row in rows
        ],
    )
