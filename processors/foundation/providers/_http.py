"""The HTTP side that every real adapter shares: one pooled client per provider, a bound on the
calls in flight, timeouts, Server-Sent Events, and the one mapping of transport and status
failures to ``FailureKind``. The API key is only ever a header value here, and every detail
text passes through ``redact`` first, so no ``ProviderError`` can carry it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from processors.foundation.providers.base import FailureKind, ProviderError

__all__ = ["JsonApi", "SseEvent", "elapsed_ms", "error_message", "parse_retry_after"]

_DETAIL_CHARS = 300


@dataclass(frozen=True)
class SseEvent:
    event: str | None
    data: str


# httpcore scans every pooled connection on each request; a burst must not leave hundreds idle.
MAX_IDLE_CONNECTIONS = 64


class JsonApi:
    """JSON over POST to one provider endpoint. At most ``max_in_flight`` calls run at once
    (the semaphore queues the rest, so the pool never has to refuse one), each bounded by the
    provider's timeout and by the caller's."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        secret: str | None,
        timeout_ms: int,
        max_in_flight: int,
    ) -> None:
        self._provider = provider
        self._secret = secret
        self._timeout_s = timeout_ms / 1000
        self._slots = asyncio.Semaphore(max_in_flight)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers),
            limits=httpx.Limits(
                max_connections=max_in_flight,
                max_keepalive_connections=min(max_in_flight, MAX_IDLE_CONNECTIONS),
            ),
            timeout=self._timeout_s,
        )

    def __repr__(self) -> str:
        return f"JsonApi(provider={self._provider!r}, base_url={str(self._client.base_url)!r})"

    async def post(self, path: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """The JSON object of a 2xx answer; anything else raises a classified error. The
        whole call, waiting for a free slot included, ends within the timeout."""
        timeout = min(self._timeout_s, timeout_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._take_slot(timeout)
        sent_at = loop.time()
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._client.post(path, json=body, timeout=timeout)
        except TimeoutError:
            # Blame the provider only if it had at least half the time; a call that spent
            # most of it in our queue says nothing about the provider.
            raise self._timed_out(timeout, loop.time() - sent_at >= timeout / 2) from None
        except httpx.TransportError as exc:
            raise self._transport_failure(exc, timeout) from None
        finally:
            self._slots.release()
        self._raise_for_status(response)
        return self.decode(response.text, "response body")

    async def events(
        self, path: str, body: dict[str, Any], timeout_s: float
    ) -> AsyncGenerator[SseEvent]:
        """The Server-Sent Events of a streamed answer. Each wait (a free slot, the headers,
        every next chunk) is bounded by the timeout; the length of the whole stream is the
        caller's to bound. Use it under ``contextlib.aclosing`` so the slot is freed at once
        when the caller stops early."""
        timeout = min(self._timeout_s, timeout_s)
        await self._take_slot(timeout)
        try:
            async with self._client.stream("POST", path, json=body, timeout=timeout) as response:
                if not response.is_success:
                    await response.aread()
                    self._raise_for_status(response)
                content_type = response.headers.get("content-type", "")
                if not content_type.startswith("text/event-stream"):
                    raise ProviderError(
                        FailureKind.MALFORMED,
                        f"a stream was asked for, the answer is {content_type or 'untyped'}",
                        status=response.status_code,
                    )
                async for event in _sse_events(response.aiter_lines()):
                    yield event
        except httpx.TransportError as exc:
            raise self._transport_failure(exc, timeout) from None
        finally:
            self._slots.release()

    def decode(self, text: str, what: str) -> dict[str, Any]:
        """A JSON object, or MALFORMED: a 2xx that is not what the API promises."""
        try:
            value = json.loads(text)
        except ValueError:
            raise ProviderError(
                FailureKind.MALFORMED, f"{what} is not JSON: {self.redact(text, limit=80)!r}"
            ) from None
        if not isinstance(value, dict):
            raise ProviderError(FailureKind.MALFORMED, f"{what} is not a JSON object")
        return value

    @contextmanager
    def shape(self, what: str) -> Iterator[None]:
        """Reading a decoded 2xx body: a missing field or a wrong type is MALFORMED."""
        try:
            yield
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            detail = f"unexpected {what}: {type(exc).__name__}: {exc}"
            raise ProviderError(FailureKind.MALFORMED, self.redact(detail)) from None

    def redact(self, text: str, limit: int = _DETAIL_CHARS) -> str:
        """On one line, the key replaced before the cut, so no part of it can remain."""
        if self._secret:
            text = text.replace(self._secret, "[redacted]")
        return " ".join(text.split())[:limit]

    async def aclose(self) -> None:
        await self._client.aclose()

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if response.is_success:
            return
        detail = f"HTTP {status}: {self.redact(_error_text(response.text))}"
        if status == 429:
            retry_after = parse_retry_after(response.headers, time.time())
            raise ProviderError(
                FailureKind.RATE_LIMITED, detail, status=status, retry_after_s=retry_after
            )
        kind = FailureKind.SERVER_ERROR if status >= 500 else FailureKind.CLIENT_ERROR
        raise ProviderError(kind, detail, status=status)

    async def _take_slot(self, timeout_s: float) -> None:
        """Wait for one of ``max_in_flight`` slots; timing out here is our queue, not the
        provider (see ``ProviderError.provider_fault``)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise ProviderError(
                FailureKind.TIMEOUT,
                f"no free {self._provider} slot within {timeout_s:.2f}s (max_in_flight reached)",
                provider_fault=False,
            ) from None

    def _timed_out(self, timeout_s: float, provider_fault: bool = True) -> ProviderError:
        return ProviderError(
            FailureKind.TIMEOUT,
            f"no answer from {self._provider} within {timeout_s:.2f}s",
            provider_fault=provider_fault,
        )

    def _transport_failure(self, exc: httpx.TransportError, timeout_s: float) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            return self._timed_out(timeout_s)
        detail = self.redact(f"{type(exc).__name__}: {exc}")
        return ProviderError(FailureKind.CONNECTION, detail)


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait: ``retry-after-ms`` (OpenAI's), else ``Retry-After`` as seconds or as
    an HTTP date (relative to ``now``, epoch seconds); None when absent or unreadable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def elapsed_ms(started: float) -> int:
    """Milliseconds since ``started``, a ``time.monotonic()`` reading."""
    return int((time.monotonic() - started) * 1000)


async def _sse_events(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    """Events as the SSE spec frames them: fields up to a blank line; an event cut off by the
    end of the stream is dropped, so a truncated stream reads as incomplete, not malformed."""
    event: str | None = None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SseEvent(event, "\n".join(data))
            event, data = None, []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)


def error_message(body: Any) -> str | None:
    """The provider's own words, ``error.message`` in OpenAI's and Anthropic's bodies alike."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return error if isinstance(error, str) else None


def _error_text(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text
    return error_message(body) or text
