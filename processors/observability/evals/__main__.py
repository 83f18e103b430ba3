"""``python -m processors.observability.evals``: push datasets, run evals, gate on comparisons,
all through the platform's API (``PLATFORM_API_URL``, ``PLATFORM_API_KEY``).

  dataset push FILE.jsonl --name N   publish the file's items as a dataset version
  run --dataset N --model M --evaluators exact,similarity [--baseline RUN --max-drop 0.05]
  compare RUN_A RUN_B [--max-drop 0.05] [--metric pass_rate]

Exit codes: 0 done (or the gate passed), 1 the gate failed, 2 bad input or nothing to judge."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from processors.observability.evals.client import ApiFailure, PlatformApi, api_from_env
from processors.observability.evals.gate import Metric, breaches, not_comparable, report
from processors.observability.evals.runner import RunPlan, run_eval, summary_lines
from processors.observability.evals.scorers import parse_specs

PASSED, GATE_FAILED, UNUSABLE = 0, 1, 2
_POLL_S = 0.5


class Unusable(Exception):
    """Input or state the command cannot work with; its message is for the user."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = asyncio.run(_with_api(args, args.command))
    except Unusable as problem:
        print(f"error: {problem}", file=sys.stderr)
        return UNUSABLE
    except ApiFailure as failure:
        print(f"error: {failure}", file=sys.stderr)
        for detail in failure.details:
            print(f"  {detail}", file=sys.stderr)
        return UNUSABLE
    return code


async def _with_api(args: argparse.Namespace, command: Callable[..., Awaitable[int]]) -> int:
    url, key = api_from_env()
    api = PlatformApi(args.api_url or url, args.api_key or key)
    try:
        return await command(api, args)
    finally:
        await api.aclose()


async def _push(api: PlatformApi, args: argparse.Namespace) -> int:
    lines, items = _read_jsonl(Path(args.file))
    try:
        published = await api.publish_version(args.name, items, args.description)
    except ApiFailure as failure:
        if not failure.details:
            raise
        for detail in failure.details:
            where = f"line {lines[detail['item']]}" if "item" in detail else "request"
            named = f" (id {detail['item_id']})" if detail.get("item_id") else ""
            print(f"{args.file}: {where}{named}: {detail['field']}: {detail['message']}")
        return UNUSABLE
    version = published["version"]

    async def readable() -> bool:
        try:
            versions = (await api.dataset(args.name))["versions"]
        except ApiFailure as failure:
            if failure.status != 404:
                raise
            return False
        return any(v["version"] == version for v in versions)

    await _until(readable, args.wait, f"version {version} of {args.name} to be readable")
    print(f"{args.name}@{version}: {published['item_count']} items ({published['status']})")
    return PASSED


async def _run(api: PlatformApi, args: argparse.Namespace) -> int:
    try:
        evaluators = parse_specs(args.evaluators)
    except ValueError as problem:
        raise Unusable(str(problem)) from None
    plan = RunPlan(
        args.dataset,
        args.version,
        args.model,
        evaluators,
        args.concurrency,
        args.baseline,
        args.use_cache,
    )
    summary = await run_eval(api, plan)
    print("\n".join(summary_lines(summary)))
    if args.baseline is None:
        return PASSED
    return await _gate(api, args.baseline, summary.eval_run_id, args)


async def _compare(api: PlatformApi, args: argparse.Namespace) -> int:
    return await _gate(api, args.baseline, args.candidate, args)


async def _gate(api: PlatformApi, baseline: str, candidate: str, args: argparse.Namespace) -> int:
    """Wait (bounded) until both runs read completed, then judge."""
    comparison: dict[str, Any] = {}
    missing = ""

    async def comparable() -> bool:
        nonlocal comparison, missing
        try:
            comparison = await api.compare(baseline, candidate)
        except ApiFailure as failure:
            if failure.status != 404:  # a run that just started may not be projected yet
                raise
            missing = failure.message
            return False
        return not_comparable(comparison) is None

    try:
        await _until(comparable, args.wait, f"runs {baseline} and {candidate} to complete")
    except Unusable as waited:
        why = not_comparable(comparison) if comparison else missing
        raise Unusable(f"{waited}: {why}") from None
    metric: Metric = args.metric
    print("\n".join(report(comparison, metric, args.max_drop)))
    return GATE_FAILED if breaches(comparison, metric, args.max_drop) else PASSED


async def _until(check: Callable[[], Awaitable[bool]], wait_s: float, what: str) -> None:
    deadline = time.monotonic() + wait_s
    while not await check():
        if time.monotonic() >= deadline:
            raise Unusable(f"gave up after {wait_s:g}s waiting for {what}")
        await asyncio.sleep(_POLL_S)


def _read_jsonl(path: Path) -> tuple[list[int], list[Any]]:
    """The items and the line each came from (blank lines skipped)."""
    lines, items = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise Unusable(f"{path}: {error.strerror}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except ValueError as error:
            raise Unusable(f"{path}: line {number}: not JSON: {error}") from None
        lines.append(number)
    if not items:
        raise Unusable(f"{path}: no items")
    return lines, items


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m processors.observability.evals",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--api-url", help="default: PLATFORM_API_URL or http://localhost:8080")
    parser.add_argument("--api-key", help="default: PLATFORM_API_KEY or local-dev")
    commands = parser.add_subparsers(required=True)

    dataset = commands.add_parser("dataset", help="manage datasets")
    push = dataset.add_subparsers(required=True).add_parser("push", help="publish a version")
    push.add_argument("file", help="JSON Lines: {id, input, expected?, rubric?, metadata?}")
    push.add_argument("--name", required=True)
    push.add_argument("--description")
    push.add_argument("--wait", type=float, default=60.0, help="seconds until readable")
    push.set_defaults(command=_push)

    run = commands.add_parser("run", help="replay a dataset version and score the answers")
    run.add_argument("--dataset", required=True)
    run.add_argument("--version", help="default: the newest")
    run.add_argument("--model", required=True, help="the model (route hint) to call")
    run.add_argument(
        "--evaluators",
        action="append",
        required=True,
        help="exact,contains,json,similarity[:0.5],regex:<pattern> (a regex takes the rest "
        "of its value: give it last or in its own --evaluators)",
    )
    run.add_argument("--concurrency", type=int, default=8)
    run.add_argument("--use-cache", action="store_true", help="let the answer cache answer")
    run.add_argument("--baseline", help="gate this run against an earlier one")
    _add_gate_options(run)
    run.set_defaults(command=_run)

    compare = commands.add_parser("compare", help="compare two runs; fail on a drop")
    compare.add_argument("baseline")
    compare.add_argument("candidate")
    _add_gate_options(compare)
    compare.set_defaults(command=_compare)
    return parser


def _add_gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-drop", type=float, default=0.05, help="allowed drop (0.05)")
    parser.add_argument("--metric", choices=["pass_rate", "mean_score"], default="pass_rate")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for runs")


if __name__ == "__main__":
    sys.exit(main())
