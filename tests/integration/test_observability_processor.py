"""The observability processor as deployed (``python -m streams run ...``) on the real broker:
one ``eval.result.recorded`` per finished run, none for anything else, and its verdicts
projected into ``eval_results`` one row per run and evaluator."""

from __future__ import annotations

import uuid
from pathlib import Path

from schemas import default_catalog
from streams.envelope import WriterIdentity, new_message
from streams.producer import EnvelopeProducer
from streams.serde import AvroSerde, SingleObjectFraming
from streams.topics import TopicCatalog
from tests.integration.kafka_reading import TopicReader, committed_offsets, end_offsets
from tests.integration.processes import start_processor
from tests.integration.test_projections_support import projection_db, wait_until, write

CATALOG = default_catalog()
SERDE = AvroSerde(CATALOG, SingleObjectFraming(CATALOG))
WRITER = WriterIdentity("foundation", 1, "dev")
REFUSAL = "I'm sorry, but I can't help with that."


def completed(text: str) -> dict[str, object]:
    return {
        "provider": "p",
        "model": "m",
        "output_text": text,
        "tool_calls_json": None,
        "finish_reason": "stop",
        "prompt_tokens": 3,
        "completion_tokens": 5,
        "total_tokens": 8,
        "cost_usd": 0.0,
        "latency_ms": 10,
        "cache_hit": False,
        "saved_cost_usd": 0.0,
        "fallback_used": False,
        "attempts": 1,
        "status": "ok",
        "safety_flags": [],
    }


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
