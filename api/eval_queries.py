"""The offline evals' read model: SQL over the projections' dataset and eval tables (migration
0008 and ``eval_results``), every query scoped to one tenant, and the one place that reads it.

Names and ids were validated at the edge and go through ``sql_literal``; numbers as integers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from api.errors import ApiError
from streams.errors import ErrorCode
from streams.projections_client import ProjectionsClient, ProjectionsUnavailable, sql_literal

__all__ = [
    "aggregates_sql",
    "datasets_sql",
    "eval_runs_sql",
    "items_sql",
    "read",
    "regressions_sql",
    "scored_items_sql",
    "versions_sql",
]


async def read(projections: ProjectionsClient, *queries: str) -> list[list[dict[str, Any]]]:
    """Each query's rows, read at once; 503 (retryable) while the projections do not answer."""
    try:
        return list(await asyncio.gather(*(projections.rows(sql) for sql in queries)))
    except ProjectionsUnavailable as error:
        raise ApiError(
            ErrorCode.DEPENDENCY_UNAVAILABLE, "eval projections unavailable; retry"
        ) from error


def _in(values: Iterable[str]) -> str:
    return ", ".join(map(sql_literal, values))


def datasets_sql(database: str, tenant: str) -> str:
    """One row per dataset: how many versions, and the newest."""
    return (
        "SELECT dataset, count() AS versions, argMax(version, published_at) AS latest_version, "  # noqa: S608
        "argMax(item_count, published_at) AS latest_item_count, "
        "toString(max(published_at)) AS latest_published_at "
        f"FROM {database}.dataset_versions FINAL WHERE tenant_id = {sql_literal(tenant)} "
        "GROUP BY dataset ORDER BY dataset"
    )


def versions_sql(database: str, tenant: str, dataset: str, version: str | None = None) -> str:
    """A dataset's versions, newest first (or the one ``version``)."""
    where = [f"tenant_id = {sql_literal(tenant)}", f"dataset = {sql_literal(dataset)}"]
    if version is not None:
        where.append(f"version = {sql_literal(version)}")
    return (
        "SELECT version, item_count, description, published_by, "  # noqa: S608
        "toString(published_at) AS published_at "
        f"FROM {database}.dataset_versions FINAL WHERE {' AND '.join(where)} "
        "ORDER BY published_at DESC, version"
    )


def items_sql(
    database: str, tenant: str, dataset: str, version: str, offset: int, limit: int
) -> str:
    """A page of a version's items in replay order."""
    return (
        "SELECT item_id AS id, input, expected, rubric, metadata "  # noqa: S608
        f"FROM {database}.dataset_items FINAL WHERE tenant_id = {sql_literal(tenant)} "
        f"AND dataset = {sql_literal(dataset)} AND version = {sql_literal(version)} "
        f"ORDER BY position LIMIT {int(offset)}, {int(limit)}"
    )


def eval_runs_sql(
    database: str,
    tenant: str,
    run_ids: Iterable[str] | None = None,
    dataset: str | None = None,
    limit: int = 100,
) -> str:
    """Runs as they started (the given ones, or a dataset's, or all), newest first."""
    where = [f"tenant_id = {sql_literal(tenant)}"]
    if run_ids is not None:
        where.append(f"eval_run_id IN ({_in(run_ids)})")
    if dataset is not None:
        where.append(f"dataset = {sql_literal(dataset)}")
    return (
        "SELECT eval_run_id, dataset, dataset_version, model, evaluators, item_count, "  # noqa: S608
        "baseline, started_by, toString(started_at) AS started_at "
        f"FROM {database}.eval_runs FINAL WHERE {' AND '.join(where)} "
        f"ORDER BY started_at DESC, eval_run_id LIMIT {int(limit)}"
    )


def aggregates_sql(database: str, tenant: str, run_ids: Iterable[str]) -> str:
    """Completed runs' aggregates, one row per run and evaluator."""
    return (
        "SELECT eval_run_id, evaluator, items, passed, pass_rate, mean_score, failed_calls, "  # noqa: S608
        "toString(completed_at) AS completed_at "
        f"FROM {database}.eval_run_aggregates FINAL WHERE tenant_id = {sql_literal(tenant)} "
        f"AND eval_run_id IN ({_in(run_ids)}) ORDER BY eval_run_id, evaluator"
    )


def scored_items_sql(database: str, tenant: str, run_ids: Iterable[str]) -> str:
    """How many items of each run have their verdicts in ``eval_results`` so far."""
    return (
        "SELECT eval_run_id, uniqExact(case_id) AS scored_items "  # noqa: S608
        f"FROM {database}.eval_results WHERE tenant_id = {sql_literal(tenant)} "
        f"AND eval_run_id IN ({_in(run_ids)}) GROUP BY eval_run_id"
    )


def regressions_sql(database: str, tenant: str, baseline: str, candidate: str, limit: int) -> str:
    """Items whose verdict got worse from ``baseline`` to ``candidate`` (a lower score, or a
    pass turned fail) per evaluator both ran, the largest drops first; ``total`` counts all."""

    def verdicts(run: str) -> str:
        return (
            "SELECT case_id, evaluator, score, passed, label, details, correlation_id "  # noqa: S608
            f"FROM {database}.eval_results FINAL WHERE tenant_id = {sql_literal(tenant)} "
            f"AND eval_run_id = {sql_literal(run)}"
        )

    return (
        "SELECT a.case_id AS item_id, a.evaluator AS evaluator, "  # noqa: S608
        "a.score AS baseline_score, b.score AS candidate_score, "
        "a.passed AS baseline_passed, b.passed AS candidate_passed, "
        "b.label AS candidate_label, b.details AS candidate_details, "
        "b.correlation_id AS candidate_run_id, count() OVER () AS total "
        f"FROM ({verdicts(baseline)}) AS a INNER JOIN ({verdicts(candidate)}) AS b "
        "ON a.case_id = b.case_id AND a.evaluator = b.evaluator "
        "WHERE b.score < a.score OR (a.passed = 1 AND b.passed = 0) "
        f"ORDER BY a.score - b.score DESC, item_id, evaluator LIMIT {int(limit)}"
    )
