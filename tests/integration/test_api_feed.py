"""The live feed over real WebSockets (the ``websockets`` client): a run followed from
``llm.request.started`` to its end, tenant isolation on the feed and on run queries, resume on
another replica without gaps, and a slow client cut off while a fast one gets everything."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from schemas import default_catalog
from streams.envelope import Envelope, WriterIdentity, new_message
from streams.producer import EnvelopeProducer, Outgoing
from streams.serde import AvroSerde, SingleObjectFraming
from tests.integration import test_api_support as support
from tests.integration.test_api_support import ApiProcess, Stack, Tenant

stack = support.stack  # the module-scoped stack fixture, one per test module

SERDE = AvroSerde(default_catalog(), SingleObjectFraming(default_catalog()))
WAIT_S = 30.0


@asynccontextmanager
async def feed(
    api: ApiProcess,
    who: Tenant,
    max_queue: int = 1024,
    sock: socket.socket | None = None,
    **subscription: Any,
) -> AsyncIterator[ClientConnection]:
    """A subscribed connection (the ``subscribed`` acknowledgement already read)."""
    async with connect(
        api.ws_url,
        additional_headers=who.headers,
        max_queue=max_queue,
        max_size=2**24,
        sock=sock,
        compression=None,  # what is sent is what travels: 10 kB of "x" stay 10 kB
    ) as ws:
        await ws.send(json.dumps({"type": "subscribe", **subscription}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
            if message["type"] == "subscribed":
                break
        yield ws


async def until(ws: ClientConnection, done: Any) -> list[dict[str, Any]]:
    """Messages (heartbeats aside) until ``done(message)`` holds for one; bounded."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT_S):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "heartbeat":
                continue
            seen.append(message)
            if done(message):
                return seen


def ends_run(correlation_id: str) -> Any:
    def done(message: dict[str, Any]) -> bool:
        return (
            message["type"] == "run.state"
            and message["correlation_id"] == correlation_id
            and message["state"]["status"] in {"completed", "failed"}
        )

    return done


async def chat(api: ApiProcess, tenant: Tenant, text: str, stream: bool = False) -> str:
    """A chat call; returns its correlation id once it has ended."""
    body = {"model": "m", "messages": [{"role": "user", "content": text}], "stream": stream}
    async with httpx.AsyncClient(base_url=api.url, headers=tenant.headers, timeout=WAIT_S) as http:
        response = await http.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        return response.headers["x-correlation-id"]


def delta(tenant: Tenant, correlation_id: str, index: int, text: str) -> Envelope:
    """An event as the foundation layer would write it, produced by the test itself."""
    payload = {
        "index": index,
        "text": text,
        "tool_calls_json": None,
        "provider": "p",
        "model": "m",
        "attempt": 1,
    }
    return new_message(
        "llm.delta.generated",
        payload,
        correlation_id=correlation_id,
        tenant_id=tenant.name,
        writer=WriterIdentity("tests", 1, "dev"),
    )


def produce(stack: Stack, events: list[Envelope]) -> None:
    producer = EnvelopeProducer(stack.bootstrap, SERDE, stack.topics)
    producer.send(events)
    producer.flush()


def events_of(messages: list[dict[str, Any]], correlation_id: str) -> list[str]:
    return [
        m["event"]["event_type"]
        for m in messages
        if m["type"] == "run.event" and m["event"]["correlation_id"] == correlation_id
    ]


def test_a_run_is_followed_live_with_state_and_heartbeats(stack: Stack) -> None:
    async def scenario() -> None:
        async with feed(stack.api, stack.tenants["a"], tenant=True) as ws:
            call = asyncio.create_task(
                chat(stack.api, stack.tenants["a"], f"live {uuid.uuid4()}", True)
            )
            first = await until(ws, lambda m: m["type"] == "run.event")
            correlation_id = first[-1]["event"]["correlation_id"]
            assert first[-1]["event"]["event_type"] == "llm.request.started"
            rest = await until(ws, ends_run(correlation_id))
            assert await call == correlation_id
            types = events_of(first + rest, correlation_id)
            assert types[0] == "llm.request.started" and types[-1] == "llm.request.completed"
            assert "llm.delta.generated" in types and "router.decision.made" in types
            states = [m["state"]["status"] for m in first + rest if m["type"] == "run.state"]
            assert states == ["running", "completed"]
            assert all(
                m["event"]["tenant_id"] == stack.tenants["a"].name
                for m in rest
                if m["type"] == "run.event"
            )
            heartbeat = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
            assert heartbeat["type"] == "heartbeat"

    asyncio.run(scenario())


def test_tenants_never_see_each_other(stack: Stack) -> None:
    """b follows its whole tenant and, trying its luck, a's run by id: it sees its own marker
    run, and nothing of a's before it (the hub delivers in log order, a's run came first)."""
    a, b = stack.tenants["a"], stack.tenants["b"]
    marker = f"marker-{uuid.uuid4().hex}"

    async def scenario() -> None:
        async with feed(stack.api, b, tenant=True) as b_tenant:
            a_run = await chat(stack.api, a, f"secret of a {uuid.uuid4()}")
            async with feed(stack.api, b, correlation_ids=[a_run, marker]) as b_snooping:
                b_run = await chat(stack.api, b, f"marker of b {uuid.uuid4()}")
                seen = await until(b_tenant, ends_run(b_run))
                await asyncio.to_thread(produce, stack, [delta(b, marker, 0, "hi")])
                snooped = await until(b_snooping, lambda m: m["type"] == "run.event")
        assert {m["event"]["tenant_id"] for m in seen if m["type"] == "run.event"} == {b.name}
        assert [m["event"]["correlation_id"] for m in snooped if "event" in m] == [marker]
        with httpx.Client(base_url=stack.api.url) as http:
            assert http.get(f"/v1/runs/{a_run}", headers=b.headers).status_code == 404
            own = http.get(f"/v1/runs/{a_run}", headers=a.headers)
        assert own.status_code == 200, own.text
        assert own.json()["status"] == "completed"
        assert own.json()["events"][-1]["event_type"] == "llm.request.completed"

    asyncio.run(scenario())


def test_unauthenticated_and_malformed_subscriptions_are_closed_with_codes(stack: Stack) -> None:
    async def scenario() -> None:
        async with connect(stack.api.ws_url) as anonymous:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(anonymous.recv(), WAIT_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        async with connect(stack.api.ws_url, additional_headers=stack.tenants["a"].headers) as ws:
            await ws.send(
                json.dumps({"type": "subscribe", "last_event_id": "garbage", "tenant": True})
            )
            with pytest.raises(ConnectionClosed) as bad:
                await asyncio.wait_for(ws.recv(), WAIT_S)
        assert bad.value.rcvd is not None and bad.value.rcvd.code == 4400

    asyncio.run(scenario())


@pytest.mark.parametrize("source", ["buffer", "projections"])
def test_reconnecting_to_another_replica_resumes_without_gaps(stack: Stack, source: str) -> None:
    """The client sees the start of one run, drops, and reconnects to another replica with the
    last ``id`` it saw. That replica either was running (its buffer has what was missed) or
    started after it all happened (what was missed comes from the projections; there the
    resume point is a time, so events just before it may come again: no gaps, duplicates
    possible, dropped by ``event_id``)."""
    a = stack.tenants["a"]
    other = stack.start_api() if source == "buffer" else None
    if other is not None:
        other.wait_ready()

    async def scenario() -> None:
        async with feed(stack.api, a, tenant=True) as control:
            async with feed(stack.api, a, tenant=True) as client:
                call = asyncio.create_task(chat(stack.api, a, f"resume {uuid.uuid4()}", True))
                before = await until(client, lambda m: m["type"] == "run.event")
            first_run = await call  # the rest of this run happens while disconnected
            second_run = await chat(stack.api, a, f"while away {uuid.uuid4()}")
            everything = await until(control, ends_run(second_run))
        replica = other or await asyncio.to_thread(late_replica, stack, second_run)
        after = await replayed(
            replica, a, terminal_of(second_run), tenant=True, last_event_id=before[-1]["id"]
        )
        expected = [m["event"]["event_id"] for m in everything if m["type"] == "run.event"]
        got = [m["event"]["event_id"] for m in before + after if m["type"] == "run.event"]
        assert set(expected) <= set(got), "no gaps"
        if source == "buffer":
            assert len(got) == len(set(got)), "no duplicates"
        for run in (first_run, second_run):
            assert unique(ids_of(before + after, run)) == ids_of(everything, run), "order kept"

    asyncio.run(scenario())


async def replayed(
    api: ApiProcess, who: Tenant, then: Any = None, **subscription: Any
) -> list[dict[str, Any]]:
    """What a subscription (a resumed one, or to correlation ids) sends before ``subscribed``:
    the replay; with ``then``, and after it until ``then(message)`` holds for one (what a
    replica whose consumer is still behind the resume point sends live, once it reads it)."""
    async with connect(api.ws_url, additional_headers=who.headers, max_size=2**24) as ws:
        await ws.send(json.dumps({"type": "subscribe", **subscription}))
        seen = await until(ws, lambda m: m["type"] == "subscribed")
        if then is not None and not any(then(m) for m in seen):
            seen += await until(ws, then)
        return seen


def terminal_of(correlation_id: str) -> Any:
    def done(message: dict[str, Any]) -> bool:
        return (
            message["type"] == "run.event"
            and message["event"]["correlation_id"] == correlation_id
            and message["event"]["event_type"] in {"llm.request.completed", "llm.request.failed"}
        )

    return done


def late_replica(stack: Stack, last_run: str) -> ApiProcess:
    """A replica started once ``last_run`` is projected: its buffer holds none of it."""
    projected = (
        "SELECT count() FROM platform.events WHERE event_type = 'llm.request.completed' "  # noqa: S608
        f"AND correlation_id = '{last_run}'"
    )
    query = f"http://127.0.0.1:{stack.query_port}/"
    deadline = time.monotonic() + WAIT_S
    while httpx.get(query, params={"query": projected}).text.strip() != "1":
        assert time.monotonic() < deadline, "the projector did not catch up"
        time.sleep(0.05)  # poll interval of a bounded wait
    replica = stack.start_api()
    replica.wait_ready()
    return replica


def unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def ids_of(messages: list[dict[str, Any]], correlation_id: str) -> list[str]:
    return [
        m["event"]["event_id"]
        for m in messages
        if m["type"] == "run.event" and m["event"]["correlation_id"] == correlation_id
    ]


def test_events_nobody_waited_for_are_replayed_and_old_producers_still_read(stack: Stack) -> None:
    """Events of a tenant without a live client stay undecoded in the replica's buffer; a run
    view and a later subscription still read them, in log order, as does an event from a
    producer that set no routing headers (decoded as it comes)."""
    tenant = stack.tenants["b"]
    correlation_id = f"quiet-{uuid.uuid4()}"
    events = [delta(tenant, correlation_id, index, f"part {index}") for index in range(3)]
    producer = EnvelopeProducer(stack.bootstrap, SERDE, stack.topics)
    producer.send(events[:2])
    old = events[2]
    headers = [("message_type", old.message_type.encode())]  # as producers before the headers
    topic = stack.topics.topic_for(old.message_type)
    producer.send_raw(Outgoing(topic, correlation_id.encode(), SERDE.encode(old), headers))
    producer.flush()
    ids = [event.message_id for event in events]
    with httpx.Client(base_url=stack.api.url, headers=tenant.headers, timeout=WAIT_S) as http:
        deadline = time.monotonic() + WAIT_S
        while True:  # until the replica has read all three: polled, bounded
            run = http.get(f"/v1/runs/{correlation_id}")
            if run.status_code == 200 and len(run.json()["events"]) == 3:
                break
            assert time.monotonic() < deadline, run.text
            time.sleep(0.05)
    assert [e["event_id"] for e in run.json()["events"]] == ids

    seen = asyncio.run(replayed(stack.api, tenant, correlation_ids=[correlation_id]))
    assert [m["event"]["event_id"] for m in seen if m["type"] == "run.event"] == ids


def test_a_slow_client_is_cut_off_and_nobody_else_waits(stack: Stack) -> None:
    """The slow client (a small receive buffer, reading nothing) lets 30 MB of events pass,
    more than socket buffers and its queue of 1,000 messages hold: it is closed with 4429
    once it reads again, while the fast client got every event in the meantime. Events go
    out in rounds of 300, each once the fast client has read the last: the fast client is
    never a queue behind, the slow one falls further behind every round."""
    a = stack.tenants["a"]
    bulk = f"bulk-{uuid.uuid4().hex}"
    events = [delta(a, bulk, i, "x" * 10_000) for i in range(3000)]
    small = socket.socket()
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # no autotuning to 32 MB
    small.connect(("127.0.0.1", stack.api.port))

    async def scenario() -> None:
        async with feed(stack.api, a, max_queue=1, sock=small, tenant=True) as slow:
            async with feed(stack.api, a, tenant=True) as fast:
                received = 0
                for start in range(0, len(events), 300):
                    await asyncio.to_thread(produce, stack, events[start : start + 300])
                    async with asyncio.timeout(WAIT_S):
                        while received < start + 300:
                            message = json.loads(await fast.recv())
                            received += message["type"] == "run.event"
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(WAIT_S):
                    while True:
                        await slow.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429

    asyncio.run(scenario())
