"""CPU seconds and peak memory of a process tree while a load phase runs.

A contender is whatever its root processes and all their descendants are (LiteLLM's workers,
our API, processors and broker), so the monitor walks the tree at every sample: a worker that
starts mid-phase counts from zero, one that exits keeps its last reading. Peak RSS is the
largest sum over the tree at any sample (RSS counts shared pages once per process, so it errs
high for forked workers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

__all__ = ["TreeMonitor", "TreeUsage", "wait_until_quiet"]

_SAMPLE_S = 0.2


@dataclass(frozen=True)
class TreeUsage:
    cpu_seconds: float
    peak_rss_bytes: int
    processes: int
    cpu_by_role: dict[str, float]  # what each kind of process used: "api", "kafka broker", ...


def role_of(process: psutil.Process) -> str:
    """A process's part in its contender: the module a Python process runs (``-m api``), else
    its program (a JVM is our Kafka broker)."""
    try:
        argv = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "?"
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        return module if module != "streams" else " ".join(argv[argv.index("-m") + 1 :][:3])
    program = argv[0].rsplit("/", 1)[-1] if argv else "?"
    return "kafka broker" if program == "java" else program


def wait_until_quiet(
    roots: Callable[[], list[int]],
    timeout_s: float,
    below_cores: float = 0.2,
    window_s: float = 2.0,
) -> bool:
    """Until the tree uses less than ``below_cores`` of a CPU over ``window_s``: a contender that
    answered its first request may still be starting workers (LiteLLM) or warming a JVM, and
    that work must not be charged to the first load phase. The bar sits above an idle KRaft
    broker's own polling (about 0.1 core here), which never goes quieter. False if it never
    settles."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        monitor = TreeMonitor(roots)
        monitor.start()
        time.sleep(window_s)
        if monitor.stop().cpu_seconds < below_cores * window_s:
            return True
    return False


class TreeMonitor:
    """Samples the trees under ``roots()`` in a thread between ``start()`` and ``stop()``."""

    def __init__(self, roots: Callable[[], list[int]]) -> None:
        self._roots = roots
        self._baseline: dict[int, float] = {}
        self._latest: dict[int, float] = {}
        self._roles: dict[int, str] = {}
        self._peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._peak_rss = 0
        self._latest = {}
        self._baseline = dict(self._sample())
        self._latest = dict(self._baseline)
        self._thread = threading.Thread(target=self._loop, name="tree-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> TreeUsage:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._latest.update(self._sample())
        used = {pid: t - self._baseline.get(pid, 0.0) for pid, t in self._latest.items()}
        by_role: dict[str, float] = {}
        for pid, seconds in used.items():
            role = self._roles.get(pid, "?")
            by_role[role] = by_role.get(role, 0.0) + seconds
        return TreeUsage(sum(used.values()), self._peak_rss, len(self._latest), by_role)

    def _loop(self) -> None:
        while not self._stop.wait(_SAMPLE_S):
            self._latest.update(self._sample())

    def _sample(self) -> dict[int, float]:
        cpu: dict[int, float] = {}
        rss = 0
        for process in self._tree():
            try:
                with process.oneshot():
                    if process.pid not in self._roles:
                        self._roles[process.pid] = role_of(process)
                    times = process.cpu_times()
                    cpu[process.pid] = times.user + times.system
                    rss += process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        self._peak_rss = max(self._peak_rss, rss)
        return cpu

    def _tree(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for pid in self._roots():
            try:
                root = psutil.Process(pid)
                found[pid] = root
                found.update((child.pid, child) for child in root.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        return list(found.values())
