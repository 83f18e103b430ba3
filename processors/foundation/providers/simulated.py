"""A provider that answers without a network, for demos, tests and benchmarks.

Everything it does is reproducible: the answer text is derived from the request alone, and
each attempt's latency and failure from a ``random.Random`` seeded by the configured seed, the
request's digest and the attempt number for that request. So a rerun of the same traffic
behaves the same, while a retry of a failed request can succeed as with a real provider.
Latency is really awaited (``asyncio.sleep``): that is what is being simulated."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from processors.foundation.config import LatencyModel, SimulationSettings
from processors.foundation.providers._assembly import tool_call
from processors.foundation.providers._http import elapsed_ms
from processors.foundation.providers.base import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    FailureKind,
    ProviderError,
    Usage,
)
from processors.foundation.providers.tokens import count_text_tokens, count_tokens

__all__ = ["SimulatedProvider"]

_Z_99 = 2.3263478740408408  # the standard normal's 99th percentile
_REMEMBERED_REQUESTS = 65_536  # attempt counters kept, oldest forgotten first
_RETRY_AFTER_S = 1.0
# Source 1 of a numbered-sources prompt (an optional "(title)" label, then its first sentence).
_FIRST_SOURCE = re.compile(r"^\[1\] (?:\([^)\n]*\) )?(.+?[.!?])(?=\s|$)", re.MULTILINE)
_STATUS = {FailureKind.SERVER_ERROR: 500, FailureKind.RATE_LIMITED: 429}
_WORDS = (
    "the stream carries every event once and in order while replicas share the work "
    "a router picks the target a breaker opens after failures and budgets hold the spend "
    "guardrails redact what must not leave and the cache answers what was asked before"
).split()


@dataclass(frozen=True)
class _Attempt:
    words: list[str]
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    usage: Usage
    latency_s: float
    failure: FailureKind | None
    cut: bool  # a stream of it drops halfway through its words


class SimulatedProvider:
    def __init__(self, name: str, settings: SimulationSettings) -> None:
        self.name = name
        self._settings = settings
        self._attempts: OrderedDict[str, int] = OrderedDict()

    def __repr__(self) -> str:
        return f"SimulatedProvider(name={self.name!r})"

    async def complete(self, request: ChatRequest, timeout_s: float) -> ChatResult:
        started = time.monotonic()
        attempt = self._attempt(request)
        await self._wait(attempt, timeout_s)
        return ChatResult(
            text=" ".join(attempt.words) or None,
            tool_calls=attempt.tool_calls,
            finish_reason=attempt.finish_reason,
            usage=attempt.usage,
            latency_ms=elapsed_ms(started),
        )

    async def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[ChatDelta]:
        """The whole latency passes before the first word; the words then follow at once (or
        half of them, then the connection drops, for an attempt that ``cut_rate`` cuts)."""
        attempt = self._attempt(request)
        await self._wait(attempt, timeout_s)
        for position, word in enumerate(attempt.words):
            if attempt.cut and position == max(len(attempt.words) // 2, 1):
                raise ProviderError(FailureKind.CONNECTION, "simulated: the stream was cut")
            spaced = position > 0 or request.continue_from is not None
            yield ChatDelta(text=f" {word}" if spaced else word)
        yield ChatDelta(
            tool_calls=attempt.tool_calls, finish_reason=attempt.finish_reason, usage=attempt.usage
        )

    async def aclose(self) -> None:
        """Holds no connections."""

    def _attempt(self, request: ChatRequest) -> _Attempt:
        digest = _digest(request)
        number = self._attempts.pop(digest, 0)
        self._attempts[digest] = number + 1
        if len(self._attempts) > _REMEMBERED_REQUESTS:
            self._attempts.popitem(last=False)
        chance = random.Random(f"{self._settings.seed}:{digest}:{number}")  # noqa: S311 - no secret
        latency_s = _latency_ms(self._settings.latency, chance) / 1000
        failed = chance.random() < self._settings.error_rate
        cut = chance.random() < self._settings.cut_rate
        words, calls, finish_reason = self._answer(request, digest)
        completion = len(words) or count_text_tokens(request.model, json.dumps(calls))
        return _Attempt(
            words=words,
            tool_calls=calls,
            finish_reason=finish_reason,
            usage=Usage(count_tokens(request.model, request.messages), completion, True),
            latency_s=latency_s,
            failure=FailureKind(self._settings.error_kind) if failed else None,
            cut=cut,
        )

    def _answer(
        self, request: ChatRequest, digest: str
    ) -> tuple[list[str], list[dict[str, Any]] | None, str]:
        """A call to the first tool when tools are offered and no result came back yet (so
        agent loops can be demonstrated); when the system prompt numbers sources (``[1] ...``,
        as ``mode: rag`` does), the first sentence of source 1, cited (so grounded answers can
        be demonstrated); otherwise pseudo-text. Cut at ``max_tokens``. A continuation says
        the words of the whole answer that come after the ones it was given."""
        if request.continue_from is not None:
            whole = replace(request, continue_from=None)
            words, calls, finish_reason = self._answer(whole, _digest(whole))
            return words[len(request.continue_from.split()) :], calls, finish_reason
        last_role = request.messages[-1].role if request.messages else None
        if request.tools and request.tool_choice != "none" and last_role != "tool":
            function = request.tools[0].get("function", request.tools[0])
            return [], [tool_call(f"call_{digest[:24]}", function["name"], "{}")], "tool_calls"
        quoted = _first_source_sentence(request)
        if quoted is not None:
            words = f"{quoted[:-1]} [1]{quoted[-1]}".split()  # cited before its full stop
            wanted = len(words)
        else:
            wanted = self._settings.completion_tokens
            text = random.Random(digest)  # noqa: S311 - reproducible filler, not a secret
            words = [text.choice(_WORDS) for _ in range(wanted)]
        count = min(wanted, request.max_tokens) if request.max_tokens else wanted
        return words[:count], None, "length" if count < wanted else "stop"

    async def _wait(self, attempt: _Attempt, timeout_s: float) -> None:
        """Sleep as the provider would make the caller wait, then fail if this attempt does."""
        if attempt.failure is FailureKind.TIMEOUT or attempt.latency_s > timeout_s:
            await asyncio.sleep(timeout_s)
            raise ProviderError(FailureKind.TIMEOUT, f"simulated: no answer in {timeout_s:.2f}s")
        await asyncio.sleep(attempt.latency_s)
        if attempt.failure is not None:
            raise ProviderError(
                attempt.failure,
                f"simulated {attempt.failure.value}",
                status=_STATUS.get(attempt.failure),
                retry_after_s=_RETRY_AFTER_S
                if attempt.failure is FailureKind.RATE_LIMITED
                else None,
            )


def _first_source_sentence(request: ChatRequest) -> str | None:
    for message in request.messages:
        if message.role == "system" and isinstance(message.content, str):
            found = _FIRST_SOURCE.search(message.content)
            if found:
                return found.group(1)
    return None


def _latency_ms(model: LatencyModel, chance: random.Random) -> float:
    """Lognormal through the given median and 99th percentile: mu = ln p50 and
    sigma = (ln p99 - ln p50) / z(0.99)."""
    if model.distribution == "fixed" or model.p50_ms <= 0:
        return model.p50_ms
    sigma = math.log(max(model.p99_ms, model.p50_ms) / model.p50_ms) / _Z_99
    return chance.lognormvariate(math.log(model.p50_ms), sigma)


def _digest(request: ChatRequest) -> str:
    """The request's fields as ``dataclasses.asdict`` gives them, at a fraction of its cost."""
    fields = {**vars(request), "messages": [vars(m) for m in request.messages]}
    canonical = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
