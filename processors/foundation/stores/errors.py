"""The one failure every store reports, whatever its backend, so callers decide once per use
whether a shared-state outage fails open (cache, breakers) or closed (budgets)."""

from __future__ import annotations

__all__ = ["StoreUnavailable"]


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer within its timeout. ``transient``: it
    timed out or had no free connection (often our own loop's lag under load, so trying again
    may well work), rather than refusing the connection (down)."""

    def __init__(self, store: str, detail: str, *, transient: bool = False) -> None:
        super().__init__(f"{store} store unavailable: {detail}")
        self.store = store
        self.transient = transient
