"""From the per-request records of each load phase to the tables and the plot.

Latency is end minus due time (open loop: queueing in front of a slow contender counts); time
to first token is the first content delta minus due time. "Added" is the contender's percentile
minus the direct baseline's at the same rate and mode, so the upstream's 50 ms and the
generator's own overhead cancel out. Achieved RPS is the successful measured requests over the
time from the first one's due time to the last one's end (so it is low by one latency over the
duration, 0.25% for 50 ms in 20 s, and a contender that falls behind shows its service rate);
CPU per 1,000 requests divides the process tree's CPU over the whole phase (warm-up included)
by every request sent in it."""

from __future__ import annotations

import math
import os
import platform
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PhaseStats",
    "RunRecord",
    "machine_summary",
    "phase_stats",
    "plot",
    "render_section",
    "write_section",
]

BEGIN = "<!-- gateway-benchmark:begin -->"
END = "<!-- gateway-benchmark:end -->"
_PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class PhaseStats:
    contender: str
    stream: bool
    rate: float
    sent: int
    ok: int
    error_rate: float
    errors: dict[str, int]
    achieved_rps: float
    latency_ms: dict[int, float]
    ttft_ms: dict[int, float]
    lag_p99_ms: float
    cpu_per_1k: float | None
    peak_rss_mib: float | None
    upstream_cpu_per_1k: float
    generator_cpu_per_1k: float
    cpu_per_1k_by_role: dict[str, float] = field(default_factory=dict)

    def saturated(self) -> bool:
        """Past what the contender can serve: more load would only queue and time out."""
        return self.error_rate > 0.5 or self.achieved_rps < 0.5 * self.rate

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PhaseStats:
        percentiles = {
            key: {int(p): v for p, v in data[key].items()} for key in ("latency_ms", "ttft_ms")
        }
        return cls(**{**data, **percentiles})


@dataclass
class RunRecord:
    """One run: how it was started, on what, with which settings, and every phase's numbers."""

    command: str
    machine: str
    started: str
    label: str | None
    upstream: dict[str, float]  # UpstreamSettings
    load: dict[str, float]  # duration, warmup, loadgen_procs
    setup: list[tuple[str, str, str]] = field(default_factory=list)  # name, version, how
    unavailable: dict[str, str] = field(default_factory=dict)  # name -> why it did not run
    failed: dict[str, str] = field(default_factory=dict)  # name -> startup error
    skipped: list[str] = field(default_factory=list)  # phases not run, and why
    stats: list[PhaseStats] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        return cls(
            **{
                **data,
                "setup": [tuple(row) for row in data["setup"]],
                "stats": [PhaseStats.from_json(s) for s in data["stats"]],
            }
        )


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, math.ceil(p / 100 * len(ordered)) - 1)
    return ordered[rank]


def phase_stats(
    contender: str,
    stream: bool,
    rate: float,
    records: dict[str, list[Any]],
    tree_cpu: float | None,
    tree_peak_rss: int | None,
    upstream_cpu: float,
    generator_cpu: float,
    tree_cpu_by_role: dict[str, float] | None = None,
) -> PhaseStats:
    measured = [i for i, warm in enumerate(records["warmup"]) if not warm]
    ok = [i for i in measured if records["error"][i] is None]
    latency = [(records["end"][i] - records["due"][i]) * 1000 for i in ok]
    ttft = [(records["first_token"][i] - records["due"][i]) * 1000 for i in ok]
    lag = [(records["sent"][i] - records["due"][i]) * 1000 for i in measured]
    span = max((records["end"][i] for i in ok), default=0.0) - min(
        (records["due"][i] for i in measured), default=0.0
    )
    achieved = len(ok) / span if span > 0 else 0.0
    sent_all = len(records["index"])
    errors = Counter(records["error"][i] for i in measured if records["error"][i] is not None)
    return PhaseStats(
        contender=contender,
        stream=stream,
        rate=rate,
        sent=len(measured),
        ok=len(ok),
        error_rate=(len(measured) - len(ok)) / len(measured) if measured else math.nan,
        errors=dict(errors.most_common(5)),
        achieved_rps=achieved,
        latency_ms={p: _percentile(latency, p) for p in _PERCENTILES},
        ttft_ms={p: _percentile(ttft, p) for p in _PERCENTILES},
        lag_p99_ms=_percentile(lag, 99),
        cpu_per_1k=None if tree_cpu is None else tree_cpu / sent_all * 1000,
        peak_rss_mib=None if tree_peak_rss is None else tree_peak_rss / 2**20,
        upstream_cpu_per_1k=upstream_cpu / sent_all * 1000,
        generator_cpu_per_1k=generator_cpu / sent_all * 1000,
        cpu_per_1k_by_role={
            role: seconds / sent_all * 1000 for role, seconds in (tree_cpu_by_role or {}).items()
        },
    )


def machine_summary() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = re.search(r"^MemTotal:\s*(\d+)", meminfo, re.MULTILINE)
    cpu = model.group(1) if model else "unknown CPU"
    ram = f"{int(mem_kib.group(1)) / 2**20:.1f} GiB RAM" if mem_kib else "unknown RAM"
    return (
        f"nproc {os.cpu_count()}, {cpu}, {ram}, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _added(value: float, base: float | None) -> str:
    if base is None or math.isnan(value) or math.isnan(base):
        return "-"
    return f"{value - base:+.1f}"


def _table(stats: list[PhaseStats], stream: bool) -> list[str]:
    baseline = {s.rate: s for s in stats if s.contender == "baseline" and s.stream == stream}
    metric = "ttft_ms" if stream else "latency_ms"
    what = "TTFT" if stream else "latency"
    header = [
        "contender",
        "offered RPS",
        "achieved RPS",
        "errors",
        f"{what} p50 / p95 / p99 ms",
        *(f"added p{p}" for p in _PERCENTILES),
        *(["total p50 / p99 ms"] if stream else []),
        "CPU s / 1k req",
        "peak RSS MiB",
        "upstream CPU s / 1k",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in sorted(
        (s for s in stats if s.stream == stream),
        key=lambda s: (s.rate, s.contender != "baseline", s.contender),
    ):
        values: dict[int, float] = getattr(s, metric)
        base = baseline.get(s.rate)
        base_values: dict[int, float] | None = getattr(base, metric) if base else None
        errors = f"{s.error_rate:.2%}" + (f" ({', '.join(s.errors)})" if s.errors else "")
        cells = [
            s.contender,
            f"{s.rate:g}",
            f"{s.achieved_rps:.0f}",
            errors,
            " / ".join(_ms(values[p]) for p in _PERCENTILES),
            *(
                "0 (reference)"
                if s.contender == "baseline"
                else _added(values[p], base_values[p] if base_values else None)
                for p in _PERCENTILES
            ),
        ]
        if stream:
            cells.append(f"{_ms(s.latency_ms[50])} / {_ms(s.latency_ms[99])}")
        cells += [
            "-" if s.cpu_per_1k is None else f"{s.cpu_per_1k:.2f}",
            "-" if s.peak_rss_mib is None else f"{s.peak_rss_mib:.0f}",
            f"{s.upstream_cpu_per_1k:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _role_label(role: str) -> str:
    """A process as a reader names it: "foundation processor", "redis", "launcher"."""
    words = role.removeprefix("streams ").split()
    if words[:1] == ["run"] and len(words) > 1:
        module = words[1].split(":")[0].removesuffix(".processor")
        return module.rsplit(".", 1)[-1] + " processor"
    if words[:1] == ["up"]:
        return "launcher"
    if role == "kafka broker":
        return role
    return {"redis-server": "redis", "projections": "projector"}.get(words[0], words[0])


def _role_table(stats: list[PhaseStats]) -> list[str]:
    """Contenders made of several processes only (a one-process one is its total)."""
    labelled = [
        (s, {_role_label(r): c for r, c in s.cpu_per_1k_by_role.items()})
        for s in stats
        if len(s.cpu_per_1k_by_role) > 1
    ]
    roles = sorted({role for _, by_role in labelled for role in by_role})
    rows = [
        "| contender | mode | offered RPS | " + " | ".join(roles) + " |",
        "|---|---|---|" + "---|" * len(roles),
    ]
    for s, by_role in labelled:
        cells = [f"{by_role[r]:.2f}" if r in by_role else "-" for r in roles]
        mode = "streaming" if s.stream else "non-streaming"
        rows.append(f"| {s.contender} | {mode} | {s.rate:g} | " + " | ".join(cells) + " |")
    return rows


def render_section(run: RunRecord, plot_link: str | None) -> str:
    """The gateway section of docs/BENCHMARKS.md, between its markers."""
    up, load = run.upstream, run.load
    worst = max(run.stats, key=lambda s: s.lag_p99_ms)
    lines = [BEGIN, "## Gateway benchmark (`bench/gateway`)", ""]
    if run.label:
        lines += [f"> **{run.label}**", ""]
    lines += [
        f"Run {run.started} on: {run.machine}.",
        "",
        "```bash",
        run.command,
        "```",
        "",
        f"Upstream: `upstream.py` (asyncio protocol on uvloop with httptools, one process), "
        f"{up['latency_ms']:g} ms to the answer or first token, {up['answer_tokens']:g} "
        f"completion tokens, streamed in {up['stream_chunks']:g} chunks "
        f"{up['chunk_interval_ms']:g} ms apart, usage reported.",
        "",
        f"Load: open loop (`loadgen.py`, aiohttp on uvloop, {load['loadgen_procs']:g} "
        f"process(es)), constant arrival rate, {load['warmup']:g} s warm-up then "
        f"{load['duration']:g} s measured per rate and mode, every prompt unique. The "
        f"generator's send lag p99 was at most {worst.lag_p99_ms:.1f} ms "
        f"({worst.contender}, {'streaming' if worst.stream else 'non-streaming'}, "
        f"{worst.rate:g} RPS).",
        "",
        "| contender | version | how it runs |",
        "|---|---|---|",
        *(f"| {name} | {version or '-'} | {how} |" for name, version, how in run.setup),
        *(f"| {name} | - | **not run**: {why} |" for name, why in run.unavailable.items()),
        "",
    ]
    for stream, title in ((False, "Non-streaming"), (True, "Streaming (time to first token)")):
        if any(s.stream == stream for s in run.stats):
            lines += [f"### {title}", "", *_table(run.stats, stream), ""]
    if any(len(s.cpu_per_1k_by_role) > 1 for s in run.stats):
        lines += ["CPU s / 1k requests by process:", "", *_role_table(run.stats), ""]
    if run.skipped:
        lines += ["Not run:", "", *(f"- {why}" for why in run.skipped), ""]
    if plot_link:
        lines += [f"![added latency and CPU per contender]({plot_link})", ""]
    lines += [
        "How to read it: latency is measured from each request's due time on the open-loop "
        'timeline, so a contender that queues is charged for the wait; "added" subtracts the '
        "direct baseline's percentile at the same rate and mode. CPU and peak RSS are the "
        "contender's whole process tree (workers, broker, Redis); the upstream's CPU is shown "
        "to prove it was never the bottleneck. Errors name the most common kinds.",
        END,
    ]
    return "\n".join(lines)


def write_section(docs: Path, section: str) -> None:
    """Replace the gateway section of ``docs`` (or create/append it), leaving the rest alone."""
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    docs.write_text(text)


def plot(run: RunRecord, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    stats = run.stats
    modes = [m for m in (False, True) if any(s.stream == m for s in stats)]
    contenders = sorted({s.contender for s in stats} - {"baseline"})
    fig, axes = plt.subplots(len(modes), 3, figsize=(15, 4.2 * len(modes)), squeeze=False)
    for row, stream in enumerate(modes):
        metric = "ttft_ms" if stream else "latency_ms"
        what = "TTFT" if stream else "latency"
        baseline = {
            s.rate: getattr(s, metric)
            for s in stats
            if s.contender == "baseline" and s.stream == stream
        }
        for name in contenders:
            points = sorted(
                (s for s in stats if s.contender == name and s.stream == stream),
                key=lambda s: s.rate,
            )
            rates = [s.rate for s in points if s.rate in baseline]
            for col, p in enumerate((50, 99)):
                added = [
                    getattr(s, metric)[p] - baseline[s.rate][p]
                    for s in points
                    if s.rate in baseline
                ]
                axes[row][col].plot(rates, added, marker="o", label=name)
            cpu = [(s.rate, s.cpu_per_1k) for s in points if s.cpu_per_1k is not None]
            axes[row][2].plot([r for r, _ in cpu], [c for _, c in cpu], marker="o", label=name)
        mode = "streaming" if stream else "non-streaming"
        for col, title in enumerate(
            (f"added {what} p50 (ms)", f"added {what} p99 (ms)", "CPU s per 1,000 requests")
        ):
            ax = axes[row][col]
            ax.set_title(f"{mode}: {title}")
            ax.set_xlabel("offered rate (RPS)")
            ax.set_xscale("log")
            ax.set_xticks(sorted({s.rate for s in stats}))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.grid(True, which="both", alpha=0.3)
            if col < 2:
                ax.set_yscale("symlog", linthresh=1.0)  # a few ms and a few seconds, both legible
                ax.axhline(0, color="black", linewidth=0.8)
            ax.legend()
    if run.label:
        fig.suptitle(run.label, fontsize=9, wrap=True)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
