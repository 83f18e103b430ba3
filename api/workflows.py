"""``POST /v1/workflows/submit``: a ``workflow.run.requested`` command, answered 202 with the
run's correlation id as soon as the broker has it; follow the run on ``/v1/ws`` or read it
from ``/v1/runs/{correlation_id}``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.admission import claim_run, command_for, enforce_rate_limit, publish
from api.auth import Principal
from api.errors import error_responses
from api.rate_limits import estimate_tokens
from api.services import authenticated, services_of

__all__ = ["WorkflowAccepted", "WorkflowSubmission", "router"]

router = APIRouter(tags=["workflows"])
ROUTE = "/v1/workflows/submit"


class WorkflowSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    workflow: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
    input: dict[str, Any] = Field(default_factory=dict)
    metadata: (
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None
    ) = Field(None, max_length=16)


class WorkflowAccepted(BaseModel):
    correlation_id: str
    status: Literal["accepted"] = "accepted"
    run_url: str


@router.post(
    ROUTE,
    status_code=202,
    response_model=WorkflowAccepted,
    responses=error_responses(401, 409, 413, 422, 429, 503),
    summary="Submit a workflow run",
)
async def submit_workflow(
    request: Request,
    body: WorkflowSubmission,
    principal: Annotated[Principal, Depends(authenticated)],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=256)] = None,
    traceparent: Annotated[str | None, Header(max_length=128)] = None,
) -> JSONResponse:
    services = services_of(request)
    services.kafka()
    await enforce_rate_limit(
        services, principal, estimate_tokens([body.input], None, principal.limits)
    )
    claim = await claim_run(request, principal, idempotency_key, ROUTE, body)
    deadline = datetime.now(UTC) + timedelta(seconds=services.config.chat.run_deadline_s)
    payload = {
        "workflow": body.workflow,
        "input_json": json.dumps(body.input),
        "idempotency_key": idempotency_key,
        "deadline": deadline,
        "metadata": body.metadata or {},
    }
    command = command_for(
        services, principal, claim, "workflow.run.requested", payload, traceparent
    )
    await publish(services, principal, claim, command)
    run_url = f"/v1/runs/{claim.correlation_id}"
    accepted = WorkflowAccepted(correlation_id=claim.correlation_id, run_url=run_url)
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": run_url})
