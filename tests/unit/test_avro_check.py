"""The serde's compiled payload check: it accepts every payload the writer keeps as given and
refuses what fastavro's writer would coerce or drop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastavro.schema import parse_schema

from schemas import default_catalog
from streams.avro_check import compile_check
from tests.factories import sample_envelope

CATALOG = default_catalog()

SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "t.Outer",
        "fields": [
            {"name": "count", "type": "int"},
            {"name": "total", "type": "long", "default": 0},
            {"name": "ratio", "type": "double"},
            {"name": "ok", "type": "boolean"},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["a", "b"]}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "labels", "type": {"type": "map", "values": "long"}},
            {
                "name": "inner",
                "type": {
                    "type": "record",
                    "name": "Inner",
                    "fields": [{"name": "next", "type": ["null", "t.Outer"], "default": None}],
                },
            },
        ],
    }
)
GOOD: dict[str, Any] = {
    "count": 3,
    "ratio": 1,
    "ok": False,
    "at": datetime(2026, 1, 1, tzinfo=UTC),
    "id": "00000000-0000-4000-8000-000000000000",
    "level": "a",
    "tags": ["x"],
    "labels": {"k": 1},
    "inner": {"next": None},
}


@pytest.mark.parametrize("message_type", CATALOG.message_types())
def test_every_sample_payload_passes_without_the_slow_validation(message_type: str) -> None:
    schema = CATALOG.latest(message_type)
    payload = next(f for f in schema.parsed["fields"] if f["name"] == "payload")
    assert compile_check(payload["type"])(sample_envelope(schema).payload)


def test_a_fitting_record_passes_with_defaults_left_out_and_recursion() -> None:
    check = compile_check(SCHEMA)
    assert check(GOOD)
    assert check({**GOOD, "note": "n", "total": 2**40, "at": 17, "inner": {"next": GOOD}})


@pytest.mark.parametrize(
    "change",
    [
        {"count": True},  # a bool is an int to Python, never to the schema
        {"count": "3"},
        {"count": 2**31},  # outside int32
        {"ratio": "1.0"},
        {"ok": "yes"},  # the writer alone would make it True
        {"note": 5},
        {"at": datetime(2026, 1, 1)},  # naive: no instant
        {"level": "c"},
        {"tags": ("x",)},
        {"tags": [1]},
        {"labels": {"k": "1"}},
        {"inner": {"next": {**GOOD, "count": None}}},
        {"unknown": 1},  # the writer would drop it silently
    ],
)
def test_a_value_that_does_not_fit_exactly_is_refused(change: dict[str, Any]) -> None:
    assert not compile_check(SCHEMA)({**GOOD, **change})


def test_a_missing_field_without_default_is_refused() -> None:
    assert not compile_check(SCHEMA)({k: v for k, v in GOOD.items() if k != "count"})
