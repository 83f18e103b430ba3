"""Starting, probing and stopping the servers of a benchmark run.

Every server runs in its own session (process group), so stopping it reaches the workers it
forked and nothing else; its output goes to a log file in the run's folder, whose tail is shown
when it fails to come up."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "ContenderUnavailable",
    "ManagedProcess",
    "StartupFailed",
    "free_port",
    "options",
    "probe_chat",
    "wait_http",
]


_NEVER_HEALS = re.compile(r"HTTP 4(?!08|25|29)\d\d")  # a client error will not pass by waiting


class ContenderUnavailable(RuntimeError):
    """The contender cannot run on this checkout (not installed, or not built yet)."""


class StartupFailed(RuntimeError):
    """The contender started but never answered correctly."""


def options(values: Mapping[str, object]) -> list[str]:
    """``{"--port": 80}`` as ``["--port", "80"]``; True is a bare flag, False or None none."""
    argv: list[str] = []
    for name, value in values.items():
        if value is True:
            argv.append(name)
        elif value is not False and value is not None:
            argv += [name, str(value)]
    return argv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: list[str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._process.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - argv built by this benchmark
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM to the process (a supervisor stops its own children in order), then SIGKILL
        to whatever is left of its process group after ``grace_s``."""
        if self._process is None:
            return
        pgid = self._process.pid  # its own session: group id == pid
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(pgid, signal.SIGKILL)  # forked workers that outlived their parent
        self._process.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def wait_http(url: str, process: ManagedProcess, timeout_s: float) -> None:
    """Until ``url`` answers 200; fail at once if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.alive():
            raise StartupFailed(f"{process.name} exited during startup:\n{process.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise StartupFailed(
        f"{process.name}: {url} not ready after {timeout_s:.0f}s:\n{process.log_tail()}"
    )


def probe_chat(
    url: str, model: str, headers: Mapping[str, str], process: ManagedProcess, timeout_s: float
) -> None:
    """A non-streaming and a streaming request must both succeed through the contender."""
    deadline = time.monotonic() + timeout_s
    last = ""
    for stream in (False, True):
        while True:
            if not process.alive():
                raise StartupFailed(f"{process.name} exited:\n{process.log_tail()}")
            ok, last = _chat_once(url, model, headers, stream)
            if ok:
                break
            if _NEVER_HEALS.match(last):
                raise StartupFailed(f"{process.name} refused the probe (stream={stream}): {last}")
            if time.monotonic() > deadline:
                raise StartupFailed(
                    f"{process.name}: no good answer (stream={stream}) in {timeout_s:.0f}s; "
                    f"last: {last[:500]}\n{process.log_tail()}"
                )
            time.sleep(0.5)


def _chat_once(url: str, model: str, headers: Mapping[str, str], stream: bool) -> tuple[bool, str]:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": f"probe {time.monotonic_ns()}"}],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    request = urllib.request.Request(  # noqa: S310 - loopback
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
            text = resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}: {exc.read().decode(errors='replace')}"
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return False, repr(exc)
    done = "[DONE]" in text if stream else '"choices"' in text
    return done and "tok0" in text, text
