"""Shadow copies of projection tables, built beside the live ones and swapped in atomically.

``events`` and every table a materialized view fills from ``events`` can be rebuilt. A shadow
table is ``CREATE TABLE x__shadow AS x`` (same columns, engine, key, TTL); each rebuilt table's
view gets a shadow view from ``events__shadow`` into it, from the live view's own definition.

Views resolve their source and target tables by name (measured on chDB 26.9: after
``EXCHANGE TABLES`` the live view feeds whatever is now called ``events`` into whatever is now
called ``runs``). So the swap exchanges the data tables only: each ``EXCHANGE`` is atomic, the
live views then feed the rebuilt tables, and the shadow views (still wired to the ``__shadow``
names, now the old data) are dropped with the old tables."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from projections.store import ProjectionStore, sql_string

__all__ = ["SHADOW_SUFFIX", "Shadows", "View"]

SHADOW_SUFFIX = "__shadow"
SOURCE = "events"


@dataclass(frozen=True)
class View:
    name: str
    target: str
    create_sql: str


class Shadows:
    def __init__(self, store: ProjectionStore, database: str) -> None:
        self._store = store
        self._db = database

    def views(self) -> list[View]:
        """The materialized views that read ``events``, with their target tables."""
        rows = self._store.rows(
            "SELECT name, create_table_query FROM system.tables "  # noqa: S608
            f"WHERE database = {sql_string(self._db)} AND engine = 'MaterializedView' "
            f"AND NOT endsWith(name, {sql_string(SHADOW_SUFFIX)}) ORDER BY name"
        )
        db = re.escape(self._db)
        views = []
        for row in rows:
            sql = str(row["create_table_query"])
            target = re.search(rf"\bTO {db}\.(\w+)", sql)
            if target and re.search(rf"\bFROM {db}\.{SOURCE}\b", sql):
                views.append(View(str(row["name"]), target.group(1), sql))
        return views

    def rebuildable(self) -> list[str]:
        return [SOURCE, *sorted({view.target for view in self.views()})]

    def plan(self, requested: Sequence[str]) -> list[str]:
        """The tables a replay swaps: ``requested``, or every rebuildable table."""
        rebuildable = self.rebuildable()
        unknown = sorted(set(requested) - set(rebuildable))
        if unknown:
            raise ValueError(
                f"cannot rebuild {', '.join(unknown)} from the topics; rebuildable: "
                f"{', '.join(rebuildable)}"
            )
        return [table for table in rebuildable if not requested or table in requested]

    def create(self, tables: Sequence[str]) -> None:
        """``events__shadow`` (always: it feeds the shadow views and deduplicates), a shadow of
        each table in ``tables`` and a shadow view into each."""
        self.drop()
        for table in dict.fromkeys([SOURCE, *tables]):
            self._store.command(f"CREATE TABLE {self._name(table, True)} AS {self._name(table)}")
        for view in self.views():
            if view.target in tables:
                self._store.command(self._shadow_view_sql(view))

    def seed_before(self, moment: datetime) -> None:
        """Keep the live events older than ``moment`` (a replay from a timestamp). Their
        ``batch_id`` becomes 0: it named inserts into the live table, and the shadow's duplicate
        check must not mistake them for rows of its own batches."""
        micros = int(moment.timestamp() * 1_000_000)
        shadow, live = self._name(SOURCE, True), self._name(SOURCE)
        self._store.command(
            f"INSERT INTO {shadow} SELECT * REPLACE (0 AS batch_id) FROM {live} "  # noqa: S608
            f"WHERE timestamp < fromUnixTimestamp64Micro({micros}, 'UTC')"
        )

    def swap(self, tables: Sequence[str]) -> None:
        for table in tables:
            self._store.command(
                f"EXCHANGE TABLES {self._name(table)} AND {self._name(table, True)}"
            )

    def drop(self) -> None:
        """Every shadow view, then every shadow table (old data after a swap, or leftovers of an
        interrupted replay)."""
        rows = self._store.rows(
            "SELECT name, engine FROM system.tables "  # noqa: S608
            f"WHERE database = {sql_string(self._db)} "
            f"AND endsWith(name, {sql_string(SHADOW_SUFFIX)}) "
            "ORDER BY engine = 'MaterializedView' DESC"
        )
        for row in rows:
            kind = "VIEW" if row["engine"] == "MaterializedView" else "TABLE"
            self._store.command(f"DROP {kind} IF EXISTS {self._db}.{row['name']} SYNC")

    def _shadow_view_sql(self, view: View) -> str:
        sql = view.create_sql
        for name in (view.name, view.target, SOURCE):
            sql = re.sub(rf"\b{re.escape(self._db)}\.{name}\b", self._name(name, True), sql)
        return sql

    def _name(self, table: str, shadow: bool = False) -> str:
        return f"{self._db}.{table}{SHADOW_SUFFIX if shadow else ''}"
