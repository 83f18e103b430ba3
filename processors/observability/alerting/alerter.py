"""The alerter: every ``evaluate_every_s`` it evaluates each SLO and threshold rule from the
ClickHouse projections and produces ``alert.rule.triggered|resolved`` to ``events.alert``.

The firing alerts it starts from are the log's: at start it reads which alerts' last event is a
trigger (from the projected events), so a restart neither fires an alert twice nor forgets to
resolve one. The clock is passed in: a test (or a backfill) steps evaluation time minute by
minute over events it replayed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Gauge

from processors.observability.alerting.alert_states import (
    RESOLVED,
    TRIGGERED,
    FiringAlert,
    evaluated,
    restored,
)
from processors.observability.alerting.conditions import (
    Condition,
    burn_rate,
    slo_conditions,
    slo_windows,
    threshold_conditions,
)
from processors.observability.alerting.indicators import (
    Observation,
    indicator_query,
    observations,
)
from processors.observability.config import Alerting, Slo, ThresholdRule, minutes
from streams.envelope import Envelope, WriterIdentity
from streams.producer import EnvelopeProducer
from streams.projections_client import ProjectionsClient, ProjectionsUnavailable

__all__ = ["Alerter"]

log = logging.getLogger(__name__)

FIRING = Gauge("platform_alerts_firing", "Alerts firing now", ["rule", "severity"])
BURN_RATE = Gauge(
    "platform_slo_burn_rate",
    "An SLO's error-budget burn rate over a window at the last evaluation (highest over tenants)",
    ["slo", "window"],
)


class Alerter:
    def __init__(
        self,
        config: Alerting,
        projections: ProjectionsClient,
        producer: EnvelopeProducer,
        writer: WriterIdentity,
    ) -> None:
        self._config = config
        self._projections = projections
        self._producer = producer
        self._writer = writer
        self._firing: dict[str, FiringAlert] = {}

    @property
    def firing(self) -> dict[str, FiringAlert]:
        return dict(self._firing)

    async def restore(self) -> None:
        """The alerts firing according to the log (the last event of each is a trigger)."""
        rows = await self._projections.rows(
            "SELECT argMax(payload, timestamp) AS payload, "  # noqa: S608
            "argMax(event_type, timestamp) AS last FROM "
            f"{self._projections.database}.events WHERE event_type IN "
            f"('{TRIGGERED}', '{RESOLVED}') GROUP BY correlation_id "
            f"HAVING last = '{TRIGGERED}'"
        )
        for row in rows:
            payload = json.loads(row["payload"])
            alert = restored(payload, datetime.fromisoformat(payload["fired_at"]))
            self._firing[alert.condition.key] = alert
        log.info("alerter starts with %d firing alerts", len(self._firing))

    async def evaluate(self, now: datetime) -> list[Envelope]:
        """One evaluation at ``now``: the events produced (acknowledged by the broker)."""
        holding: list[Condition] = []
        judged: set[str] = set()
        for slo in self._config.slos:
            found = await self._observe(slo, slo_windows(self._config.burn_rate_windows), now)
            if found is not None:
                judged.add(slo.name)
                holding += slo_conditions(slo, self._config.burn_rate_windows, found)
                self._export_burn_rates(slo, found)
        for rule in self._config.thresholds:
            found = await self._observe(rule, {minutes(rule.window)}, now)
            if found is not None:
                judged.add(rule.name)
                holding += threshold_conditions(rule, found)
        configured = {rule.name for rule in (*self._config.slos, *self._config.thresholds)}
        judged |= {a.condition.rule for a in self._firing.values()} - configured
        outcome = evaluated(self._firing, holding, judged, now, self._writer)
        if outcome.events:
            self._producer.send(outcome.events)
            await asyncio.to_thread(self._producer.flush)
        self._firing = outcome.firing
        self._export_firing()
        return outcome.events

    async def run(self, clock: Callable[[], datetime], stopping: asyncio.Event) -> None:
        """Restore (waiting for the projections to answer), then evaluate until ``stopping``."""
        waiting = False
        while not stopping.is_set():
            try:
                await self.restore()
                break
            except ProjectionsUnavailable as error:
                if not waiting:  # said once: the projector often starts a moment later
                    log.info("waiting for the projections to answer: %s", error)
                    waiting = True
                await _pause(stopping, 1.0)
        while not stopping.is_set():
            await self.evaluate(clock())
            await _pause(stopping, self._config.evaluate_every_s)

    async def _observe(
        self, rule: Slo | ThresholdRule, windows: set[int], now: datetime
    ) -> list[Observation] | None:
        sql = indicator_query(rule, windows, now, self._projections.database)
        try:
            return observations(rule, windows, await self._projections.rows(sql))
        except ProjectionsUnavailable as error:
            log.warning("rule %s not evaluated: %s", rule.name, error)
            return None

    def _export_burn_rates(self, slo: Slo, found: list[Observation]) -> None:
        for window in slo_windows(self._config.burn_rate_windows):
            rates = [burn_rate(o.counts[window], slo.objective) for o in found]
            BURN_RATE.labels(slo.name, f"{window}m").set(max(rates, default=0.0))

    def _export_firing(self) -> None:
        FIRING.clear()
        for alert in self._firing.values():
            FIRING.labels(alert.condition.rule, alert.condition.severity).inc()


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when stopping."""
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        pass
