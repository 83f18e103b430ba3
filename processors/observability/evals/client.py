"""The platform's public API as the eval tools use it: plain HTTP with an API key, so they run
against any deployment (``./dev up`` or production) and never import another layer."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["ApiFailure", "ChatAnswer", "PlatformApi", "api_from_env"]

_RETRIES = 3  # attempts of a call the API says is worth retrying (429, 503, ...)
_BACKOFF_S = 0.5
_PAGE = 1000
_CHAT_TIMEOUT_S = 120.0


class ApiFailure(RuntimeError):
    """The API answered with an error: its code, message and (for a 422) the fields."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]]):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True)
class ChatAnswer:
    """A chat call's outcome: the answer, or the failure; ``run_id`` when a run was started."""

    output: str | None
    run_id: str | None
    model: str | None
    error_code: str | None
    error_message: str | None
    latency_ms: int


class PlatformApi:
    def __init__(self, base_url: str, api_key: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(30.0, read=_CHAT_TIMEOUT_S),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def publish_version(
        self, dataset: str, items: Sequence[Mapping[str, Any]], description: str | None
    ) -> dict[str, Any]:
        body = {"items": list(items), "description": description}
        return await self._call("POST", f"/v1/datasets/{dataset}/versions", json=body)

    async def dataset(self, dataset: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/datasets/{dataset}")

    async def items(self, dataset: str, version: str) -> list[dict[str, Any]]:
        """Every item of the version, in replay order, page by page."""
        items: list[dict[str, Any]] = []
        while True:
            page = await self._call(
                "GET",
                f"/v1/datasets/{dataset}/versions/{version}/items",
                params={"offset": len(items), "limit": _PAGE},
            )
            items += page["items"]
            if len(page["items"]) < _PAGE or len(items) >= page["item_count"]:
                return items

    async def start_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/v1/eval-runs", json=body)

    async def record_results(self, eval_run_id: str, items: Sequence[Mapping[str, Any]]) -> None:
        await self._call("POST", f"/v1/eval-runs/{eval_run_id}/results", json={"items": items})

    async def complete_run(self, eval_run_id: str, body: Mapping[str, Any]) -> None:
        await self._call("POST", f"/v1/eval-runs/{eval_run_id}/complete", json=body)

    async def compare(self, baseline: str, candidate: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/eval-runs/{baseline}/compare/{candidate}")

    async def chat(self, body: Mapping[str, Any], use_cache: bool) -> ChatAnswer:
        """One completion, retried while the API says a retry may succeed; a failure is an
        answer too (the item then fails every evaluator), never an exception."""
        headers = {} if use_cache else {"Cache-Control": "no-cache"}
        started = asyncio.get_running_loop().time()
        for attempt in range(1, _RETRIES + 1):
            try:
                response = await self._http.post("/v1/chat/completions", json=body, headers=headers)
            except httpx.HTTPError as error:
                failure: tuple[str, str, str | None] = (
                    "UNREACHABLE",
                    str(error) or type(error).__name__,
                    None,
                )
                retryable = True
            else:
                elapsed = int((asyncio.get_running_loop().time() - started) * 1000)
                if response.status_code == 200:
                    answer = response.json()
                    return ChatAnswer(
                        _text_of(answer),
                        answer.get("correlation_id"),
                        answer.get("model"),
                        None,
                        None,
                        elapsed,
                    )
                error_body = _error_of(response)
                failure = (
                    error_body["code"],
                    error_body["message"],
                    error_body.get("correlation_id"),
                )
                retryable = bool(error_body.get("retryable"))
            if not retryable or attempt == _RETRIES:
                break
            await asyncio.sleep(_BACKOFF_S * 2 ** (attempt - 1))
        elapsed = int((asyncio.get_running_loop().time() - started) * 1000)
        code, message, run_id = failure
        return ChatAnswer(None, run_id, None, code, message, elapsed)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            error = _error_of(response)
            raise ApiFailure(
                response.status_code, error["code"], error["message"], error.get("details") or []
            )
        found: dict[str, Any] = response.json()
        return found


def _text_of(answer: Mapping[str, Any]) -> str:
    """The answer's text; a tool-calling answer as its calls' JSON, so evaluators see them."""
    message = answer["choices"][0]["message"]
    if message.get("content") is not None:
        return str(message["content"])
    return json.dumps(message.get("tool_calls") or [])


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        error: dict[str, Any] = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return {"code": f"HTTP_{response.status_code}", "message": response.text[:300]}
    return error


def api_from_env(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """``PLATFORM_API_URL`` (default ``http://localhost:8080``) and ``PLATFORM_API_KEY``
    (default ``local-dev``, which ``./dev up`` accepts on loopback)."""
    return (
        environ.get("PLATFORM_API_URL") or "http://localhost:8080",
        environ.get("PLATFORM_API_KEY") or "local-dev",
    )
