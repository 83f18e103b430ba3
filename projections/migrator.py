"""Versioned migrations: ``migrations/NNNN_name.sql`` applied in order, each recorded once.

A file's statements end with ``;`` at the end of a line; ``{database}`` and
``{events_ttl_days}`` are filled in. Every statement is idempotent (``IF NOT EXISTS``), so a
migration interrupted half-way is simply applied again. An applied file must never change: its
checksum is recorded, and a mismatch stops the projector instead of diverging silently."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from projections.store import ProjectionStore, sql_string

__all__ = ["MIGRATIONS_DIR", "Migration", "MigrationError", "load_migrations", "migrate"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_TTL_DAYS = re.compile(r"TTL toDateTime\(timestamp\) \+ toIntervalDay\((\d+)\)")


class MigrationError(RuntimeError):
    """The database disagrees with the migration files (an applied file was edited)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    template: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()

    def statements(self, database: str, events_ttl_days: int) -> list[str]:
        sql = self.template.replace("{database}", database)
        sql = sql.replace("{events_ttl_days}", str(events_ttl_days))
        chunks = (chunk.strip() for chunk in _STATEMENT_END.split(sql))
        return [chunk for chunk in chunks if _has_code(chunk)]


def _has_code(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        migrations.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return migrations


def migrate(
    store: ProjectionStore,
    database: str,
    events_ttl_days: int,
    migrations: list[Migration] | None = None,
) -> list[int]:
    """Apply what is missing, then bring the events TTL to ``events_ttl_days``; returns the
    versions applied now."""
    store.command(f"CREATE DATABASE IF NOT EXISTS {database} ENGINE = Atomic")
    store.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC')) "
        "ENGINE = MergeTree ORDER BY version"
    )
    log_table = f"{database}.schema_migrations"
    applied = {
        int(row["version"]): str(row["checksum"])
        for row in store.rows(f"SELECT version, checksum FROM {log_table}")  # noqa: S608
    }
    done = []
    for migration in load_migrations() if migrations is None else migrations:
        recorded = applied.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} changed after it was "
                    "applied; add a new migration instead"
                )
            continue
        for statement in migration.statements(database, events_ttl_days):
            store.command(statement)
        store.command(
            f"INSERT INTO {log_table} VALUES ({migration.version}, "  # noqa: S608
            f"{sql_string(migration.name)}, {sql_string(migration.checksum)}, now64(3))"
        )
        done.append(migration.version)
    _set_events_ttl(store, database, events_ttl_days)
    return done


def _set_events_ttl(store: ProjectionStore, database: str, days: int) -> None:
    """The TTL is configuration, not history: a changed setting alters the live table (old
    parts expire at their next merge)."""
    rows = store.rows(
        "SELECT engine_full FROM system.tables "  # noqa: S608
        f"WHERE database = {sql_string(database)} AND name = 'events'"
    )
    current = _TTL_DAYS.search(str(rows[0]["engine_full"])) if rows else None
    if current is not None and int(current.group(1)) != days:
        store.command(
            f"ALTER TABLE {database}.events MODIFY TTL toDateTime(timestamp) + INTERVAL {days} DAY "
            "SETTINGS materialize_ttl_after_modify = 0"
        )
