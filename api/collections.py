"""Collections of documents for ``mode: rag`` (layer 3). Writes are commands: each document
becomes a ``retrieval.upsert.requested`` (or ``retrieval.delete.requested``) keyed by its
collection and id, so a document's changes are applied in order; answered 202 once the broker
has them. Reads come from the ``rag_documents`` projection."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal
from api.errors import error_responses
from api.eval_queries import read
from api.services import authenticated, services_of
from streams.envelope import Envelope, derived_id, new_message
from streams.projections_client import sql_literal

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections", tags=["collections"])
Caller = Annotated[Principal, Depends(authenticated)]
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
DocumentId = Annotated[str, Path(min_length=1, max_length=256)]
_MAX_TEXT = 400_000  # characters; the processor refuses documents of more than 200 chunks too


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: Annotated[str, Field(min_length=1, max_length=256)]
    text: Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]
    title: Annotated[str, Field(max_length=1024)] | None = None
    format: Literal["text", "markdown", "html"] = "text"
    metadata: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] = (
        Field(default_factory=dict, max_length=32)
    )


class DocumentsUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    documents: list[Document] = Field(min_length=1, max_length=1000)


class DocumentAccepted(BaseModel):
    id: str
    correlation_id: str


class DocumentsAccepted(BaseModel):
    collection: str
    status: Literal["accepted"] = "accepted"
    documents: list[DocumentAccepted]


class DocumentView(BaseModel):
    id: str
    title: str
    content_hash: str
    chunk_count: int
    metadata: dict[str, str]
    indexed_at: str


def correlation_id_of(collection: str, document_id: str) -> str:
    return f"doc:{collection}:{document_id}"


def _command(
    request: Request,
    principal: Principal,
    message_type: str,
    payload: dict[str, Any],
) -> Envelope:
    """Its id from its content: the same document sent twice is one command downstream."""
    services = services_of(request)
    content = json.dumps(payload, sort_keys=True).encode()
    origin = f"{principal.tenant}:{message_type}:{hashlib.sha256(content).hexdigest()}"
    return new_message(
        message_type,
        payload,
        correlation_id=correlation_id_of(payload["collection"], payload["document_id"]),
        tenant_id=principal.tenant,
        writer=services.writer,
        ids=lambda: derived_id(origin, "command"),
    )


@router.post(
    "/{collection}/documents",
    status_code=202,
    response_model=DocumentsAccepted,
    responses=error_responses(401, 413, 422, 503),
    summary="Add or replace documents (indexed asynchronously)",
)
async def upsert_documents(
    request: Request, collection: Name, body: DocumentsUpsert, principal: Caller
) -> JSONResponse:
    services = services_of(request)
    services.kafka()  # 503 before any work while the bus is not there
    commands = [
        _command(
            request,
            principal,
            "retrieval.upsert.requested",
            {
                "collection": collection,
                "document_id": document.id,
                "text": document.text,
                "title": document.title,
                "format": document.format,
                "metadata": document.metadata,
            },
        )
        for document in body.documents
    ]
    await services.publish_all(commands)
    accepted = DocumentsAccepted(
        collection=collection,
        documents=[
            DocumentAccepted(id=d.id, correlation_id=correlation_id_of(collection, d.id))
            for d in body.documents
        ],
    )
    return JSONResponse(accepted.model_dump(), status_code=202)


@router.delete(
    "/{collection}/documents/{document_id}",
    status_code=202,
    response_model=DocumentAccepted,
    responses=error_responses(401, 422, 503),
    summary="Remove a document from retrieval (asynchronously)",
)
async def delete_document(
    request: Request, collection: Name, document_id: DocumentId, principal: Caller
) -> JSONResponse:
    services = services_of(request)
    services.kafka()
    payload = {"collection": collection, "document_id": document_id}
    await services.publish(_command(request, principal, "retrieval.delete.requested", payload))
    accepted = DocumentAccepted(
        id=document_id, correlation_id=correlation_id_of(collection, document_id)
    )
    return JSONResponse(accepted.model_dump(), status_code=202)


@router.get(
    "/{collection}/documents",
    response_model=list[DocumentView],
    responses=error_responses(401, 422, 503),
    summary="The collection's indexed documents (current versions)",
)
async def list_documents(
    request: Request, collection: Name, principal: Caller
) -> list[DocumentView]:
    projections = services_of(request).projections
    sql = (
        "SELECT document_id AS id, argMax(title, changed_at) AS title, "  # noqa: S608
        "argMax(content_hash, changed_at) AS content_hash, "
        "argMax(chunk_count, changed_at) AS chunk_count, "
        "argMax(metadata, changed_at) AS metadata, "
        "toString(max(changed_at)) AS indexed_at "
        f"FROM {projections.database}.rag_documents "
        f"WHERE tenant_id = {sql_literal(principal.tenant)} "
        f"AND collection = {sql_literal(collection)} "
        "GROUP BY document_id HAVING argMax(deleted, changed_at) = 0 ORDER BY document_id"
    )
    (rows,) = await read(projections, sql)
    return [DocumentView(**{**row, "chunk_count": int(row["chunk_count"])}) for row in rows]
