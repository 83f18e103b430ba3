"""``/v1/analytics/*``: the caller's tenant's traffic as the projections roll it up per minute -
latency percentiles, cost by model, error and fallback rates, cache hit ratio, top guardrail
rules. Every query is scoped to the key's tenant; no parameter can name another.

Time series are zero-filled (every bucket of the window, in order) so a chart needs no gap
handling; ratios are None where nothing was counted. See docs/API.md."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api.analytics_queries import (
    Interval,
    Window,
    cache_point,
    cost_group,
    error_point,
    filled,
    guardrail_rules_sql,
    latency_point,
    metrics_sql,
)
from api.auth import Principal
from api.errors import ApiError, error_responses
from api.services import authenticated, services_of
from streams.errors import ErrorCode
from streams.projections_client import ProjectionsUnavailable

__all__ = ["router"]

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

_NAME = r"^[A-Za-z0-9_.:/-]{1,128}$"
_ERRORS = error_responses(401, 422, 503)

Start = Annotated[
    datetime | None, Query(description="Window start, ISO 8601 (UTC if no offset); default end-24h")
]
End = Annotated[datetime | None, Query(description="Window end (exclusive); default now")]
Every = Annotated[Interval, Query(description="Bucket width of the series")]
Provider = Annotated[str | None, Query(pattern=_NAME, description="Only this provider")]
Model = Annotated[str | None, Query(pattern=_NAME, description="Only this model")]
Caller = Annotated[Principal, Depends(authenticated)]
Point = Callable[[Mapping[str, Any]], dict[str, Any]]


class Report(BaseModel):
    """Whose numbers, over which window (``end`` exclusive)."""

    tenant_id: str
    start: datetime
    end: datetime


class Series(Report):
    interval: Interval
    total: dict[str, Any]
    series: list[dict[str, Any]]


class CostReport(Report):
    total: dict[str, Any]
    groups: list[dict[str, Any]]


class GuardrailReport(Report):
    rules: list[dict[str, Any]]


def _window(
    start: datetime | None, end: datetime | None, interval: Interval | None = None
) -> Window:
    """A series' window in ``interval`` buckets, or (without one) a whole window, in minutes."""
    try:
        return Window.of(start, end, interval or Interval.MINUTE, series=interval is not None)
    except ValueError as error:
        raise ApiError(ErrorCode.INVALID_REQUEST, str(error), status=422) from error


async def _rows(request: Request, *queries: str) -> list[list[dict[str, Any]]]:
    projections = services_of(request).projections
    try:
        return list(await asyncio.gather(*(projections.rows(sql) for sql in queries)))
    except ProjectionsUnavailable as error:
        raise ApiError(ErrorCode.DEPENDENCY_UNAVAILABLE, "analytics unavailable; retry") from error


async def _series(
    request: Request,
    principal: Principal,
    window: Window,
    point: Point,
    provider: str | None = None,
    model: str | None = None,
) -> Series:
    database = services_of(request).projections.database
    by_bucket, whole = await _rows(
        request,
        metrics_sql(database, principal.tenant, window, ("bucket",), provider, model),
        metrics_sql(database, principal.tenant, window, (), provider, model),
    )
    return Series(
        tenant_id=principal.tenant,
        start=window.start,
        end=window.end,
        interval=window.interval,
        total=point(whole[0] if whole else {}),
        series=[{"bucket": at, **point(row)} for at, row in filled(window, by_bucket)],
    )


def _series_route(path: str, point: Point, summary: str) -> None:
    """One time-series endpoint: the same window, interval and filters, its own point."""

    async def series(
        request: Request,
        principal: Caller,
        start: Start = None,
        end: End = None,
        interval: Every = Interval.HOUR,
        provider: Provider = None,
        model: Model = None,
    ) -> Series:
        window = _window(start, end, interval)
        return await _series(request, principal, window, point, provider, model)

    router.add_api_route(
        path,
        series,
        methods=["GET"],
        response_model=Series,
        responses=_ERRORS,
        summary=summary,
        name=f"analytics_{path.strip('/')}",
    )


_series_route(
    "/latency", latency_point, "Latency percentiles (p50/p95/p99) of completed requests over time"
)
_series_route(
    "/errors", error_point, "Error and fallback rates, errors by code, budget rejections over time"
)
_series_route("/cache", cache_point, "Cache hit ratio and the cost the cache saved, over time")


@router.get(
    "/cost",
    response_model=CostReport,
    responses=_ERRORS,
    summary="Cost and tokens by provider and model (or by provider), most expensive first",
)
async def cost(
    request: Request,
    principal: Caller,
    start: Start = None,
    end: End = None,
    group_by: Annotated[Literal["model", "provider"], Query()] = "model",
) -> CostReport:
    window = _window(start, end)
    database = services_of(request).projections.database
    keys = ("provider", "model") if group_by == "model" else ("provider",)
    grouped, whole = await _rows(
        request,
        metrics_sql(database, principal.tenant, window, keys),
        metrics_sql(database, principal.tenant, window, ()),
    )
    groups = [
        {**{key: row[key] for key in keys}, **cost_group(row)}
        for row in grouped
        if row["provider"]  # requests that failed before any target count in the total only
    ]
    return CostReport(
        tenant_id=principal.tenant,
        start=window.start,
        end=window.end,
        total=cost_group(whole[0] if whole else {}),
        groups=sorted(groups, key=lambda group: (-group["cost_usd"], *map(group.get, keys))),
    )


@router.get(
    "/guardrails",
    response_model=GuardrailReport,
    responses=_ERRORS,
    summary="The most violated guardrail rules, with their stage and action",
)
async def guardrails(
    request: Request,
    principal: Caller,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> GuardrailReport:
    window = _window(start, end)
    database = services_of(request).projections.database
    (rows,) = await _rows(request, guardrail_rules_sql(database, principal.tenant, window, limit))
    return GuardrailReport(
        tenant_id=principal.tenant,
        start=window.start,
        end=window.end,
        rules=[
            {**row, "violations": int(row["violations"]), "runs": int(row["runs"])} for row in rows
        ],
    )
