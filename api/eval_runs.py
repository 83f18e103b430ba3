"""``/v1/eval-runs``: offline eval runs as events. A runner (``python -m
processors.observability.evals run``) replays a dataset version through
``/v1/chat/completions`` like any client and reports here: the run's start
(``eval.run.started``), each item's answer and verdicts (``eval.item.scored``, projected into
``eval_results``) and its end with the aggregates it measured (``eval.run.completed``). The API
stamps tenant and key and checks that a run exists before taking its results; reads come from
the projections, and a comparison lists the items that got worse."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal
from api.dataset_items import ITEM_ID
from api.datasets import DATASET_NAME, VERSION
from api.errors import ApiError, FieldProblem, HttpErrorCode, error_responses
from api.eval_queries import (
    aggregates_sql,
    eval_runs_sql,
    read,
    regressions_sql,
    scored_items_sql,
    versions_sql,
)
from api.runs import CORRELATION_ID
from api.services import Services, authenticated, services_of
from schemas.payloads import (
    EvalItemScoredPayload,
    EvalRunCompletedPayload,
    EvalRunStartedPayload,
)
from streams.envelope import Envelope, derived_id, new_message, random_ids
from streams.errors import ErrorCode

__all__ = ["router"]

router = APIRouter(prefix="/v1/eval-runs", tags=["eval runs"])
STARTED = "eval.run.started"
SCORED = "eval.item.scored"
COMPLETED = "eval.run.completed"

RunId = Annotated[str, Path(pattern=CORRELATION_ID)]
Caller = Annotated[Principal, Depends(authenticated)]
_Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
_Short = Annotated[str, Field(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRequest(_Strict):
    dataset: Annotated[str, Field(pattern=DATASET_NAME)]
    dataset_version: Annotated[str, Field(pattern=VERSION)]
    model: _Short
    evaluators: list[Annotated[str, Field(pattern=r"^[a-z_]{1,32}(:[\s\S]{1,500})?$")]] = Field(
        min_length=1, max_length=32
    )
    baseline: Annotated[str, Field(pattern=CORRELATION_ID)] | None = None


class Started(BaseModel):
    eval_run_id: str
    dataset: str
    dataset_version: str
    item_count: int


class Verdict(_Strict):
    evaluator: Annotated[str, Field(min_length=1, max_length=512)]
    score: _Score
    passed: bool
    label: Annotated[str, Field(max_length=256)] | None = None


class ItemOutcome(_Strict):
    """An answered item (``output``) or a failed call (``error_code``); verdicts either way."""

    item_id: Annotated[str, Field(pattern=ITEM_ID)]
    run_id: Annotated[str, Field(pattern=CORRELATION_ID)] | None = None
    provider: _Short | None = None
    model: _Short | None = None
    output: Annotated[str, Field(max_length=8000)] | None = None
    error_code: Annotated[str, Field(max_length=64)] | None = None
    error_message: Annotated[str, Field(max_length=2000)] | None = None
    latency_ms: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    results: list[Verdict] = Field(min_length=1, max_length=32)


class ResultsRequest(_Strict):
    items: list[ItemOutcome] = Field(min_length=1, max_length=1000)


class Aggregate(_Strict):
    evaluator: Annotated[str, Field(min_length=1, max_length=512)]
    items: Annotated[int, Field(ge=0)]
    passed: Annotated[int, Field(ge=0)]
    pass_rate: _Score
    mean_score: _Score


class CompleteRequest(_Strict):
    failed_calls: Annotated[int, Field(ge=0)]
    aggregates: list[Aggregate] = Field(min_length=1, max_length=32)


class Accepted(BaseModel):
    eval_run_id: str
    accepted: int
    status: Literal["accepted"] = "accepted"


class EvalRunView(BaseModel):
    eval_run_id: str
    dataset: str
    dataset_version: str
    model: str
    evaluators: list[str]
    item_count: int
    baseline: str | None
    started_by: str
    started_at: str
    status: Literal["running", "completed"]
    completed_at: str | None
    failed_calls: int | None
    scored_items: int
    aggregates: list[Aggregate]


class Regression(BaseModel):
    item_id: str
    evaluator: str
    baseline_score: float
    candidate_score: float
    baseline_passed: bool
    candidate_passed: bool
    candidate_label: str
    candidate_output: str
    candidate_error: str
    candidate_run_id: str


class Comparison(BaseModel):
    baseline: EvalRunView
    candidate: EvalRunView
    regressions: list[Regression]
    regressions_total: int


@router.post(
    "",
    response_model=Started,
    status_code=201,
    responses=error_responses(401, 404, 422, 503),
    summary="Start an eval run on a dataset version (eval.run.started)",
)
async def start_run(request: Request, body: StartRequest, principal: Caller) -> JSONResponse:
    services = services_of(request)
    services.kafka()
    database = services.projections.database
    sql = versions_sql(database, principal.tenant, body.dataset, body.dataset_version)
    (found,) = await read(services.projections, sql)
    if not found:
        raise ApiError(
            HttpErrorCode.NOT_FOUND,
            f"no version {body.dataset_version} of dataset {body.dataset} for this tenant",
        )
    eval_run_id = f"evr_{uuid.uuid4().hex}"
    payload: EvalRunStartedPayload = {
        "eval_run_id": eval_run_id,
        "dataset": body.dataset,
        "dataset_version": body.dataset_version,
        "model": body.model,
        "evaluators": body.evaluators,
        "item_count": int(found[0]["item_count"]),
        "baseline": body.baseline,
        "started_by": principal.key_id,
    }
    await services.publish(_message(services, principal, STARTED, payload))
    started = Started(
        eval_run_id=eval_run_id,
        dataset=body.dataset,
        dataset_version=body.dataset_version,
        item_count=payload["item_count"],
    )
    return JSONResponse(started.model_dump(), status_code=201)


@router.post(
    "/{eval_run_id}/results",
    response_model=Accepted,
    status_code=202,
    responses=error_responses(401, 404, 422, 503),
    summary="Record items' answers and verdicts (eval.item.scored, one per item)",
)
async def record_results(
    request: Request, eval_run_id: RunId, body: ResultsRequest, principal: Caller
) -> JSONResponse:
    """An item sent again replaces its earlier verdicts (same event id, same rows)."""
    services = services_of(request)
    services.kafka()
    run = await _started(services, principal.tenant, eval_run_id)
    unknown = [
        FieldProblem(
            item=n,
            item_id=item.item_id,
            field=f"results.{v}.evaluator",
            message=f"{verdict.evaluator!r} is not an evaluator of this run",
        )
        for n, item in enumerate(body.items)
        for v, verdict in enumerate(item.results)
        if verdict.evaluator not in run["evaluators"]
    ]
    if unknown:
        raise ApiError(
            ErrorCode.INVALID_REQUEST, unknown[0].message, status=422, details=unknown[:50]
        )
    await services.publish_all(
        [
            _message(
                services,
                principal,
                SCORED,
                _scored(eval_run_id, str(run["dataset"]), item),
                f"item:{item.item_id}",
            )
            for item in body.items
        ]
    )
    accepted = Accepted(eval_run_id=eval_run_id, accepted=len(body.items))
    return JSONResponse(accepted.model_dump(), status_code=202)


@router.post(
    "/{eval_run_id}/complete",
    response_model=Accepted,
    status_code=202,
    responses=error_responses(401, 404, 422, 503),
    summary="End a run with the aggregates its runner measured (eval.run.completed)",
)
async def complete_run(
    request: Request, eval_run_id: RunId, body: CompleteRequest, principal: Caller
) -> JSONResponse:
    services = services_of(request)
    services.kafka()
    run = await _started(services, principal.tenant, eval_run_id)
    payload: EvalRunCompletedPayload = {
        "eval_run_id": eval_run_id,
        "dataset": run["dataset"],
        "dataset_version": run["dataset_version"],
        "model": run["model"],
        "item_count": int(run["item_count"]),
        "failed_calls": body.failed_calls,
        "aggregates": [
            {
                "evaluator": a.evaluator,
                "items": a.items,
                "passed": a.passed,
                "pass_rate": a.pass_rate,
                "mean_score": a.mean_score,
            }
            for a in body.aggregates
        ],
    }
    await services.publish(_message(services, principal, COMPLETED, payload, "completed"))
    accepted = Accepted(eval_run_id=eval_run_id, accepted=len(body.aggregates))
    return JSONResponse(accepted.model_dump(), status_code=202)


@router.get(
    "",
    response_model=list[EvalRunView],
    responses=error_responses(401, 422, 503),
    summary="The tenant's eval runs (of one dataset), newest first",
)
async def list_runs(
    request: Request,
    principal: Caller,
    dataset: Annotated[str | None, Query(pattern=DATASET_NAME)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[EvalRunView]:
    projections = services_of(request).projections
    sql = eval_runs_sql(projections.database, principal.tenant, dataset=dataset, limit=limit)
    (runs,) = await read(projections, sql)
    return await _views(services_of(request), principal.tenant, runs)


@router.get(
    "/{eval_run_id}",
    response_model=EvalRunView,
    responses=error_responses(401, 404, 422, 503),
    summary="One eval run: what ran, its status, items scored so far, aggregates once done",
)
async def get_run(request: Request, eval_run_id: RunId, principal: Caller) -> EvalRunView:
    (view,) = await _found(services_of(request), principal.tenant, [eval_run_id])
    return view


@router.get(
    "/{baseline}/compare/{candidate}",
    response_model=Comparison,
    responses=error_responses(401, 404, 422, 503),
    summary="Two runs side by side, and the items that got worse from the first to the second",
)
async def compare_runs(
    request: Request,
    baseline: RunId,
    candidate: RunId,
    principal: Caller,
    limit: Annotated[int, Query(ge=0, le=1000)] = 100,
) -> Comparison:
    services = services_of(request)
    first, second = await _found(services, principal.tenant, [baseline, candidate])
    sql = regressions_sql(
        services.projections.database, principal.tenant, baseline, candidate, limit
    )
    (rows,) = await read(services.projections, sql)
    return Comparison(
        baseline=first,
        candidate=second,
        regressions=[_regression(row) for row in rows],
        regressions_total=int(rows[0]["total"]) if rows else 0,
    )


def _scored(eval_run_id: str, dataset: str, item: ItemOutcome) -> EvalItemScoredPayload:
    return {
        "eval_run_id": eval_run_id,
        "dataset": dataset,
        "item_id": item.item_id,
        "run_id": item.run_id,
        "provider": item.provider,
        "model": item.model,
        "output": item.output,
        "error_code": item.error_code,
        "error_message": item.error_message,
        "latency_ms": item.latency_ms,
        "results": [
            {"evaluator": v.evaluator, "score": v.score, "passed": v.passed, "label": v.label}
            for v in item.results
        ],
    }


def _message(
    services: Services,
    principal: Principal,
    message_type: str,
    payload: Mapping[str, Any],
    slot: str | None = None,
) -> Envelope:
    """A run's event, keyed by its run id; a ``slot`` fixes its id, so a request repeated
    (a runner's retry) writes exact duplicates."""
    eval_run_id = str(payload["eval_run_id"])
    origin = f"eval:{principal.tenant}:{eval_run_id}"
    return new_message(
        message_type,
        payload,
        correlation_id=eval_run_id,
        tenant_id=principal.tenant,
        writer=services.writer,
        ids=(lambda: derived_id(origin, slot)) if slot else random_ids,
    )


async def _started(services: Services, tenant: str, eval_run_id: str) -> Mapping[str, Any]:
    """The run's start, from this replica's recent events (a run that just began) or the
    projections; 404 when the tenant has no such run."""
    for item in services.recent.of_run(tenant, eval_run_id):
        if item.event["event_type"] == STARTED:
            return dict(item.event["payload"])
    sql = eval_runs_sql(services.projections.database, tenant, [eval_run_id])
    (rows,) = await read(services.projections, sql)
    if not rows:
        raise ApiError(HttpErrorCode.NOT_FOUND, f"no eval run {eval_run_id} for this tenant")
    return rows[0]


async def _found(services: Services, tenant: str, run_ids: list[str]) -> list[EvalRunView]:
    """The runs in the order asked; 404 naming the first the tenant does not have."""
    sql = eval_runs_sql(services.projections.database, tenant, run_ids)
    (runs,) = await read(services.projections, sql)
    views = {view.eval_run_id: view for view in await _views(services, tenant, runs)}
    for run_id in run_ids:
        if run_id not in views:
            raise ApiError(HttpErrorCode.NOT_FOUND, f"no eval run {run_id} for this tenant")
    return [views[run_id] for run_id in run_ids]


async def _views(services: Services, tenant: str, runs: list[dict[str, Any]]) -> list[EvalRunView]:
    if not runs:
        return []
    ids = [str(run["eval_run_id"]) for run in runs]
    database = services.projections.database
    aggregates, scored = await read(
        services.projections,
        aggregates_sql(database, tenant, ids),
        scored_items_sql(database, tenant, ids),
    )
    return [_view(run, aggregates, scored) for run in runs]


def _view(
    run: Mapping[str, Any], aggregates: list[dict[str, Any]], scored: list[dict[str, Any]]
) -> EvalRunView:
    """A run as read: completed once its aggregates are projected."""
    run_id = run["eval_run_id"]
    own = [row for row in aggregates if row["eval_run_id"] == run_id]
    counted = [int(row["scored_items"]) for row in scored if row["eval_run_id"] == run_id]
    return EvalRunView(
        **{**run, "baseline": run["baseline"] or None},
        status="completed" if own else "running",
        completed_at=own[0]["completed_at"] if own else None,
        failed_calls=int(own[0]["failed_calls"]) if own else None,
        scored_items=counted[0] if counted else 0,
        aggregates=[Aggregate(**_fields_of(Aggregate, row)) for row in own],
    )


def _fields_of(model: type[BaseModel], row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in model.model_fields}


def _regression(row: Mapping[str, Any]) -> Regression:
    details = _details(str(row["candidate_details"]))
    return Regression(**_fields_of(Regression, {**row, **details}))


def _details(text: str) -> dict[str, str]:
    """``eval_results.details`` of an offline row: the answer, or the error."""
    found = json.loads(text) if text else {}
    error = found.get("error_code", "")
    message = found.get("error_message", "")
    return {
        "candidate_output": found.get("output", ""),
        "candidate_error": f"{error}: {message}" if error else "",
    }
