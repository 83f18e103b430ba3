"""Layer 4's read side: ClickHouse tables materialized from the event log by projectors."""

from projections.store import ChdbStore, ClickHouseServerStore, ProjectionStore, open_store

__all__ = ["ChdbStore", "ClickHouseServerStore", "ProjectionStore", "open_store"]
