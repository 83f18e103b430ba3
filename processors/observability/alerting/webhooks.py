"""Alert events POSTed to the configured webhooks: signed (``signatures.py``), retried with
exponential backoff and full jitter (honouring ``Retry-After``), each with a delivery id that
stays the same across attempts and redeliveries so a receiver can drop repeats. A webhook that
misses ``disable_after`` alerts in a row is disabled and reported as
``alert.webhook.disabled``; it stays off until the processor restarts.

The failure counts live in this process: they are a circuit breaker for one deliverer, not
state anyone else reads, and a restart re-enabling a fixed endpoint is what an operator wants."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

import httpx

from processors.observability.alerting.signatures import SIGNATURE_HEADER, sign
from processors.observability.config import Webhook
from schemas.payloads import AlertWebhookDisabledPayload
from streams.envelope import Envelope, derived_id, envelope_json

__all__ = ["DELIVERY_HEADER", "DISABLED", "WebhookDelivery", "backoff_s"]

log = logging.getLogger(__name__)

DISABLED = "alert.webhook.disabled"
DELIVERY_HEADER = "X-Platform-Delivery"
_DELIVERY_NAMESPACE = uuid.UUID("8b6f0f5e-3c2a-4d7b-a1e4-5d9c2b7e6f10")
_MAX_BACKOFF_S = 30.0
_RETRYABLE_STATUS = frozenset({408, 425, 429})


def backoff_s(
    hook: Webhook, attempt: int, retry_after_s: float | None, rng: random.Random
) -> float:
    """The wait before attempt ``attempt + 1``: the server's ``Retry-After`` when it gave one,
    else full jitter over ``backoff_s * 2**(attempt-1)``; never more than 30 s."""
    if retry_after_s is not None:
        return min(retry_after_s, _MAX_BACKOFF_S)
    return rng.uniform(0, min(hook.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _shown(url: str) -> str:
    """The URL without credentials, query or fragment (they may hold tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


class WebhookDelivery:
    """The handler: one alert event in, every wanting webhook tried, disabled reports out."""

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        secrets: Mapping[str, str],
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._webhooks = list(webhooks)
        self._secrets = secrets
        self._client = client
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._missed: dict[str, int] = {}
        self._disabled: set[str] = set()

    async def __call__(self, alert: Envelope) -> list[Envelope]:
        severity = str(alert.payload.get("severity", ""))
        targets = [h for h in self._webhooks if h.name not in self._disabled and h.wants(severity)]
        body = json.dumps(envelope_json(alert)).encode()
        errors = await asyncio.gather(*(self._deliver(hook, alert, body) for hook in targets))
        reports = []
        for hook, error in zip(targets, errors, strict=True):
            if error is None:
                self._missed[hook.name] = 0
                continue
            missed = self._missed.get(hook.name, 0) + 1
            self._missed[hook.name] = missed
            log.warning(
                "webhook %s missed %s (%d in a row): %s", hook.name, alert.message_id, missed, error
            )
            if missed >= hook.disable_after:
                self._disabled.add(hook.name)
                reports.append(self._disabled_report(alert, hook, missed, error))
        return reports

    async def _deliver(self, hook: Webhook, alert: Envelope, body: bytes) -> str | None:
        """None once delivered (any 2xx), else what the last attempt got."""
        delivery = str(uuid.uuid5(_DELIVERY_NAMESPACE, f"{alert.message_id}/{hook.name}"))
        error = "not attempted"
        for attempt in range(1, hook.max_attempts + 1):
            headers = {
                "Content-Type": "application/json",
                "X-Platform-Event": alert.message_type,
                DELIVERY_HEADER: delivery,
                "X-Platform-Attempt": str(attempt),
                SIGNATURE_HEADER: sign(self._secrets[hook.name], int(self._clock()), body),
            }
            retry_after = None
            try:
                response = await self._client.post(
                    str(hook.url), content=body, headers=headers, timeout=hook.timeout_s
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return None
                error = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in _RETRYABLE_STATUS:
                    return error  # the receiver refuses this body: repeating it changes nothing
                retry_after = _retry_after(response)
            if attempt < hook.max_attempts:
                await asyncio.sleep(backoff_s(hook, attempt, retry_after, self._rng))
        return error

    def _disabled_report(self, alert: Envelope, hook: Webhook, missed: int, error: str) -> Envelope:
        payload: AlertWebhookDisabledPayload = {
            "webhook": hook.name,
            "url": _shown(str(hook.url)),
            "failures": missed,
            "last_error": error,
        }
        return alert.derive(
            DISABLED, payload, derived_id(alert.message_id, f"disabled/{hook.name}")
        )
