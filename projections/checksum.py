"""A stable digest of every projection table: equal digests mean equal contents as readers see
them, whatever the insert order, batching or merge state.

Per table: the row count and the 64-bit wrap-around sum of a hash per row, which does not
depend on row order (and, unlike XOR, does not cancel a duplicated row). Aggregating tables are
read ``FINAL`` with their states finalized (set-like results sorted), so parts not merged yet
and the order values arrived in do not show. Bookkeeping columns (``batch_id``: which insert
wrote a row) are left out."""

from __future__ import annotations

import hashlib

from projections.shadow import SHADOW_SUFFIX
from projections.store import SqlReader, read_rows, sql_string

__all__ = ["BOOKKEEPING_COLUMNS", "checksum", "table_digests"]

BOOKKEEPING_COLUMNS = frozenset({"batch_id"})
_SETS = ("AggregateFunction(groupUniqArray", "AggregateFunction(groupArray")


def table_digests(reader: SqlReader, database: str) -> dict[str, str]:
    """``{table: "<rows>:<hash>"}`` for every MergeTree-family table but the migration log."""
    tables = read_rows(
        reader,
        "SELECT name, engine FROM system.tables "  # noqa: S608
        f"WHERE database = {sql_string(database)} AND engine LIKE '%MergeTree' "
        f"AND name != 'schema_migrations' AND NOT endsWith(name, {sql_string(SHADOW_SUFFIX)}) "
        "ORDER BY name",
    )
    digests = {}
    for table in tables:
        name, engine = str(table["name"]), str(table["engine"])
        columns = read_rows(
            reader,
            "SELECT name, type FROM system.columns "  # noqa: S608
            f"WHERE database = {sql_string(database)} AND table = {sql_string(name)} "
            "ORDER BY position",
        )
        values = [
            _finalized(str(c["name"]), str(c["type"]))
            for c in columns
            if c["name"] not in BOOKKEEPING_COLUMNS
        ]
        final = " FINAL" if engine == "AggregatingMergeTree" else ""
        row_hash = f"cityHash64(tuple({', '.join(values)}))"
        (row,) = read_rows(
            reader,
            f"SELECT count() AS rows, toString(sum({row_hash})) AS hash "  # noqa: S608
            f"FROM {database}.{name}{final}",
        )
        digests[name] = f"{row['rows']}:{int(str(row['hash'])):016x}"
    return digests


def checksum(reader: SqlReader, database: str) -> str:
    """One digest over every table's (sha256 of the sorted ``table=digest`` lines)."""
    digests = table_digests(reader, database)
    lines = "\n".join(f"{table}={digest}" for table, digest in sorted(digests.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _finalized(column: str, type_name: str) -> str:
    quoted = f"`{column}`"
    if not type_name.startswith("AggregateFunction("):
        return quoted
    value = f"finalizeAggregation({quoted})"
    return f"arraySort({value})" if type_name.startswith(_SETS) else value
