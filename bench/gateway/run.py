"""Gateway benchmark: each contender in front of one fake upstream, under open-loop load.

    bench/gateway/setup.sh          # once: the benchmark's venv and Portkey (npm)
    python bench/gateway/run.py --contenders baseline,litellm,portkey,platform \
        --rates 50,200,500,1000 --duration 20 --stream both

Starts the fake upstream (``upstream.py``), then one contender at a time; for each mode and
rate, ``loadgen.py`` runs in its own process(es) while this process samples the contender's and
the upstream's process trees. Writes the raw records and ``results.json`` under ``--results``,
the gateway section of ``docs/BENCHMARKS.md`` and the plot. Re-runs itself in the benchmark's
venv (``bench/gateway/.venv``) when started from another interpreter."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
_VENV_PYTHON = BENCH_DIR / ".venv" / "bin" / "python"


def _ensure_bench_venv() -> None:
    if Path(sys.prefix).resolve() == (BENCH_DIR / ".venv").resolve():
        return
    if not _VENV_PYTHON.exists():
        raise SystemExit(f"{_VENV_PYTHON} missing: run bench/gateway/setup.sh first")
    os.execv(_VENV_PYTHON, [str(_VENV_PYTHON), __file__, *sys.argv[1:]])  # noqa: S606


_ensure_bench_venv()

from contenders import Baseline, Contender, Endpoint, LiteLLM, Portkey  # noqa: E402
from our_platform import OurPlatform, OurPlatformEmbedded  # noqa: E402
from processes import (  # noqa: E402
    ContenderUnavailable,
    ManagedProcess,
    StartupFailed,
    free_port,
    options,
    wait_http,
)
from report import (  # noqa: E402
    PhaseStats,
    RunRecord,
    machine_summary,
    phase_stats,
    plot,
    render_section,
    write_section,
)
from resources import TreeMonitor, wait_until_quiet  # noqa: E402
from upstream import UpstreamSettings  # noqa: E402

CONTENDERS: dict[str, type[Contender]] = {
    c.name: c for c in (Baseline, LiteLLM, Portkey, OurPlatform, OurPlatformEmbedded)
}
PROJECT_DIR = BENCH_DIR.parents[1]
_START_DELAY_S = 1.5  # for the load generator processes to import and connect before request 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/gateway/run.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--contenders", default="baseline,litellm,portkey,platform")
    parser.add_argument("--rates", default="50,200,500,1000", help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--stream", choices=("no", "yes", "both"), default="both")
    parser.add_argument("--latency-ms", type=float, default=UpstreamSettings.latency_ms)
    parser.add_argument("--answer-tokens", type=int, default=UpstreamSettings.answer_tokens)
    parser.add_argument("--stream-chunks", type=int, default=UpstreamSettings.stream_chunks)
    parser.add_argument(
        "--chunk-interval-ms", type=float, default=UpstreamSettings.chunk_interval_ms
    )
    parser.add_argument("--loadgen-procs", type=int, default=1, help="generator processes")
    parser.add_argument(
        "--distinct-prompts",
        type=int,
        default=0,
        help="0 (default): every prompt unique, no cache can answer; N: the load repeats N "
        "prompts per phase, so a gateway with an answer cache serves all but N from it",
    )
    parser.add_argument(
        "--contender-warmup",
        type=float,
        default=0.0,
        help="unmeasured seconds of load at the lowest rate after each contender starts "
        "(JIT compilers, e.g. our broker's JVM, otherwise spend the first phases compiling)",
    )
    parser.add_argument("--cooldown", type=float, default=2.0, help="idle seconds between phases")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run every rate even after a contender saturated at a lower one",
    )
    parser.add_argument(
        "--results", type=Path, help="output folder (default bench/gateway/results/<time>)"
    )
    parser.add_argument("--docs", type=Path, default=PROJECT_DIR / "docs" / "BENCHMARKS.md")
    parser.add_argument("--plot", type=Path, default=BENCH_DIR / "report" / "gateway.png")
    parser.add_argument("--no-docs", action="store_true", help="write results only")
    parser.add_argument("--label", help="a note shown above the tables, e.g. 'smoke run'")
    parser.add_argument(
        "--from-results", type=Path, help="re-render docs and plot from a results.json"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # run cleanups
    if args.from_results:
        _publish(args, RunRecord.from_json(json.loads(args.from_results.read_text())))
        return 0
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        raise SystemExit(f"unknown contender(s) {unknown}; known: {sorted(CONTENDERS)}")
    if "baseline" not in names:
        names.insert(0, "baseline")  # every "added latency" needs it
    rates = sorted(float(r) for r in args.rates.split(","))  # saturation skips the rest
    modes = {"no": [False], "yes": [True], "both": [False, True]}[args.stream]
    results_dir = args.results or BENCH_DIR / "results" / datetime.now(UTC).strftime(
        "%Y%m%dT%H%M%SZ"
    )
    results_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "bench/gateway/run.py", *(argv or sys.argv[1:])])
    run = _run(args, names, rates, modes, results_dir, command)
    (results_dir / "results.json").write_text(json.dumps(run.to_json(), indent=1))
    print(f"results: {results_dir / 'results.json'}")
    _publish(args, run)
    return 1 if run.failed else 0


def _run(
    args: argparse.Namespace,
    names: list[str],
    rates: list[float],
    modes: list[bool],
    results_dir: Path,
    command: str,
) -> RunRecord:
    settings = UpstreamSettings(
        args.latency_ms, args.answer_tokens, args.stream_chunks, args.chunk_interval_ms
    )
    upstream_port = free_port()
    upstream = ManagedProcess(
        "upstream",
        [
            sys.executable,
            str(BENCH_DIR / "upstream.py"),
            *options(
                {
                    "--port": upstream_port,
                    "--latency-ms": settings.latency_ms,
                    "--answer-tokens": settings.answer_tokens,
                    "--stream-chunks": settings.stream_chunks,
                    "--chunk-interval-ms": settings.chunk_interval_ms,
                }
            ),
        ],
        results_dir,
    )
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    run = RunRecord(
        command=command,
        machine=machine_summary(),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        label=args.label,
        upstream=asdict(settings),
        load={
            "duration": args.duration,
            "warmup": args.warmup,
            "loadgen_procs": args.loadgen_procs,
        },
    )
    upstream.start()
    try:
        wait_http(f"{upstream_url}/healthz", upstream, timeout_s=30)
        for name in names:
            contender = CONTENDERS[name]()
            workdir = results_dir / name
            workdir.mkdir(exist_ok=True)
            print(f"== {name}: starting", flush=True)
            try:
                try:
                    endpoint = contender.start(upstream_url, workdir)
                except ContenderUnavailable as exc:
                    run.unavailable[name] = str(exc)
                    print(f"== {name}: skipped: {exc}", flush=True)
                    continue
                except StartupFailed as exc:
                    run.failed[name] = str(exc)
                    run.unavailable[name] = f"failed to start (log in {workdir})"
                    print(f"== {name}: failed to start: {exc}", flush=True)
                    continue
                if contender.roots() and not wait_until_quiet(contender.roots, timeout_s=90):
                    print(f"== {name}: still busy 90 s after startup; measuring anyway", flush=True)
                if args.contender_warmup > 0:
                    warm = argparse.Namespace(
                        **{**vars(args), "duration": args.contender_warmup, "warming": True}
                    )
                    _phase(warm, contender, endpoint, upstream, False, rates[0], workdir)
                    _settle(args, contender)
                run.setup.append((name, contender.version(), contender.describe()))
                for stream in modes:
                    for position, rate in enumerate(rates):
                        phase = _phase(args, contender, endpoint, upstream, stream, rate, workdir)
                        run.stats.append(phase)
                        _print_phase(phase)
                        _settle(args, contender)
                        if phase.saturated() and not args.keep_going and rates[position + 1 :]:
                            run.skipped.append(_skip_note(phase, rates[position + 1 :]))
                            print(f"  {run.skipped[-1]}", flush=True)
                            break
            finally:
                contender.stop()
    finally:
        upstream.stop()
    return run


def _settle(args: argparse.Namespace, contender: Contender) -> None:
    """Between phases: idle ``--cooldown`` seconds, then wait (up to a minute) for the contender
    to finish work the last phase left queued, so it is not charged to the next one."""
    time.sleep(args.cooldown)
    if contender.roots() and not wait_until_quiet(contender.roots, timeout_s=60):
        print(f"  {contender.name} still busy 60 s after the phase", flush=True)


def _skip_note(phase: PhaseStats, rates: list[float]) -> str:
    mode = "streaming" if phase.stream else "non-streaming"
    higher = ", ".join(f"{r:g}" for r in rates)
    return (
        f"{phase.contender} {mode} at {higher} RPS: saturated at {phase.rate:g} RPS "
        f"(achieved {phase.achieved_rps:.0f} RPS, {phase.error_rate:.0%} errors)"
    )


def _phase(
    args: argparse.Namespace,
    contender: Contender,
    endpoint: Endpoint,
    upstream: ManagedProcess,
    stream: bool,
    rate: float,
    workdir: Path,
) -> PhaseStats:
    mode = "stream" if stream else "plain"
    # the contender warm-up's prompts must differ from the measured phase's, or every measured
    # request of the first rate is an answer-cache hit
    warm_label = "-warm" if getattr(args, "warming", False) else ""
    tree = TreeMonitor(contender.roots) if contender.roots() else None
    upstream_tree = TreeMonitor(lambda: [upstream.pid])
    for monitor in (tree, upstream_tree):
        if monitor is not None:
            monitor.start()
    start_at = time.monotonic() + _START_DELAY_S
    outputs = [workdir / f"{mode}-{rate:g}-{k}.json" for k in range(args.loadgen_procs)]
    generators = [
        subprocess.Popen(  # noqa: S603 - our own script
            [
                sys.executable,
                str(BENCH_DIR / "loadgen.py"),
                *options(
                    {
                        "--url": endpoint.url,
                        "--model": endpoint.model,
                        "--rate": rate,
                        "--duration": args.duration,
                        "--warmup": args.warmup,
                        "--procs": args.loadgen_procs,
                        "--proc-index": k,
                        "--start-at": repr(start_at),
                        "--label": f"{contender.name}-{mode}-{rate:g}{warm_label}",
                        "--out": out,
                        "--stream": stream,
                        "--distinct-prompts": args.distinct_prompts,
                    }
                ),
                *(
                    arg
                    for item in endpoint.headers.items()
                    for arg in ("--header", ": ".join(item))
                ),
            ]
        )
        for k, out in enumerate(outputs)
    ]
    try:
        for generator in generators:
            if generator.wait(timeout=args.warmup + args.duration + 120) != 0:
                raise RuntimeError(f"load generator exited with {generator.returncode}")
    finally:
        for generator in generators:
            if generator.poll() is None:
                generator.kill()
                generator.wait()
    usage = tree.stop() if tree is not None else None
    upstream_usage = upstream_tree.stop()
    parts = [json.loads(out.read_text()) for out in outputs]
    records = {
        key: [v for part in parts for v in part["records"][key]] for key in parts[0]["records"]
    }
    return phase_stats(
        contender.name,
        stream,
        rate,
        records,
        tree_cpu=usage.cpu_seconds if usage else None,
        tree_peak_rss=usage.peak_rss_bytes if usage else None,
        upstream_cpu=upstream_usage.cpu_seconds,
        generator_cpu=sum(part["generator"]["cpu_seconds"] for part in parts),
        tree_cpu_by_role=usage.cpu_by_role if usage else None,
    )


def _print_phase(s: PhaseStats) -> None:
    lat = s.ttft_ms if s.stream else s.latency_ms
    percentiles = "/".join(f"{lat[p]:.1f}" for p in (50, 95, 99))
    cpu = "-" if s.cpu_per_1k is None else f"{s.cpu_per_1k:.2f}"
    rss = "-" if s.peak_rss_mib is None else f"{s.peak_rss_mib:.0f}"
    print(
        f"  {s.contender:9} {'stream' if s.stream else 'plain ':6} {s.rate:6g} RPS: "
        f"achieved {s.achieved_rps:7.1f}, errors {s.error_rate:6.2%} {s.errors or ''}, "
        f"{'TTFT' if s.stream else 'lat'} p50/p95/p99 {percentiles} ms, "
        f"cpu/1k {cpu} s, rss {rss} MiB, upstream cpu/1k {s.upstream_cpu_per_1k:.2f} s, "
        f"generator cpu/1k {s.generator_cpu_per_1k:.2f} s, lag p99 {s.lag_p99_ms:.1f} ms",
        flush=True,
    )
    if s.cpu_per_1k_by_role:
        roles = sorted(s.cpu_per_1k_by_role.items(), key=lambda item: -item[1])
        print("      cpu/1k by process: " + ", ".join(f"{r} {c:.2f} s" for r, c in roles))


def _publish(args: argparse.Namespace, run: RunRecord) -> None:
    if args.no_docs or not run.stats:
        return
    plot(run, args.plot)
    write_section(args.docs, render_section(run, os.path.relpath(args.plot, args.docs.parent)))
    print(f"wrote {args.docs} and {args.plot}")


if __name__ == "__main__":
    sys.exit(main())
