"""A strict type check of a value against a parsed Avro schema, compiled once per schema.

fastavro's writer coerces some values that do not fit (a string into a boolean); the schema is
the contract, so the serde must know a payload fits before it trusts what was written. Writing
then reading back proves it, at the price of a second pass over the record; this check asks the
same question with a few ``isinstance`` calls per field. It accepts only the Python types a
reader gives back (ints for ``int``/``long``, never bools; ints or floats for ``float``/``double``;
aware datetimes or ints for timestamps; ``str`` for uuids) and records whose keys are all
fields of the schema. A value it refuses is not necessarily wrong: the caller then asks
fastavro's full validation, which names the problem or accepts the value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

__all__ = ["Check", "compile_check"]

Check = Callable[[Any], bool]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _integer(low: int, high: int) -> Check:
    return lambda v: type(v) is int and low <= v <= high


def _number(v: Any) -> bool:
    return type(v) is float or type(v) is int


_PRIMITIVES: dict[str, Check] = {
    "null": lambda v: v is None,
    "boolean": lambda v: type(v) is bool,
    "int": _integer(*_INT32),
    "long": _integer(*_INT64),
    "float": _number,
    "double": _number,
    "string": lambda v: type(v) is str,
    "bytes": lambda v: type(v) is bytes,
}
_TIMESTAMPS = frozenset({"timestamp-micros", "timestamp-millis"})


def compile_check(schema: Any) -> Check:
    """The check for ``schema`` (as ``fastavro.parse_schema`` returns it)."""
    return _Compiler().compile(schema)


class _Compiler:
    def __init__(self) -> None:
        self._named: dict[str, Check] = {}

    def compile(self, schema: Any) -> Check:
        if isinstance(schema, str):
            return _PRIMITIVES.get(schema) or self._reference(schema)
        if isinstance(schema, list):
            return _union([self.compile(branch) for branch in schema])
        kind, logical = schema["type"], schema.get("logicalType")
        if logical in _TIMESTAMPS:
            return _timestamp(self.compile(kind))
        if logical == "uuid":
            return _PRIMITIVES["string"]
        if kind == "record":
            check = self._record(schema)
        elif kind == "enum":
            symbols = frozenset(schema["symbols"])
            check = lambda v: type(v) is str and v in symbols  # noqa: E731
        elif kind == "array":
            check = _array(self.compile(schema["items"]))
        elif kind == "map":
            check = _map(self.compile(schema["values"]))
        elif kind == "fixed":
            size = schema["size"]
            check = lambda v: type(v) is bytes and len(v) == size  # noqa: E731
        else:
            return self.compile(kind)
        if "name" in schema:
            self._named[schema["name"]] = check
        return check

    def _reference(self, name: str) -> Check:
        """A named type defined elsewhere in the schema (maybe enclosing this one)."""
        return lambda v: self._named[name](v)

    def _record(self, schema: Mapping[str, Any]) -> Check:
        fields = [
            (field["name"], self.compile(field["type"]), "default" in field)
            for field in schema["fields"]
        ]
        names = frozenset(name for name, _, _ in fields)

        def check(value: Any) -> bool:
            if not isinstance(value, Mapping) or not names.issuperset(value):
                return False
            for name, fits, has_default in fields:
                if name in value:
                    if not fits(value[name]):
                        return False
                elif not has_default:
                    return False
            return True

        return check


def _union(branches: list[Check]) -> Check:
    if len(branches) == 2 and branches[0] is _PRIMITIVES["null"]:
        other = branches[1]
        return lambda v: v is None or other(v)
    return lambda v: any(fits(v) for fits in branches)


def _timestamp(underlying: Check) -> Check:
    return lambda v: (isinstance(v, datetime) and v.tzinfo is not None) or underlying(v)


def _array(items: Check) -> Check:
    return lambda v: type(v) is list and all(map(items, v))


def _map(values: Check) -> Check:
    return lambda v: (
        isinstance(v, Mapping) and all(type(k) is str and values(x) for k, x in v.items())
    )
