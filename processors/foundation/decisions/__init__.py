"""Layer 1's decisions as a pure function of the command, the config and what the world
answered: ``decide`` yields effects, the edge performs them (see ``effects.py``)."""

from processors.foundation.decisions.effects import Decisions, Effect
from processors.foundation.decisions.run import DEFAULT_TIMEOUT_S, Conditions, decide, interrupted

__all__ = ["DEFAULT_TIMEOUT_S", "Conditions", "Decisions", "Effect", "decide", "interrupted"]
