"""The observability processor as deployed (``python -m streams run ...``) on the real broker:
one ``eval.result.recorded`` per finished run, none for anything else, and its verdicts
projected into ``eval_results`` one row per run and evaluator; its LLM traffic metrics scraped
from ``/metrics`` over HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from schemas import default_catalog
from streams.envelope import Envelope, WriterIdentity, new_message
from streams.local_jvm import free_ports
from streams.producer import EnvelopeProducer
from streams.serde import AvroSerde, SingleObjectFraming
from streams.topics import TopicCatalog
from tests.factories import completed_payload
from tests.integration.kafka_reading import TopicReader, committed_offsets, end_offsets
from tests.integration.processes import start_processor
from tests.integration.test_projections_support import projection_db, wait_until, write

CATALOG = default_catalog()
SERDE = AvroSerde(CATALOG, SingleObjectFraming(CATALOG))
WRITER = WriterIdentity("foundation", 1, "dev")
REFUSAL = "I'm sorry, but I can't help with that."


def completed(text: str) -> dict[str, object]:
    return completed_payload(output_text=text)


def test_every_finished_run_is_judged_once_and_projected(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    runs = {f"req_{uuid.uuid4().hex}": REFUSAL if i % 3 == 0 else f"answer {i}" for i in range(30)}
    events = [
        new_message(
            "llm.request.completed",
            completed(text),
            correlation_id=run,
            tenant_id="acme",
            writer=WRITER,
        )
        for run, text in runs.items()
    ]
    started = new_message(
        "llm.request.started",
        {"model": None, "mode": "direct", "message_count": 1, "stream": False},
        correlation_id="req_started_only",
        tenant_id="acme",
        writer=WRITER,
    )
    group = f"observability-{uuid.uuid4().hex}"
    process = start_processor(
        "processors.observability.processor:PROCESSOR",
        bootstrap,
        topics,
        group,
        tmp_path / "observability.log",
    )
    try:
        producer = EnvelopeProducer(bootstrap, SERDE, topics)
        producer.send([*events, started])  # passed by last: still committed
        producer.flush()
        judged = TopicReader(bootstrap, topics.topic_for("eval.result.recorded"), SERDE)
        judged.poll_until(lambda r: len(r.envelopes) >= len(runs), 60, "a verdict per run")
        read = topics.topic_for("llm.request.started")
        ends = {p: end for p, end in end_offsets(bootstrap, read).items() if end > 0}
        wait_until(
            lambda: committed_offsets(bootstrap, group, read) == ends, 60, "commits past it all"
        )
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0, (tmp_path / "observability.log").read_text()[-3000:]
    verdicts = {e.correlation_id: e for e in judged.envelopes}
    assert set(verdicts) == set(runs) and len(judged.envelopes) == len(runs)
    for run, text in runs.items():
        refusal = {r["evaluator"]: r["passed"] for r in verdicts[run].payload["results"]}["refusal"]
        assert refusal is (text != REFUSAL)

    with projection_db(tmp_path / "chdb") as db:
        write(db, judged.envelopes, batch_size=50)
        rows = db.reader.query(
            "SELECT correlation_id, countIf(evaluator = 'refusal' AND NOT passed) AS refused, "
            "count() AS checks FROM platform.eval_results FINAL "
            "WHERE eval_run_id = 'online' GROUP BY correlation_id",
            "JSONEachRow",
        )
    projected = [line for line in rows.decode().splitlines() if line]
    assert len(projected) == len(runs)
    assert all('"checks":5' in line for line in projected)
    assert sum('"refused":1' in line for line in projected) == 10


def failed(code: str) -> dict[str, object]:
    return {
        "error_code": code,
        "message": "simulated",
        "retryable": code == "PROVIDER_TIMEOUT",
        "provider": "p",
        "model": "m",
        "latency_ms": 12_000,
        "attempts": 2,
    }


def scraped(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample on the endpoint by name and labels; empty while it does not answer yet."""
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.TransportError:
        return {}
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_finished_runs_are_counted_on_the_metrics_endpoint(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    outcomes = [completed("fine")] * 5 + [failed("PROVIDER_TIMEOUT")] * 2 + [failed("NO_ROUTE")]
    events: list[Envelope] = [
        new_message(
            "llm.request.failed" if "error_code" in payload else "llm.request.completed",
            payload,
            correlation_id=f"req_{uuid.uuid4().hex}",
            tenant_id="acme",
            writer=WRITER,
        )
        for payload in outcomes
    ]
    [port] = free_ports(1)
    url = f"http://127.0.0.1:{port}/metrics"
    target = {("tenant", "acme"), ("provider", "p"), ("model", "m")}
    requests = "platform_llm_requests_total"
    wanted = {
        (requests, frozenset({*target, ("outcome", "completed"), ("error_code", "")})): 5.0,
        (
            requests,
            frozenset({*target, ("outcome", "failed"), ("error_code", "PROVIDER_TIMEOUT")}),
        ): 2.0,
        (requests, frozenset({*target, ("outcome", "failed"), ("error_code", "NO_ROUTE")})): 1.0,
    }
    gen_ai = {
        ("tenant", "acme"),
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "p"),
        ("gen_ai_request_model", "m"),
    }
    duration = "gen_ai_client_operation_duration_seconds"
    wanted[(f"{duration}_count", frozenset({*gen_ai, ("error_type", "")}))] = 5.0
    wanted[
        (
            f"{duration}_bucket",
            frozenset({*gen_ai, ("error_type", "PROVIDER_TIMEOUT"), ("le", "10.0")}),
        )
    ] = 0.0
    wanted[
        (
            f"{duration}_bucket",
            frozenset({*gen_ai, ("error_type", "PROVIDER_TIMEOUT"), ("le", "30.0")}),
        )
    ] = 2.0
    tokens = frozenset({*gen_ai, ("gen_ai_token_type", "output")})
    wanted[("gen_ai_client_token_usage_sum", tokens)] = 25.0

    def counted() -> bool:
        seen = scraped(url)
        return all(seen.get(key) == value for key, value in wanted.items())

    process = start_processor(
        "processors.observability.processor:PROCESSOR",
        bootstrap,
        topics,
        f"observability-{uuid.uuid4().hex}",
        tmp_path / "observability.log",
        env={"METRICS_PORT": str(port)},
    )
    try:
        producer = EnvelopeProducer(bootstrap, SERDE, topics)
        producer.send(events)
        producer.flush()
        wait_until(counted, 60, f"the runs counted on {url}")
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0, (tmp_path / "observability.log").read_text()[-3000:]
    judged = TopicReader(bootstrap, topics.topic_for("eval.result.recorded"), SERDE)
    judged.poll_until(lambda r: len(r.envelopes) >= 5, 30, "a verdict per completed run")
    assert {e.correlation_id for e in judged.envelopes} == {
        e.correlation_id for e in events if e.message_type == "llm.request.completed"
    }
