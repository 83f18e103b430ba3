"""Layer 4's read side: ClickHouse tables materialized from the event log by the projector."""

from projections.checksum import checksum, table_digests
from projections.migrator import MigrationError, migrate
from projections.projector import Projector
from projections.query_client import QueryClient
from projections.query_server import QueryServer
from projections.replay import Replay, ReplayRequest
from projections.settings import ProjectionSettings
from projections.sql_guard import NotReadOnly, read_only_statement
from projections.store import (
    ChdbStore,
    ClickHouseServerStore,
    ProjectionStore,
    SqlReader,
    StoreError,
    open_store,
)

__all__ = [
    "ChdbStore",
    "ClickHouseServerStore",
    "MigrationError",
    "NotReadOnly",
    "ProjectionSettings",
    "ProjectionStore",
    "Projector",
    "QueryClient",
    "QueryServer",
    "Replay",
    "ReplayRequest",
    "SqlReader",
    "StoreError",
    "checksum",
    "migrate",
    "open_store",
    "read_only_statement",
    "table_digests",
]
