"""This replica's admission of chat runs: a bound on the runs it waits for
(``chat.max_in_flight``) and on how long admitted runs queue before a processor starts them
(``chat.max_queue_delay_ms``).

A request refused by either is answered 503 ``OVERLOADED`` with ``Retry-After`` before it is
charged, claimed or published: overload is shed at once (the client may retry, here or on
another replica) instead of queueing past every deadline, and a refused request leaves nothing
behind. A slot is held until the run's watch ends, which happens at the latest when the watch
expires, so no way of leaving a request loses a slot for good.

The in-flight bound alone cannot keep latency low: LLM calls last seconds, so it must be large,
and a large bound lets a backlog grow in Kafka worth seconds of work. The queue delay measures
that backlog directly, whatever the providers' latency: the time from a run's admission to its
first event (the processor started it). As in CoDel, a queue is standing when even the
*shortest* delay seen during an interval passed the target, here in two intervals running with
a few runs started in each (a cold start's first slow runs are not a backlog); the next
interval's requests are then refused, and admission resumes as soon as an interval's shortest
delay is back under the target (or too few runs started in it to tell)."""

from __future__ import annotations

import time
from collections.abc import Callable

from api.errors import ApiError, HttpErrorCode
from api.metrics import SHED

__all__ = ["RunsInFlight", "Slot"]

_RETRY_AFTER_S = 1  # runs finish within seconds; a second spreads the retries out
INTERVAL_S = 0.1
_INTERVALS_OVER = 2  # consecutive intervals over the target that make a queue standing
_MIN_STARTS = 4  # runs started in an interval for its shortest delay to count


class Slot:
    """One admitted run's place; releasing it twice is harmless, so every way a run ends
    (answered, failed, refused later, its watch expired) may release it."""

    def __init__(self, owner: RunsInFlight, taken_at: float) -> None:
        self._owner: RunsInFlight | None = owner
        self._taken_at: float | None = taken_at

    def started(self) -> None:
        """The run's first event arrived: its queue delay is known (counted once)."""
        if self._owner is not None and self._taken_at is not None:
            self._owner.queued(self._owner.clock() - self._taken_at)
            self._taken_at = None

    def release(self) -> None:
        if self._owner is not None:
            self._owner.taken -= 1
            self._owner = None


class RunsInFlight:
    """Counted on the event loop, so taking a slot needs no lock."""

    def __init__(
        self,
        bound: int,
        max_queue_delay_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bound = bound
        self.max_queue_delay_s = max_queue_delay_s
        self.clock = clock
        self.taken = 0
        self._interval_ends = clock() + INTERVAL_S
        self._shortest = float("inf")  # this interval's shortest queue delay
        self._starts = 0  # runs started this interval
        self._intervals_over = 0  # consecutive intervals whose shortest delay passed the target

    def take(self) -> Slot:
        refused = self.refusal()
        if refused is not None:
            raise refused
        self.taken += 1
        return Slot(self, self.clock())

    def refusal(self) -> ApiError | None:
        """Why a run would be refused now, if it would (counted as shed): the edge asks before
        it reads a body, so a refusal costs no parsing and comes at once under overload."""
        if self.taken >= self.bound:
            return self._refused(f"this replica is serving its limit of {self.bound} runs")
        if self._queue_standing():
            return self._refused(
                f"runs wait more than {self.max_queue_delay_s * 1000:.0f} ms to start here"
            )
        return None

    def queued(self, delay_s: float) -> None:
        self._queue_standing()
        self._shortest = min(self._shortest, delay_s)
        self._starts += 1

    def _queue_standing(self) -> bool:
        now = self.clock()
        if now >= self._interval_ends:
            over = self._starts >= _MIN_STARTS and self._shortest > self.max_queue_delay_s
            idle_since = now >= self._interval_ends + INTERVAL_S  # intervals with no start
            self._intervals_over = self._intervals_over + 1 if over and not idle_since else 0
            self._shortest, self._starts = float("inf"), 0
            self._interval_ends = now + INTERVAL_S
        return self._intervals_over >= _INTERVALS_OVER

    def _refused(self, why: str) -> ApiError:
        SHED.inc()
        return ApiError(
            HttpErrorCode.OVERLOADED,
            f"{why}; retry shortly",
            headers={"Retry-After": str(_RETRY_AFTER_S)},
        )
