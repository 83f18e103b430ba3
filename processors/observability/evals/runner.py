"""An eval run, orchestrated by its client: every item of a dataset version is replayed through
the platform's own ``/v1/chat/completions`` (so routing, guardrails, budgets and rate limits
apply as to any caller, and the cache is bypassed unless asked), scored here, and reported to
``/v1/eval-runs`` in batches; the API turns the reports into events. Nothing runs server-side,
so a run needs only an API key, and its concurrency is the caller's to choose."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from processors.observability.evals.client import ChatAnswer, PlatformApi
from processors.observability.evals.judging import is_judge, judge_chat_request, judge_verdict
from processors.observability.evals.scorers import aggregate, failed_call, score
from schemas.payloads import EvalAggregate, EvalVerdict

__all__ = ["RunPlan", "RunSummary", "chat_request", "outcome", "run_eval", "summary_lines"]

_BATCH = 50  # items reported per request
_OUTPUT_CHARS = 8000  # the answer kept on the event (eval.item.scored)


@dataclass(frozen=True)
class RunPlan:
    dataset: str
    version: str | None  # None: the newest
    model: str
    evaluators: Sequence[str]
    concurrency: int = 8
    baseline: str | None = None
    use_cache: bool = False


@dataclass(frozen=True)
class RunSummary:
    eval_run_id: str
    dataset: str
    version: str
    items: int
    failed_calls: int
    aggregates: list[EvalAggregate]


def chat_request(item: Mapping[str, Any], model: str, eval_run_id: str) -> dict[str, Any]:
    """The item as a chat completion request; a string input is one user message. Metadata
    ties the chat run to the eval run and item."""
    given = item["input"]
    messages = [{"role": "user", "content": given}] if isinstance(given, str) else given
    return {
        "model": model,
        "messages": messages,
        "metadata": {"eval_run_id": eval_run_id, "eval_item_id": str(item["id"])},
    }


def outcome(
    item: Mapping[str, Any],
    answer: ChatAnswer,
    evaluators: Sequence[str],
    graded: Mapping[str, ChatAnswer] | None = None,
) -> tuple[dict[str, Any], list[EvalVerdict]]:
    """An item's report (``POST /v1/eval-runs/{id}/results``) and its verdicts; ``graded``:
    the judges' answers, by judge spec."""
    if answer.error_code is not None or answer.output is None:
        verdicts = failed_call(evaluators, answer.error_code or "NO_ANSWER")
    else:
        verdicts = score(evaluators, answer.output, item.get("expected"))
        verdicts += [judge_verdict(spec, found) for spec, found in (graded or {}).items()]
    report = {
        "item_id": item["id"],
        "run_id": answer.run_id,
        "model": answer.model,
        "output": answer.output[:_OUTPUT_CHARS] if answer.output is not None else None,
        "error_code": answer.error_code,
        "error_message": (answer.error_message or "")[:2000] or None,
        "latency_ms": answer.latency_ms,
        "results": verdicts,
    }
    return report, verdicts


async def run_eval(api: PlatformApi, plan: RunPlan) -> RunSummary:
    """Start the run, replay and score every item (at most ``concurrency`` calls at once),
    report each batch as it fills, then complete the run with its aggregates."""
    version = plan.version or (await api.dataset(plan.dataset))["versions"][0]["version"]
    items = await api.items(plan.dataset, version)
    started = await api.start_run(
        {
            "dataset": plan.dataset,
            "dataset_version": version,
            "model": plan.model,
            "evaluators": list(plan.evaluators),
            "baseline": plan.baseline,
        }
    )
    eval_run_id = str(started["eval_run_id"])
    slots = asyncio.Semaphore(plan.concurrency)

    judges = [spec for spec in plan.evaluators if is_judge(spec)]

    async def replayed(item: Mapping[str, Any]) -> tuple[dict[str, Any], list[EvalVerdict]]:
        async with slots:
            answer = await api.chat(chat_request(item, plan.model, eval_run_id), plan.use_cache)
            graded = {
                spec: await api.chat(
                    judge_chat_request(spec, item, answer.output, eval_run_id), use_cache=False
                )
                for spec in judges
                if answer.output is not None
            }
        return outcome(item, answer, plan.evaluators, graded)

    verdicts: list[list[EvalVerdict]] = []
    batch: list[dict[str, Any]] = []
    failed = 0
    for done in asyncio.as_completed([replayed(item) for item in items]):
        report, found = await done
        verdicts.append(found)
        failed += report["error_code"] is not None
        batch.append(report)
        if len(batch) == _BATCH:
            await api.record_results(eval_run_id, batch)
            batch = []
    if batch:
        await api.record_results(eval_run_id, batch)
    aggregates = aggregate(plan.evaluators, verdicts)
    await api.complete_run(eval_run_id, {"failed_calls": failed, "aggregates": aggregates})
    return RunSummary(eval_run_id, plan.dataset, version, len(items), failed, aggregates)


def summary_lines(summary: RunSummary) -> list[str]:
    """What a person reads after a run."""
    lines = [
        f"eval run {summary.eval_run_id}: {summary.dataset}@{summary.version}, "
        f"{summary.items} items, {summary.failed_calls} failed calls"
    ]
    for a in summary.aggregates:
        lines.append(
            f"  {a['evaluator']:<28} pass_rate {a['pass_rate']:.3f} ({a['passed']}/{a['items']})"
            f"  mean_score {a['mean_score']:.3f}"
        )
    return lines
