"""The fake OpenAI-compatible upstream every contender calls: fixed latency, fixed-size answer.

    python bench/gateway/upstream.py --port 9100 [--latency-ms 50] [--answer-tokens 64]

``POST /v1/chat/completions`` (also ``/chat/completions``) answers after exactly
``latency_ms`` with ``answer_tokens`` tokens and their usage. With ``"stream": true`` it sends
Server-Sent Events: the first content chunk after ``latency_ms`` (the time to first token), then
the rest in ``stream_chunks`` chunks ``chunk_interval_ms`` apart, a usage chunk when the request
asks for one (``stream_options.include_usage``), and ``data: [DONE]``. ``GET /healthz`` is the
readiness probe.

It must never be the bottleneck, so it is an ``asyncio.Protocol`` on uvloop with the httptools
parser, keep-alive and chunked SSE written straight to the transport: no framework between the
socket and the answer (an ASGI app on uvicorn cost about three times the CPU per streamed
request). The baseline rows of a run give its CPU per 1,000 requests."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass

import httptools
import uvloop

__all__ = ["UpstreamSettings", "main", "serve"]

_CHAT_PATHS = frozenset({b"/v1/chat/completions", b"/chat/completions"})
_PROMPT_TOKENS = 16  # fixed, so every contender is charged the same usage
_JSON = b"application/json"


@dataclass(frozen=True)
class UpstreamSettings:
    latency_ms: float = 50.0
    answer_tokens: int = 64
    stream_chunks: int = 16
    chunk_interval_ms: float = 2.0

    def answer_pieces(self) -> list[str]:
        """The answer split into ``stream_chunks`` pieces; joined, they are the full answer."""
        words = [f"tok{i % 10} " for i in range(self.answer_tokens)]
        size = -(-len(words) // self.stream_chunks)
        return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


class _Answers:
    """Every response byte that does not depend on the request, rendered once; a response only
    splices in its id, timestamp and model."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.latency_s = settings.latency_ms / 1000
        self.interval_s = settings.chunk_interval_ms / 1000
        pieces = settings.answer_pieces()
        usage = {
            "prompt_tokens": _PROMPT_TOKENS,
            "completion_tokens": settings.answer_tokens,
            "total_tokens": _PROMPT_TOKENS + settings.answer_tokens,
        }
        self._completion_tail = _render(
            {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(pieces)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )
        self._piece_tails = [
            _render(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": piece}
                            if i == 0
                            else {"content": piece},
                            "finish_reason": None,
                        }
                    ]
                }
            )
            for i, piece in enumerate(pieces)
        ]
        self._finish_tail = _render(
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        )
        self._usage_tail = _render({"choices": [], "usage": usage})

    def completion(self, model: str, completion_id: str) -> bytes:
        return self._head("chat.completion", model, completion_id) + self._completion_tail

    def stream(
        self, model: str, completion_id: str, include_usage: bool
    ) -> tuple[list[bytes], bytes]:
        """The SSE events carrying the answer's pieces, and the closing events."""
        head = b"data: " + self._head("chat.completion.chunk", model, completion_id)
        pieces = [head + tail + b"\n\n" for tail in self._piece_tails]
        closing = head + self._finish_tail + b"\n\n"
        if include_usage:
            closing += head + self._usage_tail + b"\n\n"
        return pieces, closing + b"data: [DONE]\n\n"

    @staticmethod
    def _head(kind: str, model: str, completion_id: str) -> bytes:
        return (
            f'{{"id":"{completion_id}","object":"{kind}","created":{int(time.time())},'
            f'"model":{json.dumps(model)},'
        ).encode()


def _render(fields: dict[str, object]) -> bytes:
    """The rest of a JSON object whose head ``_Answers._head`` writes."""
    return json.dumps(fields, separators=(",", ":")).encode()[1:]


class _Connection(asyncio.Protocol):
    """One keep-alive connection; requests are answered in the order they arrived."""

    def __init__(self, answers: _Answers) -> None:
        self._answers = answers
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._previous: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's TCP transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._write_response(400, b'{"error":{"message":"bad request"}}', keep_alive=False)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._previous = asyncio.get_running_loop().create_task(
            self._respond(
                self._previous,
                self._parser.get_method(),
                self._url.split(b"?", 1)[0],
                b"".join(self._body),
                self._parser.should_keep_alive(),
            )
        )

    async def _respond(
        self,
        previous: asyncio.Task[None] | None,
        method: bytes,
        path: bytes,
        body: bytes,
        keep_alive: bool,
    ) -> None:
        if previous is not None:
            await previous
        if method == b"GET" and path == b"/healthz":
            self._write_response(200, b'{"status":"ok"}', keep_alive)
            return
        if method != b"POST" or path not in _CHAT_PATHS:
            self._write_response(404, b'{"error":{"message":"not found"}}', keep_alive)
            return
        try:
            request = json.loads(body)
        except ValueError:
            self._write_response(400, b'{"error":{"message":"bad json"}}', keep_alive)
            return
        answers = self._answers
        model = str(request.get("model") or "bench-model")
        completion_id = f"chatcmpl-{time.monotonic_ns()}"
        if not request.get("stream"):
            await asyncio.sleep(answers.latency_s)
            self._write_response(200, answers.completion(model, completion_id), keep_alive)
            return
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        pieces, closing = answers.stream(model, completion_id, include_usage)
        self._write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n"
            + (b"" if keep_alive else b"connection: close\r\n")
            + b"\r\n"
        )
        await asyncio.sleep(answers.latency_s)
        for i, piece in enumerate(pieces):
            if i:
                await asyncio.sleep(answers.interval_s)
            self._write_chunk(piece)
        self._write_chunk(closing)
        self._write(b"0\r\n\r\n")
        if not keep_alive and self._transport is not None:
            self._transport.close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _write_chunk(self, data: bytes) -> None:
        self._write(b"%x\r\n%b\r\n" % (len(data), data))

    def _write_response(self, status: int, body: bytes, keep_alive: bool) -> None:
        reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}[status]
        self._write(
            b"HTTP/1.1 %d %b\r\ncontent-type: %b\r\ncontent-length: %d\r\n%b\r\n%b"
            % (
                status,
                reason,
                _JSON,
                len(body),
                b"" if keep_alive else b"connection: close\r\n",
                body,
            )
        )
        if not keep_alive and self._transport is not None:
            self._transport.close()


async def serve(host: str, port: int, settings: UpstreamSettings) -> None:
    answers = _Answers(settings)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(answers), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=UpstreamSettings.latency_ms)
    parser.add_argument("--answer-tokens", type=int, default=UpstreamSettings.answer_tokens)
    parser.add_argument("--stream-chunks", type=int, default=UpstreamSettings.stream_chunks)
    parser.add_argument(
        "--chunk-interval-ms", type=float, default=UpstreamSettings.chunk_interval_ms
    )
    args = parser.parse_args(argv)
    settings = UpstreamSettings(
        args.latency_ms, args.answer_tokens, args.stream_chunks, args.chunk_interval_ms
    )
    uvloop.run(serve(args.host, args.port, settings))


if __name__ == "__main__":
    main()
