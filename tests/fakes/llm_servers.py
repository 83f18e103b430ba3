"""Fake LLM providers on real sockets: OpenAI Chat Completions and Anthropic Messages, each an
HTTP/1.1 server on a free 127.0.0.1 port in a background thread, so sync fixtures and other
processes (a processor under test, started as a subprocess) reach them like a real provider.

They answer by echoing: text is ``<voice>: <last message>`` (``echo`` unless told), and a
request that offers tools and has no tool result yet gets a call to its first tool. Asked to
continue a cut answer (OpenAI: the answer as the assistant's turn, then the gateway's
continuation instruction; Anthropic: a prefill), they say the rest of their own answer after
as many words as they were given, as a model carries on from text it is shown; with
``restate_words`` an OpenAI fake first repeats the last words it was given, as instruction-
following models sometimes do. Every request is recorded (``received``). Faults are scripted
with a ``FaultPlan``, in-process with ``set_plan`` or from another process with
``POST /_fake/plan`` (``GET /_fake/received`` lists requests).

HTTP is written by hand on ``asyncio`` streams so that the faults real providers show can be
produced exactly: a hang, a connection cut in the middle of a body or a stream."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from processors.foundation.providers.openai_compat import CONTINUE_INSTRUCTION

__all__ = [
    "AnthropicFake",
    "FakeLlmServer",
    "Fault",
    "FaultPlan",
    "OpenAIFake",
    "Received",
]


class Fault(StrEnum):
    HANG = "hang"  # no answer until the client gives up
    RATE_LIMITED = "rate_limited"  # 429 with Retry-After: plan.retry_after
    SERVER_ERROR = "server_error"  # 500
    OVERLOADED = "overloaded"  # 529, Anthropic's "overloaded_error"
    BAD_REQUEST = "bad_request"  # 400 with the provider's message
    MALFORMED = "malformed"  # 200 whose body (or a stream event) is not JSON
    WRONG_SHAPE = "wrong_shape"  # 200 with JSON that is not the API's answer
    DROP = "drop"  # the connection cut mid-body, or mid-stream after a few events
    STALL = "stall"  # a stream that stops sending after a few events, its connection open
    STREAM_ERROR = "stream_error"  # a stream that starts, then reports an error event


@dataclass(frozen=True)
class FaultPlan:
    """What the requests after ``set_plan`` suffer: ``script[i]`` hits request ``i``; after
    the script, ``fault`` hits a deterministic ``rate`` of them (by request counter, so 0.5
    fails every second one). ``latency_s`` delays every answer; ``report_usage`` False
    leaves usage out, as some servers do."""

    script: tuple[Fault | None, ...] = ()
    fault: Fault | None = None
    rate: float = 1.0
    latency_s: float = 0.0
    retry_after: str = "2"
    report_usage: bool = True
    drop_after: int | None = None  # DROP, STALL in a stream: after this many content events
    restate_words: int = 0  # an instructed continuation first repeats this many words

    def fault_for(self, number: int) -> Fault | None:
        if number < len(self.script):
            return self.script[number]
        after = number - len(self.script)
        hit = math.floor((after + 1) * self.rate) > math.floor(after * self.rate)
        return self.fault if hit else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        fields = dict(data)
        fields["script"] = tuple(Fault(f) if f else None for f in fields.get("script", ()))
        fields["fault"] = Fault(fields["fault"]) if fields.get("fault") else None
        return cls(**fields)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the decoded JSON, or the raw text when it is not JSON


@dataclass
class _Reply:
    """What a dialect answers, before framing: the text or the tool call, and the usage."""

    text: str | None
    tool: dict[str, Any] | None  # {"id", "name", "arguments": json text}
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FakeLlmServer:
    """The server; a dialect subclass says what the API looks like."""

    api_path = ""
    base_path = ""
    preamble = 0  # stream events before the first content event

    def __init__(self, api_key: str | None = None, voice: str = "echo") -> None:
        self.api_key = api_key
        self.voice = voice
        self._plan = FaultPlan()
        self._served = 0
        self._in_flight = 0
        self._peak_in_flight = 0
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._port = 0

    # --- control, from any thread --------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self.base_path}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def peak_in_flight(self) -> int:
        """The most requests this server has worked on at once."""
        with self._lock:
            return self._peak_in_flight

    def set_plan(self, plan: FaultPlan) -> None:
        """Takes effect from the next request, counted from zero."""
        with self._lock:
            self._plan = plan
            self._served = 0

    def start(self) -> FakeLlmServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(ready),))
        self._thread.daemon = True
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> FakeLlmServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- the dialect ----------------------------------------------------------------------

    def authorised(self, headers: dict[str, str]) -> str | None:
        """None when the request may pass; else the key it presented."""
        raise NotImplementedError

    def reply(self, body: dict[str, Any], plan: FaultPlan) -> dict[str, Any]:
        raise NotImplementedError

    def stream_events(self, body: dict[str, Any], plan: FaultPlan) -> list[bytes]:
        raise NotImplementedError

    def error_body(self, kind: str, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def stream_error_event(self) -> bytes:
        raise NotImplementedError

    # --- serving, on the server's own loop ------------------------------------------------

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        connections: set[asyncio.Task[None]] = set()

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await self._connection(reader, writer)
            finally:
                connections.discard(task)

        server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await self._stop.wait()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One request and its answer; False when the connection is done."""
        request_line = await reader.readline()
        if not request_line.strip():
            return False
        method, target, _ = request_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        if target.startswith("/_fake/"):
            await _write(writer, self._control(method, target, raw))
            return True
        received = Received(method, target, headers, _json_or_text(raw))
        with self._lock:
            self._received.append(received)
            plan, number = self._plan, self._served
            self._served += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            return await self._answer(received, plan, plan.fault_for(number), reader, writer)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _control(self, method: str, target: str, raw: bytes) -> _Response:
        if method == "POST" and target == "/_fake/plan":
            self.set_plan(FaultPlan.from_json(json.loads(raw)))
            return _json_response(200, {"ok": True})
        if method == "GET" and target == "/_fake/received":
            return _json_response(200, [asdict(r) for r in self.received])
        return _json_response(404, {"error": "unknown control path"})

    async def _answer(
        self,
        request: Received,
        plan: FaultPlan,
        fault: Fault | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        await asyncio.sleep(plan.latency_s)  # the fault "added latency", not synchronisation
        if fault is Fault.HANG:
            await reader.read()  # until the client closes the connection
            return False
        early = self._refusal(request, fault, plan)
        if early is not None:
            await _write(writer, early)
            return True
        body = request.body if isinstance(request.body, dict) else {}
        if fault is Fault.MALFORMED and not body.get("stream"):
            await _write(writer, _Response(200, b'{"choices": [ {"mess', _JSON))
            return True
        if fault is Fault.WRONG_SHAPE:
            await _write(writer, _json_response(200, {"object": "surprise", "data": [1, 2]}))
            return True
        if body.get("stream"):
            return await self._stream(reader, writer, body, plan, fault)
        answer = json.dumps(self.reply(body, plan)).encode()
        if fault is Fault.DROP:
            head = _head(200, {**_JSON, "content-length": str(len(answer))})
            writer.write(head + answer[: len(answer) // 2])
            await writer.drain()
            writer.transport.abort()
            return False
        await _write(writer, _Response(200, answer, _JSON))
        return True

    def _refusal(self, request: Received, fault: Fault | None, plan: FaultPlan) -> _Response | None:
        """An error status: wrong path or key, or a fault that is one."""
        if request.method != "POST" or request.path != self.base_path + self.api_path:
            return _json_response(404, self.error_body("not_found_error", "no such route"))
        presented = self.authorised(request.headers)
        if presented is not None:
            message = f"Incorrect API key provided: {presented}"  # real providers echo it too
            return _json_response(401, self.error_body("authentication_error", message))
        statuses = {
            Fault.RATE_LIMITED: (429, "rate_limit_error", "Rate limit reached, slow down"),
            Fault.SERVER_ERROR: (500, "api_error", "The server had an error"),
            Fault.OVERLOADED: (529, "overloaded_error", "Overloaded"),
            Fault.BAD_REQUEST: (400, "invalid_request_error", "Invalid value for 'messages'"),
        }
        if fault not in statuses:
            return None
        status, kind, message = statuses[fault]
        response = _json_response(status, self.error_body(kind, message))
        if status == 429:
            response.headers["retry-after"] = plan.retry_after
        return response

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        body: dict[str, Any],
        plan: FaultPlan,
        fault: Fault | None,
    ) -> bool:
        events = self.stream_events(body, plan)
        cut_at = 2 if plan.drop_after is None else self.preamble + plan.drop_after
        if fault is Fault.MALFORMED:
            events.insert(1, b"data: {not json\n\n")
        if fault is Fault.STREAM_ERROR:
            events = [*events[:2], self.stream_error_event()]
        headers = {"content-type": "text/event-stream", "transfer-encoding": "chunked"}
        writer.write(_head(200, headers))
        for position, event in enumerate(events):
            if fault is Fault.DROP and position == cut_at:
                await writer.drain()
                writer.transport.abort()
                return False
            if fault is Fault.STALL and position == cut_at:
                await writer.drain()
                await reader.read()  # silent until the client gives up and closes
                return False
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


class OpenAIFake(FakeLlmServer):
    """``POST /v1/chat/completions``; ``base_url`` ends in ``/v1``, as OpenAI's does."""

    base_path = "/v1"
    api_path = "/chat/completions"
    preamble = 1  # the role chunk

    def authorised(self, headers: dict[str, str]) -> str | None:
        presented = headers.get("authorization", "").removeprefix("Bearer ")
        return None if self.api_key is None or presented == self.api_key else presented

    def reply(self, body: dict[str, Any], plan: FaultPlan) -> dict[str, Any]:
        reply = _openai_reply(body, self.voice, plan.restate_words)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool:
            message["tool_calls"] = [_openai_call(reply.tool, reply.tool["arguments"])]
        answer: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": _openai_finish(reply)}],
        }
        if plan.report_usage:
            answer["usage"] = _openai_usage(reply)
        return answer

    def stream_events(self, body: dict[str, Any], plan: FaultPlan) -> list[bytes]:
        reply = _openai_reply(body, self.voice, plan.restate_words)
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if reply.tool:
            arguments = reply.tool["arguments"]
            deltas.append({"tool_calls": [{"index": 0, **_openai_call(reply.tool, "")}]})
            deltas += [
                {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}
                for part in _halves(arguments)
            ]
        else:
            deltas += [{"content": word} for word in _words(reply.text or "")]
        chunks: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas
        ]
        chunks.append(
            {"choices": [{"index": 0, "delta": {}, "finish_reason": _openai_finish(reply)}]}
        )
        if plan.report_usage and (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({"choices": [], "usage": _openai_usage(reply)})
        return [b"data: %s\n\n" % json.dumps(chunk).encode() for chunk in chunks] + [
            b"data: [DONE]\n\n"
        ]

    def error_body(self, kind: str, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "code": None}}

    def stream_error_event(self) -> bytes:
        return (
            b'data: {"error": {"message": "The server had an error", "type": "server_error"}}\n\n'
        )


class AnthropicFake(FakeLlmServer):
    """``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version``."""

    api_path = "/v1/messages"
    preamble = 3  # message_start, content_block_start, ping

    def authorised(self, headers: dict[str, str]) -> str | None:
        presented = headers.get("x-api-key", "")
        return None if self.api_key is None or presented == self.api_key else presented

    def reply(self, body: dict[str, Any], plan: FaultPlan) -> dict[str, Any]:
        reply = _anthropic_reply(body, self.voice)
        answer: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [_anthropic_block(reply, whole=True)],
            "stop_reason": "tool_use" if reply.tool else "end_turn",
        }
        if plan.report_usage:
            answer["usage"] = {
                "input_tokens": reply.prompt_tokens,
                "output_tokens": reply.completion_tokens,
            }
        return answer

    def stream_events(self, body: dict[str, Any], plan: FaultPlan) -> list[bytes]:
        reply = _anthropic_reply(body, self.voice)
        report_usage = plan.report_usage
        usage = {"input_tokens": reply.prompt_tokens, "output_tokens": 1} if report_usage else {}
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": {"id": "msg_fake", "content": [], "usage": usage}},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": _anthropic_block(reply, whole=False),
            },
            {"type": "ping"},
        ]
        if reply.tool:
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in _halves(reply.tool["arguments"])
            ]
        else:
            deltas = [{"type": "text_delta", "text": w} for w in _words(reply.text or "")]
        events += [{"type": "content_block_delta", "index": 0, "delta": d} for d in deltas]
        events += [
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use" if reply.tool else "end_turn"},
                "usage": {"output_tokens": reply.completion_tokens} if report_usage else {},
            },
            {"type": "message_stop"},
        ]
        return [_sse(event) for event in events]

    def error_body(self, kind: str, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": kind, "message": message}}

    def stream_error_event(self) -> bytes:
        return _sse(self.error_body("overloaded_error", "Overloaded"))


# --- what the fakes say -------------------------------------------------------------------


def _openai_reply(body: dict[str, Any], voice: str, restate_words: int) -> _Reply:
    messages = body.get("messages") or []
    if len(messages) >= 2 and messages[-1].get("content") == CONTINUE_INSTRUCTION:
        given = messages[-2].get("content") or ""
        whole = _openai_reply({**body, "messages": messages[:-2]}, voice, 0)
        restated = given.split(" ")[-restate_words:] if restate_words else []
        return _continued(whole, given, restated)
    last = messages[-1] if messages else {}
    tools = body.get("tools") or []
    if tools and not any(m.get("role") == "tool" for m in messages):
        return _tool_reply(tools[0]["function"]["name"], last.get("content") or "", messages)
    return _text_reply(voice, last.get("content") or "", messages)


def _anthropic_reply(body: dict[str, Any], voice: str) -> _Reply:
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "assistant":
        given = "".join(b.get("text") or "" for b in _blocks(messages[-1]))
        whole = _anthropic_reply({**body, "messages": messages[:-1]}, voice)
        return _continued(whole, given, [])
    blocks = _blocks(messages[-1]) if messages else []
    results = [b for b in blocks if b.get("type") == "tool_result"]
    text = " ".join(str(b.get("content") or b.get("text") or "") for b in results or blocks)
    tools = body.get("tools") or []
    if tools and not results:
        return _tool_reply(tools[0]["name"], text, messages)
    return _text_reply(voice, text, messages)


def _text_reply(voice: str, heard: str, messages: list[Any]) -> _Reply:
    text = f"{voice}: {heard}"
    return _Reply(text, None, _word_count(messages), len(text.split()))


def _continued(whole: _Reply, given: str, restated: list[str]) -> _Reply:
    """The words of ``whole`` after as many as ``given`` has, each after a space."""
    rest = (whole.text or "").split(" ")[len(given.split()) :]
    text = "".join(f" {word}" for word in [*restated, *rest])
    return _Reply(text, None, whole.prompt_tokens + len(given.split()), len(text.split()))


def _tool_reply(name: str, heard: str, messages: list[Any]) -> _Reply:
    arguments = json.dumps({"query": heard})
    tool = {"id": "call_fake_1", "name": name, "arguments": arguments}
    return _Reply(None, tool, _word_count(messages), len(arguments.split()))


def _openai_call(tool: dict[str, Any], arguments: str) -> dict[str, Any]:
    return {
        "id": tool["id"],
        "type": "function",
        "function": {"name": tool["name"], "arguments": arguments},
    }


def _openai_finish(reply: _Reply) -> str:
    return "tool_calls" if reply.tool else "stop"


def _openai_usage(reply: _Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _anthropic_block(reply: _Reply, whole: bool) -> dict[str, Any]:
    """A content block as a whole answer has it, or as a stream opens it (empty)."""
    if reply.tool:
        arguments = json.loads(reply.tool["arguments"]) if whole else {}
        return {
            "type": "tool_use",
            "id": reply.tool["id"],
            "name": reply.tool["name"],
            "input": arguments,
        }
    return {"type": "text", "text": reply.text if whole else ""}


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def _word_count(messages: list[Any]) -> int:
    return sum(len(json.dumps(m.get("content")).split()) for m in messages)


def _words(text: str) -> Iterator[str]:
    """Stream pieces that concatenate back to ``text``: a word each, with its leading space."""
    words = text.split(" ")
    if words[0]:
        yield words[0]
    yield from (f" {word}" for word in words[1:])


def _halves(text: str) -> list[str]:
    return [text[: len(text) // 2], text[len(text) // 2 :]]


# --- HTTP/1.1 framing ---------------------------------------------------------------------

_JSON = {"content-type": "application/json"}
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}


def _json_response(status: int, body: Any) -> _Response:
    return _Response(status, json.dumps(body).encode(), dict(_JSON))


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Fake')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write(writer: asyncio.StreamWriter, response: _Response) -> None:
    headers = {**response.headers, "content-length": str(len(response.body))}
    writer.write(_head(response.status, headers) + response.body)
    await writer.drain()


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (event["type"].encode(), json.dumps(event).encode())


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
