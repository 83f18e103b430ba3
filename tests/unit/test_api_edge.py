"""The edge's pure parts: keys and dev mode, the error catalogue's HTTP mapping, the in-process
rate limiter, the bound on runs in flight, strict request validation and the config loader's
messages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.auth import LOCAL_DEV_KEY, KeyRing, hash_key, local_dev_key_allowed, new_key
from api.chat_schema import ChatCompletionRequest
from api.config import ApiConfig, RateLimits, load_api_config
from api.errors import ApiError, HttpErrorCode, status_of
from api.in_flight import RunsInFlight
from api.rate_limits import MemoryRateLimiter, estimate_tokens
from streams.config import ConfigError
from streams.errors import RETRYABLE, ErrorCode


def config_with_key(key: str) -> ApiConfig:
    return ApiConfig.model_validate(
        {"auth": {"keys": [{"id": "k1", "tenant": "acme", "sha256": hash_key(key)}]}}
    )


def test_keys_are_looked_up_by_hash_and_dev_mode_only_admits_keyless_calls() -> None:
    key = new_key()
    ring = KeyRing(config_with_key(key), dev_mode=False)
    assert ring.authenticate(f"Bearer {key}").tenant == "acme"
    for bad in (None, "", "Basic abc", "Bearer ", f"Bearer {key}x"):
        with pytest.raises(ApiError) as error:
            ring.authenticate(bad)
        assert error.value.status == 401
        assert error.value.headers == {"WWW-Authenticate": "Bearer"}
    dev = KeyRing(config_with_key(key), dev_mode=True)
    assert dev.authenticate(None).tenant == "default"
    with pytest.raises(ApiError):
        dev.authenticate("Bearer typo")  # a presented key must still be valid


def test_the_local_dev_key_needs_loopback_and_no_configured_keys() -> None:
    empty = ApiConfig.model_validate({})
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert local_dev_key_allowed(empty, host), host
    for host in ("0.0.0.0", "10.0.0.5", "::", "api.example.com"):  # noqa: S104
        assert not local_dev_key_allowed(empty, host), host
    assert not local_dev_key_allowed(config_with_key(new_key()), "127.0.0.1")
    ring = KeyRing(empty, dev_mode=False, local_dev=True)
    assert ring.authenticate(f"Bearer {LOCAL_DEV_KEY}").tenant == "default"
    with pytest.raises(ApiError):
        KeyRing(empty, dev_mode=False).authenticate(f"Bearer {LOCAL_DEV_KEY}")


def test_every_code_has_a_status_and_retryable_matches_the_catalogue() -> None:
    for code in ErrorCode:
        error = ApiError(code, "m")
        assert 400 <= error.status < 600
        assert error.retryable is (code in RETRYABLE)
    assert status_of(ErrorCode.DEADLINE_EXCEEDED) == 504
    assert status_of(ErrorCode.DEPENDENCY_UNAVAILABLE) == 503
    assert status_of(ErrorCode.RATE_LIMITED) == 429
    assert [status_of(c) for c in HttpErrorCode] == [401, 403, 404, 405, 413, 409, 502, 503]
    assert ApiError(ErrorCode.INVALID_REQUEST, "m", status=422).status == 422


def test_runs_past_the_bound_are_refused_and_a_slot_is_freed_once() -> None:
    runs = RunsInFlight(2, max_queue_delay_s=0.1)
    first, _ = runs.take(), runs.take()
    with pytest.raises(ApiError) as refused:
        runs.take()
    assert refused.value.code is HttpErrorCode.OVERLOADED and refused.value.status == 503
    assert refused.value.retryable and int(refused.value.headers["Retry-After"]) >= 1
    first.release()
    first.release()  # a run that ends two ways frees one slot
    runs.take()
    with pytest.raises(ApiError):
        runs.take()


def test_a_standing_queue_is_shed_until_runs_start_promptly_again() -> None:
    """Shed once the shortest queue delay of two intervals running passed the target (with a
    few runs started in each); admit again with the first interval back under it, or with too
    few starts to tell."""
    now = [0.0]
    runs = RunsInFlight(1000, max_queue_delay_s=0.05, clock=lambda: now[0])

    def started(at: float, *delays: float) -> None:
        now[0] = at
        for delay in delays:
            runs.queued(delay)

    def admitted(at: float) -> bool:
        now[0] = at
        try:
            runs.take().release()
        except ApiError as refused:
            assert refused.code is HttpErrorCode.OVERLOADED
            assert "ms to start" in refused.message
            return False
        return True

    started(0.05, 0.2, 0.3, 0.2, 0.01)  # one prompt start: no standing queue
    assert admitted(0.11)
    started(0.15, 0.2, 0.3, 0.2)  # slow, but too few starts to tell (a cold start)
    assert admitted(0.22)
    started(0.25, 0.2, 0.3, 0.2, 0.4)
    assert admitted(0.33)  # one interval over the target
    started(0.35, 0.2, 0.3, 0.2, 0.4)
    assert not admitted(0.44)  # two running
    started(0.45, 0.2, 0.3, 0.2, 0.4)
    assert not admitted(0.55)
    started(0.6, 0.2, 0.3, 0.2, 0.03)
    assert admitted(0.66)  # back under the target
    slot = runs.take()
    now[0] = 0.7
    slot.started()  # 40 ms after it was admitted
    slot.started()  # counted once
    slot.release()
    started(0.71, 0.2, 0.3)
    assert admitted(0.77)  # its 40 ms is the interval's shortest
    started(0.8, 0.2, 0.3, 0.2, 0.4)
    started(0.9, 0.2, 0.3, 0.2, 0.4)
    assert admitted(5.0)  # intervals passed idle since: that backlog is gone


def test_the_memory_limiter_refills_per_minute_and_carries_debt() -> None:
    now = [0.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    limits = RateLimits(rpm=2, tpm=100)

    def admit(tokens: int) -> float:
        return asyncio.run(limiter.admit("k", limits, tokens))

    assert admit(10) == 0 and admit(10) == 0
    assert admit(10) == pytest.approx(30.0)  # one request refills in 60 / 2 s
    now[0] = 30.0
    assert admit(10) == 0
    asyncio.run(limiter.correct("k", limits, 250))  # used 250 more than estimated: 90 -> -160
    now[0] = 90.0  # a minute refills 100 tokens: -60, and the next 10 need 70 more
    assert admit(10) == pytest.approx(42.0)
    assert estimate_tokens([{"content": "x" * 400}], 50, limits) == 100  # capped at tpm


def request(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_requests_are_validated_strictly() -> None:
    assert request(max_tokens=5.0, stop="END").stop_sequences() == ["END"]
    assert request(max_completion_tokens=7).completion_limit() == 7
    for bad in (
        {"max_tokens": "5"},
        {"max_tokens": 0},
        {"temperature": 3},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"n": 2},
        {"unknown": 1},
        {"mode": "batch"},
        {"response_format": {"type": "json_schema"}},
        {"messages": []},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [{"role": "assistant"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}]},
    ):
        with pytest.raises(ValidationError):
            request(**bad)


def test_config_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text("feed:\n  client_queue: 10\nauth:\n  keys:\n    - id: k\n      tenant: t\n")
    with pytest.raises(ConfigError) as error:
        load_api_config(path)
    text = str(error.value)
    assert f"{path}:2: feed.client_queue" in text
    assert "auth.keys.0.sha256" in text
    assert load_api_config(Path("configs/api.yaml")).auth.keys == []
