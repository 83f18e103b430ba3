"""Released schemas never change, and every version reads its neighbour's data both ways."""

import itertools
import json
import shutil
from pathlib import Path

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas import MessageSchema, SchemaCatalog, default_catalog
from schemas.catalog import SCHEMA_ROOT
from streams.serde import AvroSerde, SingleObjectFraming
from tests.factories import sample_envelope

CATALOG = default_catalog()
EVOLUTION = Path(__file__).parent / "evolution"
RELEASED = json.loads((SCHEMA_ROOT / "released.json").read_text())


def can_read(reader: MessageSchema, writer: MessageSchema) -> bool:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader.source)), avro.schema.parse(json.dumps(writer.source))
    )
    return bool(result.compatibility is SchemaCompatibilityType.compatible)


def neighbour_pairs(catalog: SchemaCatalog) -> list[tuple[MessageSchema, MessageSchema]]:
    pairs = []
    for message_type in catalog.message_types():
        versions = catalog.versions(message_type)
        pairs += list(itertools.pairwise(versions))
    return pairs


def lock_key(schema: MessageSchema) -> str:
    return f"{schema.kind}s/{schema.message_type}/v{schema.version}"


@pytest.mark.parametrize("message_type", CATALOG.message_types())
def test_released_versions_are_frozen(message_type: str) -> None:
    for schema in CATALOG.versions(message_type):
        key = lock_key(schema)
        assert key in RELEASED, f"{key} is not in schemas/released.json: add it when releasing"
        assert RELEASED[key] == schema.fingerprint.hex(), (
            f"{schema.path} changed after release; add v{schema.version + 1}.avsc instead"
        )


def incompatible_neighbours(catalog: SchemaCatalog) -> list[str]:
    problems = []
    for older, newer in neighbour_pairs(catalog):
        if not can_read(newer, older):
            problems.append(f"{lock_key(newer)} cannot read {lock_key(older)} data")
        if not can_read(older, newer):
            problems.append(f"{lock_key(older)} cannot read {lock_key(newer)} data")
    return problems


def test_repo_versions_are_compatible_both_ways() -> None:
    assert incompatible_neighbours(CATALOG) == []


@pytest.mark.parametrize("message_type", CATALOG.message_types())
def test_envelope_fields_are_identical_across_schemas(message_type: str) -> None:
    reference = CATALOG.latest("llm.request.completed").source["fields"][2:-1]
    fields = CATALOG.latest(message_type).source["fields"]
    assert fields[2:-1] == reference
    kind = CATALOG.kind_of(message_type)
    assert [f["name"] for f in fields[:2]] == [f"{kind}_id", f"{kind}_type"]
    assert fields[-1]["name"] == "payload"


@pytest.fixture(scope="module")
def evolved(tmp_path_factory: pytest.TempPathFactory) -> SchemaCatalog:
    """The repo's schemas plus a v2 of llm.request.completed that adds a field with a default
    and drops an optional one: the kind of change a later issue makes."""
    root = tmp_path_factory.mktemp("schemas")
    shutil.copytree(SCHEMA_ROOT / "events", root / "events")
    shutil.copytree(SCHEMA_ROOT / "commands", root / "commands")
    shutil.copytree(EVOLUTION / "events", root / "events", dirs_exist_ok=True)
    return SchemaCatalog.load(root)


def test_evolution_fixture_passes_the_checker(evolved: SchemaCatalog) -> None:
    assert [lock_key(n) for _, n in neighbour_pairs(evolved)] == ["events/llm.request.completed/v2"]
    assert incompatible_neighbours(evolved) == []


def test_checker_rejects_a_breaking_change(evolved: SchemaCatalog) -> None:
    v2 = evolved.version("llm.request.completed", 2)
    source = json.loads(json.dumps(v2.source))
    payload = source["fields"][-1]["type"]
    payload["fields"].append({"name": "required_new", "type": "string"})
    broken = MessageSchema(v2.message_type, v2.kind, 3, source, v2.parsed, b"", v2.path)
    assert incompatible_neighbours(SchemaCatalog([v2, broken])) == [
        "events/llm.request.completed/v3 cannot read events/llm.request.completed/v2 data"
    ]


def test_new_reader_reads_old_data(evolved: SchemaCatalog) -> None:
    old_writer = AvroSerde(evolved, SingleObjectFraming(evolved), pins={"llm.request.completed": 1})
    new_reader = AvroSerde(evolved, SingleObjectFraming(evolved))
    sent = sample_envelope(evolved.version("llm.request.completed", 1))
    received = new_reader.decode(old_writer.encode(sent))
    assert received.schema_version == 1
    assert received.payload["region"] == "unknown"
    assert "finish_reason" not in received.payload
    assert received.payload["output_text"] == sent.payload["output_text"]


def test_old_reader_reads_new_data(evolved: SchemaCatalog) -> None:
    new_writer = AvroSerde(evolved, SingleObjectFraming(evolved))
    old_reader = AvroSerde(evolved, SingleObjectFraming(evolved), pins={"llm.request.completed": 1})
    sent = sample_envelope(evolved.version("llm.request.completed", 2))
    received = old_reader.decode(new_writer.encode(sent))
    assert received.schema_version == 2
    assert received.payload["finish_reason"] is None
    assert "region" not in received.payload
    assert received.payload["cost_usd"] == sent.payload["cost_usd"]


def test_message_type_names_follow_domain_action_result() -> None:
    for message_type in CATALOG.message_types():
        assert len(message_type.split(".")) == 3
        schema = CATALOG.latest(message_type)
        expected = "".join(part.capitalize() for part in message_type.split("."))
        assert schema.source["name"] == expected
