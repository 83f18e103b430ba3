"""``/v1/datasets``: a tenant's golden sets, versioned. A version is published as events (each
item a ``dataset.item.recorded``, then one ``dataset.version.published`` that closes it) and
read back from their projections. Versions are immutable and named by their content: the
same items published again give the same version and publish nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal
from api.dataset_items import content_version, item_payload, validated_items
from api.errors import ApiError, HttpErrorCode, error_responses
from api.eval_queries import datasets_sql, items_sql, read, versions_sql
from api.services import Services, authenticated, services_of
from schemas.payloads import DatasetVersionPublishedPayload
from streams.envelope import Envelope, derived_id, new_message

__all__ = ["DATASET_NAME", "VERSION", "router"]

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
DATASET_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
VERSION = r"^[0-9a-f]{16}$"
ITEM_RECORDED = "dataset.item.recorded"
PUBLISHED = "dataset.version.published"

Name = Annotated[str, Path(pattern=DATASET_NAME)]
Version = Annotated[str, Path(pattern=VERSION)]
Caller = Annotated[Principal, Depends(authenticated)]


class VersionRequest(BaseModel):
    """The items, each checked one by one (so a 422 names every bad item and field)."""

    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)
    description: Annotated[str, Field(max_length=2000)] | None = None


class VersionPublished(BaseModel):
    dataset: str
    version: str
    item_count: int
    status: Literal["published", "exists"]


class DatasetSummary(BaseModel):
    dataset: str
    versions: int
    latest_version: str
    latest_item_count: int
    latest_published_at: str


class DatasetVersion(BaseModel):
    version: str
    item_count: int
    description: str
    published_by: str
    published_at: str


class DatasetView(BaseModel):
    dataset: str
    versions: list[DatasetVersion]


class DatasetItemView(BaseModel):
    id: str
    input: str | list[dict[str, Any]]
    expected: str | None
    rubric: str | None
    metadata: dict[str, str]


class ItemsPage(BaseModel):
    dataset: str
    version: str
    item_count: int
    offset: int
    items: list[DatasetItemView]


@router.post(
    "/{dataset}/versions",
    response_model=VersionPublished,
    status_code=201,
    responses=error_responses(401, 413, 422, 503),
    summary="Publish a dataset version (201), or find the same items already published (200)",
)
async def publish_version(
    request: Request, dataset: Name, body: VersionRequest, principal: Caller
) -> JSONResponse:
    services = services_of(request)
    services.kafka()  # 503 before any work while the bus is not there
    items = validated_items(body.items)
    version = content_version(items)
    answer = VersionPublished(
        dataset=dataset, version=version, item_count=len(items), status="exists"
    )
    (known,) = await read(
        services.projections,
        versions_sql(services.projections.database, principal.tenant, dataset, version),
    )
    if known:
        return JSONResponse(answer.model_dump(), status_code=200)
    # Ids from the content: a publication repeated before the first was projected (or after a
    # failure half-way) writes exact duplicates, which the projections drop.
    origin = f"dataset:{principal.tenant}:{dataset}:{version}"
    correlation_id = f"dataset:{dataset}"

    def message(message_type: str, payload: Mapping[str, Any], slot: str) -> Envelope:
        return new_message(
            message_type,
            payload,
            correlation_id=correlation_id,
            tenant_id=principal.tenant,
            writer=services.writer,
            ids=lambda: derived_id(origin, slot),
        )

    await services.publish_all(
        [
            message(ITEM_RECORDED, item_payload(dataset, version, n, item), str(n))
            for n, item in enumerate(items)
        ]
    )
    published: DatasetVersionPublishedPayload = {
        "dataset": dataset,
        "version": version,
        "item_count": len(items),
        "description": body.description,
        "published_by": principal.key_id,
    }
    await services.publish(message(PUBLISHED, published, "published"))  # after every item
    answer.status = "published"
    return JSONResponse(answer.model_dump(), status_code=201)


@router.get(
    "",
    response_model=list[DatasetSummary],
    responses=error_responses(401, 422, 503),
    summary="List the tenant's datasets with their newest version",
)
async def list_datasets(request: Request, principal: Caller) -> list[DatasetSummary]:
    projections = services_of(request).projections
    (rows,) = await read(projections, datasets_sql(projections.database, principal.tenant))
    return [DatasetSummary(**row) for row in rows]


@router.get(
    "/{dataset}",
    response_model=DatasetView,
    responses=error_responses(401, 404, 422, 503),
    summary="A dataset's versions, newest first",
)
async def get_dataset(request: Request, dataset: Name, principal: Caller) -> DatasetView:
    versions = await _versions(services_of(request), principal.tenant, dataset)
    return DatasetView(dataset=dataset, versions=versions)


@router.get(
    "/{dataset}/versions/{version}/items",
    response_model=ItemsPage,
    responses=error_responses(401, 404, 422, 503),
    summary="A page of a dataset version's items, in replay order",
)
async def get_items(
    request: Request,
    dataset: Name,
    version: Version,
    principal: Caller,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> ItemsPage:
    services = services_of(request)
    (found,) = await _versions(services, principal.tenant, dataset, version)
    sql = items_sql(
        services.projections.database, principal.tenant, dataset, version, offset, limit
    )
    (rows,) = await read(services.projections, sql)
    return ItemsPage(
        dataset=dataset,
        version=version,
        item_count=found.item_count,
        offset=offset,
        items=[DatasetItemView(**{**row, "input": json.loads(row["input"])}) for row in rows],
    )


async def _versions(
    services: Services, tenant: str, dataset: str, version: str | None = None
) -> list[DatasetVersion]:
    """The versions (or the one); 404 when there is none for this tenant."""
    sql = versions_sql(services.projections.database, tenant, dataset, version)
    (rows,) = await read(services.projections, sql)
    if not rows:
        what = f"version {version} of dataset {dataset}" if version else f"dataset {dataset}"
        raise ApiError(HttpErrorCode.NOT_FOUND, f"no {what} for this tenant")
    return [DatasetVersion(**row) for row in rows]
