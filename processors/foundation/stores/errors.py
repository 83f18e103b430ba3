"""The one failure every store reports, whatever its backend, so callers decide once per use
whether a shared-state outage fails open (cache, breakers) or closed (budgets)."""

from __future__ import annotations

__all__ = ["StoreUnavailable"]


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer within its timeout."""

    def __init__(self, store: str, detail: str) -> None:
        super().__init__(f"{store} store unavailable: {detail}")
        self.store = store
