"""Firing alerts and their transitions (pure): a condition that starts holding fires an alert,
one that stops holding resolves it, one that goes on holding says nothing more.

Ids are fixed by what happened, not by who saw it: an alert's id comes from its key and the
minute it fired, its events' ids from its id, so an evaluation repeated after a restart (or by
a second alerter in the same minute) writes exact duplicates that the projections drop."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from processors.observability.alerting.conditions import Condition
from schemas.payloads import AlertPayload
from streams.envelope import Envelope, WriterIdentity, derived_id

__all__ = ["RESOLVED", "TRIGGERED", "Evaluation", "FiringAlert", "evaluated", "restored"]

TRIGGERED = "alert.rule.triggered"
RESOLVED = "alert.rule.resolved"

_ALERT_ID_NAMESPACE = uuid.UUID("2d0c7f0e-6a53-4a8e-9a0e-4f3b1d6c8e21")


@dataclass(frozen=True)
class FiringAlert:
    alert_id: str
    fired_at: datetime
    condition: Condition  # as last seen


@dataclass(frozen=True)
class Evaluation:
    events: list[Envelope]
    firing: dict[str, FiringAlert]  # by alert key


def _alert_id(key: str, fired_at: datetime) -> str:
    minute = fired_at.replace(second=0, microsecond=0).isoformat()
    return str(uuid.uuid5(_ALERT_ID_NAMESPACE, f"{key}@{minute}"))


def evaluated(
    firing: Mapping[str, FiringAlert],
    holding: Iterable[Condition],
    judged_rules: Collection[str],
    now: datetime,
    writer: WriterIdentity,
) -> Evaluation:
    """The events and the firing alerts after an evaluation at ``now``. Only alerts of
    ``judged_rules`` can resolve: a rule whose query failed this time leaves its alerts as
    they were."""
    events = []
    after: dict[str, FiringAlert] = {}
    for condition in holding:
        known = firing.get(condition.key)
        if known is None:
            known = FiringAlert(_alert_id(condition.key, now), now, condition)
            events.append(_event(TRIGGERED, known, condition.message, now, writer))
        after[condition.key] = replace(known, condition=condition)
    for key, known in firing.items():
        if key in after:
            continue
        if known.condition.rule in judged_rules:
            message = f"resolved: {known.condition.rule} no longer holds ({known.condition.key})"
            events.append(_event(RESOLVED, known, message, now, writer))
        else:
            after[key] = known
    return Evaluation(events, after)


def _event(
    message_type: str, alert: FiringAlert, message: str, now: datetime, writer: WriterIdentity
) -> Envelope:
    seen = alert.condition
    payload: AlertPayload = {
        "alert_id": alert.alert_id,
        "alert_key": seen.key,
        "rule": seen.rule,
        "kind": seen.kind,
        "severity": seen.severity,
        "indicator": seen.indicator,
        "labels": dict(seen.labels),
        "value": seen.value,
        "threshold": seen.threshold,
        "long_window": seen.long_window,
        "short_window": seen.short_window,
        "short_value": seen.short_value,
        "objective": seen.objective,
        "fired_at": alert.fired_at,
        "message": message,
    }
    return Envelope(
        message_type=message_type,
        message_id=derived_id(alert.alert_id, message_type),
        timestamp=now,
        correlation_id=alert.alert_id,
        tenant_id=seen.labels.get("tenant", ""),
        payload=payload,
        service_name=writer.service_name,
        layer=writer.layer,
        env=writer.env,
    )


def restored(payload: Mapping[str, Any], fired_at: datetime) -> FiringAlert:
    """A firing alert from its ``alert.rule.triggered`` payload (as the projections hold it),
    so an alerter that restarts goes on from what the log says is firing."""
    condition = Condition(
        rule=str(payload["rule"]),
        kind="threshold" if payload["kind"] == "threshold" else "burn_rate",
        severity=str(payload["severity"]),
        indicator=str(payload["indicator"]),
        labels={str(k): str(v) for k, v in payload["labels"].items()},
        value=float(payload["value"]),
        threshold=float(payload["threshold"]),
        long_window=str(payload["long_window"]),
        short_window=payload.get("short_window"),
        short_value=payload.get("short_value"),
        objective=payload.get("objective"),
        message=str(payload["message"]),
    )
    return FiringAlert(str(payload["alert_id"]), fired_at, condition)
