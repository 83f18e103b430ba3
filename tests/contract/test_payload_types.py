"""schemas/payloads.py is generated from the contract and must match it; every message's
payload type names exactly the fields of its schema."""

from __future__ import annotations

from typing import get_type_hints

import pytest

from schemas import default_catalog
from schemas.payloads import PAYLOAD_TYPES
from schemas.typegen import PAYLOADS_MODULE, render_payload_types
from tests.factories import sample_envelope

CATALOG = default_catalog()


def test_payload_types_are_current() -> None:
    assert PAYLOADS_MODULE.read_text(encoding="utf-8") == render_payload_types(CATALOG), (
        "schemas/payloads.py is stale: run `python -m schemas.typegen`"
    )


@pytest.mark.parametrize("message_type", CATALOG.message_types())
def test_each_payload_type_has_the_schemas_fields(message_type: str) -> None:
    typed = PAYLOAD_TYPES[message_type]
    schema = CATALOG.latest(message_type)
    payload = next(f for f in schema.source["fields"] if f["name"] == "payload")
    assert list(get_type_hints(typed)) == [f["name"] for f in payload["type"]["fields"]]
    required = {f["name"] for f in payload["type"]["fields"] if "default" not in f}
    assert typed.__required_keys__ == required  # type: ignore[attr-defined]
    assert required <= set(sample_envelope(schema).payload)
