"""``/v1/admin/keys``: create, list and revoke API keys with an admin key (``auth.admin_keys``
in ``configs/api.yaml``; ``local-dev`` on a loopback API with no keys configured). Each change
is an event on the key topic (``api/keys.py``), so it reaches every replica; the answer comes
once this replica has read it back, so the key works here the moment it is returned."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.config import RateLimits
from api.errors import ApiError, HttpErrorCode, error_responses
from api.keys import KeyFollower, ManagedKey, created_event, revoked_event
from api.services import Services, admin_authenticated, services_of
from streams.envelope import Envelope
from streams.errors import ErrorCode

__all__ = ["KeyCreated", "KeyRequest", "KeyView", "router"]

router = APIRouter(tags=["admin"])
_READ_BACK_S = 5.0
_TENANT = r"^[A-Za-z0-9_.-]{1,64}$"


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: Annotated[str, Field(pattern=_TENANT)]
    name: Annotated[str | None, Field(max_length=128)] = None
    limits: RateLimits | None = None


class KeyView(BaseModel):
    """A key as listed: never its secret nor its hash."""

    key_id: str
    tenant: str
    name: str | None
    prefix: str
    limits: RateLimits | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None

    @classmethod
    def of(cls, key: ManagedKey) -> KeyView:
        return cls.model_validate(key, from_attributes=True)


class KeyCreated(KeyView):
    key: str = Field(description="The key itself: shown this once, stored nowhere")


class KeyList(BaseModel):
    keys: list[KeyView]


Admin = Annotated[str, Depends(admin_authenticated)]


@router.post(
    "/v1/admin/keys",
    status_code=201,
    response_model=KeyCreated,
    responses=error_responses(401, 403, 422, 503),
    summary="Create an API key for a tenant",
)
async def create_key(request: Request, body: KeyRequest, admin: Admin) -> JSONResponse:
    services = services_of(request)
    event, secret = created_event(services.writer, body.tenant, body.name, body.limits, admin)
    keys = await _published(services, event)
    key_id = event.correlation_id
    await keys.until(lambda k: k.get(key_id) is not None, _READ_BACK_S)
    created = keys.get(key_id)
    if created is None:
        raise ApiError(ErrorCode.DEPENDENCY_UNAVAILABLE, "the key was not read back in time")
    view = KeyCreated(**KeyView.of(created).model_dump(), key=secret)
    return JSONResponse(view.model_dump(mode="json"), status_code=201)


@router.get(
    "/v1/admin/keys",
    response_model=KeyList,
    responses=error_responses(401, 403, 422, 503),
    summary="List API keys (revoked ones too)",
)
async def list_keys(
    request: Request,
    _: Admin,
    tenant: Annotated[str | None, Query(pattern=_TENANT)] = None,
) -> KeyList:
    keys = services_of(request).kafka().keys
    listed = [KeyView.of(k) for k in keys.listed() if tenant is None or k.tenant == tenant]
    return KeyList(keys=listed)


@router.delete(
    "/v1/admin/keys/{key_id}",
    response_model=KeyView,
    responses=error_responses(401, 403, 404, 422, 503),
    summary="Revoke an API key on every replica",
)
async def revoke_key(request: Request, key_id: str, admin: Admin) -> KeyView:
    services = services_of(request)
    key = services.kafka().keys.get(key_id)
    if key is None:
        raise ApiError(HttpErrorCode.NOT_FOUND, f"no key {key_id!r}")
    if key.active:
        keys = await _published(services, revoked_event(services.writer, key, admin))
        await keys.until(lambda k: not _active(k, key_id), _READ_BACK_S)
        key = keys.get(key_id) or key
    return KeyView.of(key)


def _active(keys: KeyFollower, key_id: str) -> bool:
    key = keys.get(key_id)
    return key is not None and key.active


async def _published(services: Services, event: Envelope) -> KeyFollower:
    await services.publish(event)
    return services.kafka().keys
