"""How every store talks to Redis: the shared client (``streams.redis_state``) and one
translation of transport failures into ``StoreUnavailable``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import TimeoutError

from processors.foundation.stores.errors import StoreUnavailable
from streams.redis_state import UNREACHABLE

__all__ = ["DEFAULT_NAMESPACE", "reaching", "ttl_ms"]

DEFAULT_NAMESPACE = "llmrp"
_NO_FREE_CONNECTION = "No connection available"  # the bounded pool's wait timed out


@contextmanager
def reaching(store: str) -> Iterator[None]:
    """Turn transport failures (refused, timed out, read-only replica) into ``StoreUnavailable``;
    anything else (a script error) is a bug and propagates as is."""
    try:
        yield
    except UNREACHABLE as error:
        detail = str(error) or type(error).__name__
        transient = isinstance(error, TimeoutError) or _NO_FREE_CONNECTION in detail
        raise StoreUnavailable(store, detail, transient=transient) from error


def ttl_ms(seconds: float) -> int:
    """A Redis PX/PEXPIRE argument: whole milliseconds, never below one."""
    return max(1, math.ceil(seconds * 1000))
