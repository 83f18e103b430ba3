"""This replica's bound on the chat runs it waits for (``chat.max_in_flight``).

A request past the bound is refused with 503 ``OVERLOADED`` and ``Retry-After`` before it is
charged, claimed or published: overload is shed at once (the client may retry, here or on
another replica) instead of queueing past every deadline, and a refused request leaves nothing
behind. A slot is held until the run's watch ends, which happens at the latest when the watch
expires, so no way of leaving a request loses a slot for good."""

from __future__ import annotations

from api.errors import ApiError, HttpErrorCode
from api.metrics import SHED

__all__ = ["RunsInFlight", "Slot"]

_RETRY_AFTER_S = 1  # runs finish within seconds; a second spreads the retries out


class Slot:
    """One admitted run's place; releasing it twice is harmless, so every way a run ends
    (answered, failed, refused later, its watch expired) may release it."""

    def __init__(self, owner: RunsInFlight) -> None:
        self._owner: RunsInFlight | None = owner

    def release(self) -> None:
        if self._owner is not None:
            self._owner.taken -= 1
            self._owner = None


class RunsInFlight:
    """Counted on the event loop, so taking a slot needs no lock."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.taken = 0

    def take(self) -> Slot:
        if self.taken >= self.bound:
            SHED.inc()
            raise ApiError(
                HttpErrorCode.OVERLOADED,
                f"this replica is serving its limit of {self.bound} runs; retry shortly",
                headers={"Retry-After": str(_RETRY_AFTER_S)},
            )
        self.taken += 1
        return Slot(self)
