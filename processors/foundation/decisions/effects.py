"""What a run asks of the world, as values: the decision core yields an effect and is sent
back what came of it. The core never awaits, reads a clock or touches a store; the edge
(``processors/foundation/edge.py``) performs each effect, so a test can drive a whole run by
answering effects, and one clock (``Now``) serves every timing decision.

Failures of shared state come back as ``UNAVAILABLE`` rather than raised: each decision says
how its store fails (open or closed) where it is made."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Generic, TypeVar

from processors.foundation.config import BreakerSettings, TenantBudget
from processors.foundation.embedding import Vector
from processors.foundation.providers import ChatDelta, ChatRequest, ChatResult, ProviderError
from processors.foundation.stores import BudgetRejection, Reservation, SemanticHit, Transition

__all__ = [
    "UNAVAILABLE",
    "AcquireBreaker",
    "CallProvider",
    "ChargeBudget",
    "Checkpoint",
    "Decisions",
    "Effect",
    "Emit",
    "EmitLive",
    "FindCached",
    "FindSimilar",
    "NextDelta",
    "Now",
    "ObserveLatency",
    "OpenStream",
    "RecordBreaker",
    "ReleaseBudget",
    "ReserveBudget",
    "SettleBudget",
    "Sleep",
    "StoreAnswer",
    "StreamEnd",
    "Unavailable",
    "ask",
]

T = TypeVar("T")


class Unavailable(Enum):
    """A shared store did not answer within its timeout."""

    STORE = "store unavailable"


UNAVAILABLE: Final = Unavailable.STORE


class Effect(Generic[T]):
    """An effect whose outcome is a ``T``."""


Decisions = Generator[Effect[Any], Any, T]
"""A piece of the core: yields effects, is sent their outcomes, returns a ``T``."""


def ask(effect: Effect[T]) -> Decisions[T]:
    """``outcome = yield from ask(effect)``, typed by the effect."""
    outcome: T = yield effect
    return outcome


@dataclass(frozen=True)
class Now(Effect[float]):
    """Wall-clock time, epoch seconds: the run's only clock."""


@dataclass(frozen=True)
class Emit(Effect[None]):
    """A decided event; it is logged, then sent, at the next ``Checkpoint``."""

    event_type: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class EmitLive(Effect[None]):
    """An event sent at once and never logged (a stream's deltas), under an id of its own."""

    event_type: str
    payload: Mapping[str, Any]
    slot: str


@dataclass(frozen=True)
class Checkpoint(Effect[None]):
    """Log and send what was decided since the last checkpoint: before anyone is paid, and
    at the end of the run."""


@dataclass(frozen=True)
class FindCached(Effect[bytes | None | Unavailable]):
    key: str


@dataclass(frozen=True)
class FindSimilar(Effect[SemanticHit | None | Unavailable]):
    scope: str
    vector: Vector
    threshold: float
    now: float


@dataclass(frozen=True)
class StoreAnswer(Effect[None]):
    """Cache an answer, exactly and/or semantically; a store that fails is skipped."""

    exact_key: str | None
    semantic: tuple[str, bytes] | None  # (scope, packed vector)
    entry: bytes
    ttl_s: int
    now: float


@dataclass(frozen=True)
class ReserveBudget(Effect[Reservation | BudgetRejection | Unavailable]):
    tenant: str
    tokens: int
    cost_usd: float
    budget: TenantBudget
    now: float


@dataclass(frozen=True)
class SettleBudget(Effect[None]):
    """Replace a reservation's estimate with what was used; a failed settle keeps it."""

    reservation: Reservation
    tokens: int
    cost_usd: float


@dataclass(frozen=True)
class ChargeBudget(Effect[None]):
    """Count usage that was never reserved (a degraded run)."""

    tenant: str
    tokens: int
    cost_usd: float
    now: float


@dataclass(frozen=True)
class ReleaseBudget(Effect[None]):
    reservation: Reservation


@dataclass(frozen=True)
class AcquireBreaker(Effect[bool | Unavailable]):
    """May this target be called now (closed, or the half-open probe)?"""

    key: str
    settings: BreakerSettings
    now: float


@dataclass(frozen=True)
class RecordBreaker(Effect[Transition | None | Unavailable]):
    key: str
    success: bool
    settings: BreakerSettings
    now: float


@dataclass(frozen=True)
class ObserveLatency(Effect[None]):
    key: str
    latency_ms: float


@dataclass(frozen=True)
class Sleep(Effect[None]):
    seconds: float


@dataclass(frozen=True)
class CallProvider(Effect[ChatResult | ProviderError]):
    """One non-streaming call; the adapter is given ``timeout_s``, and the edge bounds the
    call a little past it even if the adapter does not."""

    provider: str
    request: ChatRequest
    timeout_s: float


@dataclass(frozen=True)
class OpenStream(Effect[None]):
    """Start a streaming call; its pieces come from ``NextDelta``. The whole stream is bounded
    as a ``CallProvider`` is."""

    provider: str
    request: ChatRequest
    timeout_s: float


@dataclass(frozen=True)
class StreamEnd:
    """The open stream finished; timings as the edge measured them."""

    latency_ms: int
    time_to_first_token_ms: int | None


@dataclass(frozen=True)
class NextDelta(Effect[ChatDelta | StreamEnd | ProviderError]):
    """The open stream's next piece, its end, or its failure (which closes it)."""
