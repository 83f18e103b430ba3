"""What every HTTP provider adapter does the same way, whatever the API: post the request and
read the answer, or fold the streamed events into one ``StreamedAnswer`` while passing its text
on. A subclass only translates: the request body, the answer, one stream event."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, ClassVar, NamedTuple

from processors.foundation.providers._assembly import StreamedAnswer
from processors.foundation.providers._http import JsonApi, SseEvent, elapsed_ms
from processors.foundation.providers._seam import Seam
from processors.foundation.providers.base import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    ProviderError,
    Usage,
)
from processors.foundation.providers.tokens import estimated_usage

__all__ = ["Answer", "HttpChatAdapter"]


class Answer(NamedTuple):
    """A whole (non-streamed) answer, translated; usage None when the provider reported none."""

    text: str | None
    tool_calls: list[dict[str, Any]] | None
    usage: Usage | None
    finish_reason: str | None


class HttpChatAdapter(ABC):
    name: str
    _api: JsonApi
    _path: ClassVar[str]
    _answer_noun: ClassVar[str]  # names the answer in "malformed ..." errors
    _restates: ClassVar[bool]  # a continuation may restate the end of the answer it continues

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @abstractmethod
    def _request_body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        """The provider's request for ``request``."""

    @abstractmethod
    def _read_answer(self, body: dict[str, Any]) -> Answer:
        """The answer in ``body``; a missing or mistyped field raises (reported as malformed)."""

    @abstractmethod
    def _take(self, answer: StreamedAnswer, event: SseEvent) -> str | None:
        """Fold one stream event into ``answer``; its text, if it has any."""

    async def complete(self, request: ChatRequest, timeout_s: float) -> ChatResult:
        started = time.monotonic()
        body = await self._api.post(self._path, self._request_body(request, False), timeout_s)
        with self._api.shape(self._answer_noun):
            text, calls, usage, finish_reason = self._read_answer(body)
        return ChatResult(
            text=text,
            tool_calls=calls,
            finish_reason=finish_reason,
            usage=usage or estimated_usage(request, text, calls),
            latency_ms=elapsed_ms(started),
        )

    async def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[ChatDelta]:
        """A continuation's text comes through a seam: only what does not restate the answer
        it continues is passed on."""
        answer = StreamedAnswer()
        body = self._request_body(request, True)
        seam = Seam(request.continue_from or "", restates=self._restates)
        async with aclosing(self._api.events(self._path, body, timeout_s)) as events:
            try:
                async for event in events:
                    piece = seam.push(self._take(answer, event) or "")
                    if piece:
                        yield ChatDelta(text=piece)
                    if answer.ended:
                        break
            except ProviderError as error:
                if answer.calling_tools:
                    error.continuable = False
                raise
        rest = seam.finish()
        if rest:
            yield ChatDelta(text=rest)
        yield answer.final_delta(request)

    async def aclose(self) -> None:
        await self._api.aclose()
