"""What the local JVM services (Kafka broker, schema registry) share: cache, tools, processes.

Why one private module: both fetch artifacts with Maven into the same cache, run one JVM in its
own process group on a loopback port and stop it the same way; keeping that here means a fix to,
say, the stop logic reaches both. Errors are raised as the caller's own exception type, so each
package keeps raising only its public error.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import ClassVar, Self, TypeVar

__all__ = [
    "LOOPBACK",
    "JvmService",
    "Service",
    "cache_root",
    "die_with_parent",
    "fetch_once",
    "find_java",
    "find_tool",
    "free_ports",
    "run_checked",
    "run_maven",
    "serve",
    "stop_process_group",
    "tail",
]

LOOPBACK = "127.0.0.1"
_TAIL_LINES = 20
_KILL_TIMEOUT_S = 30.0
_MAVEN_TIMEOUT_S = 900  # a cold ~/.m2 on a slow link, not a hang

_Service = TypeVar("_Service", bound="JvmService")


def cache_root() -> Path:
    """Downloads live outside git and are shared by all checkouts; PLATFORM_CACHE_DIR moves them."""
    root = os.environ.get("PLATFORM_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "llm-platform"


def fetch_once(home: Path, stamp: str, product: Path, fetch: Callable[[], None]) -> None:
    """Run fetch unless product exists and home's marker holds stamp; write the marker last.

    Writing the marker last means an interrupted fetch is redone rather than half-used; a file
    lock keeps parallel test workers from fetching into the same dir at once.
    """
    marker = home / ".complete"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (product.exists() and marker.is_file() and marker.read_text() == stamp):
            marker.unlink(missing_ok=True)
            fetch()
            marker.write_text(stamp)


def free_ports(count: int) -> list[int]:
    """Ask the kernel for unused loopback ports, bound together so they differ.

    There is a small window until the service binds them; acceptable for a dev or test service.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def find_tool(name: str, error: type[Exception]) -> str:
    """Fail with a readable message instead of FileNotFoundError when a tool is not installed."""
    path = shutil.which(name)
    if path is None:
        raise error(f"{name!r} not found on PATH; the local JVM services need it")
    return path


def find_java(error: type[Exception]) -> str:
    """Honour JAVA_HOME as the JVM projects' own scripts do, else take java from PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return find_tool("java", error)


def run_checked(
    cmd: list[str], *, timeout: float, error: type[Exception], cwd: Path | None = None
) -> None:
    """Run a helper command; on failure, show its output rather than just an exit code."""
    result = subprocess.run(  # noqa: S603 - argv built by the callers, no shell
        cmd,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        output = tail(result.stdout + result.stderr)
        raise error(f"{' '.join(cmd)} failed with {result.returncode}:\n{output}")


def run_maven(*args: str, error: type[Exception], cwd: Path | None = None) -> None:
    """Run Maven quietly and non-interactively, so its repo settings and local cache apply."""
    mvn = find_tool("mvn", error)
    run_checked([mvn, "-q", "-B", *args], timeout=_MAVEN_TIMEOUT_S, error=error, cwd=cwd)


def tail(text: str, lines: int = _TAIL_LINES) -> str:
    """The last lines of a log: where a failed JVM usually says why."""
    return "\n".join(text.splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the thread that started it ends, so a
    launcher killed with SIGKILL leaves nothing running. Start the child from a thread that
    lives as long as the parent (the main thread)."""

    def tie() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, sig) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")

    return tie


def stop_process_group(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Signal proc's whole process group (the JVM may fork); SIGKILL it if sig is not enough."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Service(ABC):
    """Something started and closed, also as a context manager (``with`` starts it)."""

    @abstractmethod
    def start(self) -> None:
        """Launch the service and return only once it answers."""

    @abstractmethod
    def close(self) -> None:
        """Stop the service and release what this object created."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class JvmService(Service):
    """One JVM in its own process group, logging to a file, started and stopped alike.

    Subclasses supply the command, the readiness probe and their error type and noun; the
    launch, stop, wait and context-manager protocol here are the same for every service.
    """

    _error: ClassVar[type[Exception]]
    _noun: ClassVar[str]

    def __init__(
        self, log_file: Path, *, heap: str, start_timeout: float, tied_to_parent: bool = False
    ) -> None:
        self._log_file = log_file
        self._heap = heap
        self._start_timeout = start_timeout
        self._tied_to_parent = tied_to_parent
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        """The JVM's stdout/stderr, appended across restarts; quoted when a start fails."""
        return self._log_file

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown (SIGTERM: clean close, fast next start); SIGKILL if it hangs."""
        self._end(signal.SIGTERM, timeout)

    def wait(self) -> int:
        """Block until the service exits on its own; returns its exit code."""
        if self._proc is None:
            raise self._error(f"{self._noun} is not running")
        return self._proc.wait()

    @abstractmethod
    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Return once the service answers; raise if it exits or start_timeout passes."""

    def _launch(self, cmd: list[str], cwd: Path | None = None) -> None:
        """Start cmd in a new process group, then wait for readiness; kill it if that fails."""
        with open(self.log_file, "ab") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - argv built by the subclass, no shell
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: Ctrl-C in a shell reaches us, not it
                preexec_fn=die_with_parent() if self._tied_to_parent else None,
            )
        try:
            self._wait_ready(self._proc)
        except BaseException:
            self._end(signal.SIGKILL, _KILL_TIMEOUT_S)
            raise

    def _log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.is_file() else ""

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        """Signal only the process group this object started, then forget it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process_group(proc, sig, timeout)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into KeyboardInterrupt so both take the same clean-stop path."""
    raise KeyboardInterrupt


def serve(
    make: Callable[[], _Service], *, noun: str, env_var: str, address: Callable[[_Service], str]
) -> int:
    """Run a service in the foreground for a human until Ctrl-C or SIGTERM.

    If env_var already names a service, start none: the configured one is what code will use.
    Returns the process exit code: 0 when stopped by the user, 1 when the service died.
    """
    configured = os.environ.get(env_var)
    if configured:
        print(f"{env_var}={configured} is set: using that {noun}, starting none.")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    with make() as service:
        print(f"{env_var}={address(service)}", flush=True)
        print(f"{noun} log: {service.log_file}; Ctrl-C stops it", file=sys.stderr, flush=True)
        try:
            code = service.wait()
        except KeyboardInterrupt:
            return 0
    print(f"{noun} exited on its own with code {code}", file=sys.stderr)
    return 1
