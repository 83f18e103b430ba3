"""The hub's routing, driven with undecoded events as its consumer thread hands them over: a
watch gets only the event types it wants, decoded only then, and the recent buffer gets all."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from api.event_hub import EventHub
from api.recent_events import RawEvent, RecentEvents
from schemas import default_catalog
from schemas.chat_run import COMPLETED, DELTA, STARTED, TERMINAL
from streams.serde import AvroSerde, SingleObjectFraming

SERDE = AvroSerde(default_catalog(), SingleObjectFraming(default_catalog()))


def test_a_watch_gets_the_types_it_wants_and_the_rest_stay_undecoded() -> None:
    async def scenario() -> None:
        recent = RecentEvents(per_tenant=100)
        hub = EventHub("unused:9092", SERDE, ["events"], recent)
        decoded: list[str] = []

        def decode(value: bytes) -> Mapping[str, Any] | None:
            event: dict[str, Any] = json.loads(value)
            decoded.append(event["event_type"])
            return event

        def raw(offset: int, kind: str, run: str = "r1") -> RawEvent:
            event = {"event_id": f"{run}-{offset}", "event_type": kind, "correlation_id": run}
            event |= {"tenant_id": "t", "payload": {}}
            return RawEvent(
                "events", 0, offset, offset, run, "t", json.dumps(event).encode(), decode, kind
            )

        started: list[bool] = []
        plain = hub.watch(
            "r1", "t", expires_at=1e12, wants=TERMINAL, on_first_event=lambda: started.append(True)
        )
        streamed = hub.watch("r1", "t", expires_at=1e12, wants=TERMINAL | {DELTA})
        assert hub._wanted("r1", "t", COMPLETED) and hub._wanted("r1", "t", DELTA)
        assert not hub._wanted("r1", "t", STARTED), "no watch of r1 wants it"
        assert not hub._wanted("r2", "t", COMPLETED), "nobody watches r2"
        assert hub._wanted("r1", "t", ""), "a message without a type header is decoded"

        hub._dispatch(
            [
                raw(1, STARTED),
                raw(2, DELTA),
                raw(3, "llm.delta.generated", run="r2"),
                raw(4, COMPLETED),
            ]
        )
        assert started == [True], "the first event of the run, whatever its type, starts it"
        assert decoded == [DELTA, COMPLETED]
        assert [plain.events.get_nowait()["event_type"]] == [COMPLETED] and plain.events.empty()
        got = [streamed.events.get_nowait()["event_type"] for _ in range(2)]
        assert got == [DELTA, COMPLETED] and streamed.events.empty()
        assert len(recent.of_tenant("t")) == 4, "the buffer keeps every event"

        streamed.close()
        assert not hub._wanted("r1", "t", DELTA), "the plain watch alone does not want deltas"
        plain.close()
        assert not hub._wanted("r1", "t", COMPLETED)

    asyncio.run(scenario())
