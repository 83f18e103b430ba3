"""The HTTP side that every real adapter shares: one pooled client per provider, a bound on the
calls in flight, timeouts, Server-Sent Events, and the one mapping of transport and status
failures to ``FailureKind``. The API key is only ever a header value here, and every detail
text passes through ``redact`` first, so no ``ProviderError`` can carry it.

The client is aiohttp: about a tenth of httpx's CPU per call (``bench/provider_client.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import certifi

from processors.foundation.providers.base import FailureKind, ProviderError

__all__ = ["JsonApi", "SseEvent", "elapsed_ms", "error_message", "parse_retry_after"]

_DETAIL_CHARS = 300
_UNBOUNDED = aiohttp.ClientTimeout()  # for a call that ``asyncio.timeout_at`` bounds whole


@dataclass(frozen=True)
class SseEvent:
    event: str | None
    data: str


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
        self._base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self._secret = secret
        self._timeout_s = timeout_ms / 1000
        self._max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._proxy = _env_proxy(base_url)
        self._tls = _tls_context()  # here, not in the first call's time
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"JsonApi(provider={self._provider!r}, base_url={self._base_url!r})"

    def _send(
        self, path: str, body: dict[str, Any], bounds: aiohttp.ClientTimeout
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """POST ``body``. A redirect is not followed (it would carry the key elsewhere): it
        reads as an error. The pooled session is opened on first use, since aiohttp binds it
        to the running loop and adapters are built before one runs."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_in_flight, ssl=self._tls)
            self._session = aiohttp.ClientSession(headers=self._headers, connector=connector)
        return self._session.post(
            self._base_url + path,
            json=body,
            proxy=self._proxy,
            timeout=bounds,
            allow_redirects=False,
        )

    async def post(self, path: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """The JSON object of a 2xx answer; anything else raises a classified error. The
        whole call, waiting for a free slot included, ends within the timeout."""
        timeout = min(self._timeout_s, timeout_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._take_slot(timeout)
        sent_at = loop.time()
        try:
            async with (
                asyncio.timeout_at(deadline),
                self._send(path, body, _UNBOUNDED) as response,
            ):
                raw = await response.read()
        except TimeoutError:
            # Blame the provider only if it had at least half the time; a call that spent
            # most of it in our queue says nothing about the provider.
            raise self._timed_out(timeout, loop.time() - sent_at >= timeout / 2) from None
        except aiohttp.ClientError as exc:
            raise self._transport_failure(exc) from None
        finally:
            self._slots.release()
        self._raise_for_status(response, raw)
        return self.decode(raw, "response body")

    async def events(
        self, path: str, body: dict[str, Any], timeout_s: float
    ) -> AsyncGenerator[SseEvent]:
        """The Server-Sent Events of a streamed answer. Each wait (a free slot, the headers,
        every next chunk) is bounded by the timeout; the length of the whole stream is the
        caller's to bound. Use it under ``contextlib.aclosing`` so the slot is freed at once
        when the caller stops early."""
        timeout = min(self._timeout_s, timeout_s)
        await self._take_slot(timeout)
        bounds = aiohttp.ClientTimeout(connect=timeout, sock_read=timeout)
        try:
            async with self._send(path, body, bounds) as response:
                if not _succeeded(response):
                    self._raise_for_status(response, await response.read())
                content_type = response.headers.get("content-type", "")
                if not content_type.startswith("text/event-stream"):
                    raise ProviderError(
                        FailureKind.MALFORMED,
                        f"a stream was asked for, the answer is {content_type or 'untyped'}",
                        status=response.status,
                    )
                async for event in _sse_events(response.content.iter_any()):
                    yield event
        except TimeoutError:  # aiohttp's read and connect timeouts are TimeoutErrors too
            raise self._timed_out(timeout) from None
        except aiohttp.ClientError as exc:
            raise self._transport_failure(exc) from None
        finally:
            self._slots.release()

    def decode(self, text: str | bytes, what: str) -> dict[str, Any]:
        """A JSON object, or MALFORMED: a 2xx that is not what the API promises."""
        try:
            value = json.loads(text)
        except ValueError:
            shown = self.redact(_text(text), limit=80)
            raise ProviderError(FailureKind.MALFORMED, f"{what} is not JSON: {shown!r}") from None
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
        if self._session is not None:
            await self._session.close()

    def _raise_for_status(self, response: aiohttp.ClientResponse, body: bytes) -> None:
        if _succeeded(response):
            return
        status = response.status
        detail = f"HTTP {status}: {self.redact(_error_text(_text(body)))}"
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

    def _transport_failure(self, exc: aiohttp.ClientError) -> ProviderError:
        detail = self.redact(f"{type(exc).__name__}: {exc}")
        return ProviderError(FailureKind.CONNECTION, detail)


def _succeeded(response: aiohttp.ClientResponse) -> bool:
    """2xx only: a redirect is not followed (it would carry the key elsewhere), it is an error."""
    return 200 <= response.status < 300


def _env_proxy(base_url: str) -> str | None:
    """The proxy the environment names for ``base_url`` (``HTTPS_PROXY``, ``NO_PROXY``, ...),
    as httpx honoured it; read once, since aiohttp's ``trust_env`` reads it on every call."""
    url = urlsplit(base_url)
    if url.hostname and urllib.request.proxy_bypass(url.hostname):
        return None
    return urllib.request.getproxies().get(url.scheme)


@cache
def _tls_context() -> ssl.SSLContext:
    """The CA certificates httpx trusted: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set, else
    certifi's bundle, so a host without system CA certificates still reaches its providers.
    One per process: loading the bundle takes tens of milliseconds."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())


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


async def _sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[SseEvent]:
    """Events as the SSE spec frames them: fields up to a blank line; an event cut off by the
    end of the stream is dropped, so a truncated stream reads as incomplete, not malformed.
    Lines are split here, from the chunks as they arrive, not one awaited read per line."""
    event: str | None = None
    data: list[str] = []
    pending = b""
    async for chunk in chunks:
        *lines, pending = (pending + chunk).split(b"\n")
        for raw in lines:
            line = raw.removesuffix(b"\r").decode("utf-8", "replace")
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


def _text(body: str | bytes) -> str:
    return body if isinstance(body, str) else body.decode("utf-8", "replace")


def _error_text(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text
    return error_message(body) or text
