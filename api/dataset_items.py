"""A dataset version's items, validated one by one (every problem named by item and field, not
just the first) and named by their content: the same items always make the same version, so
publishing them again is a no-op."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from api.chat_schema import ChatMessage
from api.errors import ApiError, FieldProblem
from schemas.payloads import DatasetItemRecordedPayload
from streams.errors import ErrorCode

__all__ = ["ITEM_ID", "DatasetItem", "content_version", "item_payload", "validated_items"]

ITEM_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
_Text = Annotated[str, Field(min_length=1, max_length=100_000)]
_MAX_PROBLEMS = 50


class DatasetItem(BaseModel):
    """``input`` is a string (sent as one user message) or chat messages exactly as
    ``/v1/chat/completions`` takes them, so every item can be replayed as it stands."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=ITEM_ID)]
    input: _Text | Annotated[list[ChatMessage], Field(min_length=1, max_length=256)]
    expected: Annotated[str, Field(max_length=100_000)] | None = None
    rubric: Annotated[str, Field(max_length=10_000)] | None = None
    metadata: dict[
        Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=512)]
    ] = Field(default_factory=dict, max_length=32)

    def input_json(self) -> str:
        if isinstance(self.input, str):
            return json.dumps(self.input)
        return json.dumps([m.model_dump(mode="json", exclude_none=True) for m in self.input])


_ITEM = TypeAdapter(DatasetItem)


def validated_items(raw: Sequence[Any]) -> list[DatasetItem]:
    """Every item, or a 422 whose ``details`` name each invalid item (position and id) and
    field, and each repeated id."""
    items: list[DatasetItem] = []
    problems: list[FieldProblem] = []
    first_position: dict[str, int] = {}
    for position, record in enumerate(raw):
        item_id = _id_of(record)
        try:
            item = _ITEM.validate_python(record)
        except ValidationError as error:
            problems += [
                FieldProblem(
                    item=position,
                    item_id=item_id,
                    field=".".join(str(part) for part in problem["loc"]) or "item",
                    message=problem["msg"],
                )
                for problem in error.errors()
            ]
            continue
        if item.id in first_position:
            message = f"repeats the id of item {first_position[item.id]}"
            problems.append(
                FieldProblem(item=position, item_id=item.id, field="id", message=message)
            )
        first_position.setdefault(item.id, position)
        items.append(item)
    if problems:
        shown = "; ".join(f"items[{p.item}].{p.field}: {p.message}" for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"{len(problems)} invalid field(s): {shown}{more}",
            status=422,
            details=problems[:_MAX_PROBLEMS],
        )
    return items


def _id_of(record: Any) -> str | None:
    item_id = record.get("id") if isinstance(record, dict) else None
    return item_id if isinstance(item_id, str) else None


def content_version(items: Sequence[DatasetItem]) -> str:
    """16 hex digits of SHA-256 over the items in order, as canonical JSON."""
    canonical = json.dumps(
        [item.model_dump(mode="json", exclude_none=True) for item in items],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def item_payload(
    dataset: str, version: str, position: int, item: DatasetItem
) -> DatasetItemRecordedPayload:
    return {
        "dataset": dataset,
        "version": version,
        "position": position,
        "item_id": item.id,
        "input_json": item.input_json(),
        "expected": item.expected,
        "rubric": item.rubric,
        "metadata": dict(item.metadata),
    }
