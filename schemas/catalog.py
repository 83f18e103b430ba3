"""Loads every ``.avsc`` in the repo into one lookup: by message type, version and fingerprint."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

__all__ = ["MessageKind", "MessageSchema", "SchemaCatalog", "UnknownSchemaError", "default_catalog"]

MessageKind = Literal["command", "event"]

SCHEMA_ROOT = Path(__file__).resolve().parent
_KIND_FOLDERS: dict[str, MessageKind] = {"commands": "command", "events": "event"}
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")
_MESSAGE_TYPE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


class UnknownSchemaError(LookupError):
    """A message type, version or fingerprint that no ``.avsc`` in the repo defines."""


@dataclass(frozen=True)
class MessageSchema:
    """One version of one message type's schema, parsed once."""

    message_type: str
    kind: MessageKind
    version: int
    source: dict[str, Any]
    parsed: dict[str, Any]
    fingerprint: bytes
    path: Path

    @property
    def full_name(self) -> str:
        """Avro full name; also the Schema Registry subject (record name strategy)."""
        return f"{self.source['namespace']}.{self.source['name']}"

    @property
    def id_field(self) -> str:
        return f"{self.kind}_id"

    @property
    def type_field(self) -> str:
        return f"{self.kind}_type"


def crc64_avro_fingerprint(schema: dict[str, Any]) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of the schema's parsing canonical form."""
    canonical = to_parsing_canonical_form(parse_schema(schema))
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def load_schema_file(path: Path, kind: MessageKind, message_type: str) -> MessageSchema:
    match = _VERSION_FILE.match(path.name)
    if match is None or not _MESSAGE_TYPE.match(message_type):
        raise ValueError(f"{path}: expected schemas/<kind>s/<domain.action.result>/v<N>.avsc")
    source = json.loads(path.read_text(encoding="utf-8"))
    return MessageSchema(
        message_type=message_type,
        kind=kind,
        version=int(match.group(1)),
        source=source,
        parsed=_parsed_record(source),
        fingerprint=crc64_avro_fingerprint(source),
        path=path,
    )


def _parsed_record(source: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_schema(source)
    if not isinstance(parsed, dict):
        raise ValueError(f"{source.get('name')}: a message schema must be an Avro record")
    return parsed


def discover(root: Path) -> Iterator[MessageSchema]:
    for folder, kind in _KIND_FOLDERS.items():
        for path in sorted((root / folder).glob("*/v*.avsc")):
            yield load_schema_file(path, kind, path.parent.name)


class SchemaCatalog:
    """Every known schema version; the newest version of a type is the reader schema."""

    def __init__(self, schemas: Iterable[MessageSchema]) -> None:
        self._versions: dict[str, dict[int, MessageSchema]] = {}
        self._by_fingerprint: dict[bytes, MessageSchema] = {}
        for schema in schemas:
            self._versions.setdefault(schema.message_type, {})[schema.version] = schema
            self._by_fingerprint[schema.fingerprint] = schema

    @classmethod
    def load(cls, root: Path = SCHEMA_ROOT) -> SchemaCatalog:
        return cls(discover(root))

    def message_types(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, message_type: str) -> list[MessageSchema]:
        return [self._versions_of(message_type)[v] for v in sorted(self._versions_of(message_type))]

    def latest(self, message_type: str) -> MessageSchema:
        return self.versions(message_type)[-1]

    def version(self, message_type: str, version: int) -> MessageSchema:
        try:
            return self._versions_of(message_type)[version]
        except KeyError:
            raise UnknownSchemaError(f"{message_type} has no schema version {version}") from None

    def by_fingerprint(self, fp: bytes) -> MessageSchema:
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise UnknownSchemaError(f"no schema with fingerprint {fp.hex()}") from None

    def by_full_name(self, full_name: str) -> MessageSchema:
        """Newest version of the message type whose Avro record has this full name."""
        for message_type in self._versions:
            latest = self.latest(message_type)
            if latest.full_name == full_name:
                return latest
        raise UnknownSchemaError(f"no schema named {full_name}")

    def kind_of(self, message_type: str) -> MessageKind:
        return self.latest(message_type).kind

    def _versions_of(self, message_type: str) -> dict[int, MessageSchema]:
        try:
            return self._versions[message_type]
        except KeyError:
            raise UnknownSchemaError(f"unknown message type {message_type!r}") from None


@cache
def default_catalog() -> SchemaCatalog:
    """The repo's schemas, loaded once per process."""
    return SchemaCatalog.load()
