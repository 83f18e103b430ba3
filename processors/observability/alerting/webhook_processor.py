"""The webhook processor: ``python -m streams run
processors.observability.alerting.webhook_processor:PROCESSOR``. It reads ``events.alert`` and
POSTs each alert to the webhooks of ``alerting.webhooks`` in ``configs/observability.yaml``.

The config is read, and every webhook's secret looked up in the environment, when this module
is imported: a missing secret stops the process at start, naming the variable, rather than
parking alerts in the dead-letter topic one by one."""

from __future__ import annotations

import os

import httpx

from processors.observability.alerting.alert_states import RESOLVED, TRIGGERED
from processors.observability.alerting.webhooks import WebhookDelivery
from processors.observability.config import Webhook, load_observability_config
from streams.envelope import Envelope
from streams.processing import Processor

__all__ = ["PROCESSOR"]


def _secrets(webhooks: list[Webhook]) -> dict[str, str]:
    missing = [
        f"{hook.secret_env} (webhook {hook.name})"
        for hook in webhooks
        if not os.environ.get(hook.secret_env)
    ]
    if missing:
        raise SystemExit(f"webhook secrets not set in the environment: {', '.join(missing)}")
    return {hook.name: os.environ[hook.secret_env] for hook in webhooks}


class _LazyDelivery:
    """The HTTP client is made on the first message, inside the runner's event loop."""

    def __init__(self, webhooks: list[Webhook]) -> None:
        self._webhooks = webhooks
        self._secrets = _secrets(webhooks)
        self._delivery: WebhookDelivery | None = None

    async def __call__(self, alert: Envelope) -> list[Envelope]:
        if self._delivery is None:
            self._delivery = WebhookDelivery(self._webhooks, self._secrets, httpx.AsyncClient())
        return await self._delivery(alert)


PROCESSOR = Processor(
    name="alert-webhooks",
    layer=4,
    accepts=frozenset({TRIGGERED, RESOLVED}),
    handler=_LazyDelivery(load_observability_config().alerting.webhooks),
    max_attempts=1,  # deliveries retry on their own; a bug is parked, not repeated
)
