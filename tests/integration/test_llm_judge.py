"""The LLM judge end to end on the real broker: the foundation processor calls an
OpenAI-compatible upstream on loopback, the observability processor asks it (through layer 1)
to grade each finished run, and the grade comes back as the run's ``llm_judge`` verdict."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from processors.observability.judge import JUDGE_PREFIX
from streams.producer import EnvelopeProducer
from streams.topics import TopicCatalog
from tests.factories import chat_command
from tests.fakes.llm_servers import OpenAIFake
from tests.integration.foundation_setup import ENV, PRIMARY_KEY, write_config
from tests.integration.kafka_reading import TopicReader
from tests.integration.processes import start_processor
from tests.integration.test_projections_support import serde

# The fake answers "<voice>: <last message>": a judge reading it finds a score of 8.
VOICE = "SCORE: 8\nREASON"
RUBRIC = "Is it polite?"


@pytest.fixture
def upstream() -> Iterator[OpenAIFake]:
    with OpenAIFake(api_key=PRIMARY_KEY, voice=VOICE) as fake:
        yield fake  # type: ignore[misc]


def test_each_finished_run_gets_the_judges_verdict_through_layer_1(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path, upstream: OpenAIFake
) -> None:
    configs = write_config(tmp_path / "configs", upstream.base_url, upstream.base_url)
    observability = tmp_path / "observability.yaml"
    observability.write_text(
        "online:\n  evaluators: [empty]\n"
        f"  judge: {{enabled: true, sample_rate: 1.0, rubric: '{RUBRIC}', max_tokens: 40}}\n"
    )
    runs = [chat_command(f"req_{uuid.uuid4().hex}", tenant="acme") for _ in range(5)]
    processes = [
        start_processor(
            "processors.foundation.processor:PROCESSOR",
            bootstrap,
            topics,
            f"foundation-{uuid.uuid4().hex}",
            tmp_path / "foundation.log",
            env={**ENV, "FOUNDATION_CONFIG_DIR": str(configs)},
        ),
        start_processor(
            "processors.observability.processor:PROCESSOR",
            bootstrap,
            topics,
            f"observability-{uuid.uuid4().hex}",
            tmp_path / "observability.log",
            env={"OBSERVABILITY_CONFIG": str(observability)},
        ),
    ]
    verdicts = TopicReader(bootstrap, topics.topic_for("eval.result.recorded"), serde())
    try:
        producer = EnvelopeProducer(bootstrap, serde(), topics)
        producer.send(runs)
        producer.flush()
        verdicts.poll_until(
            lambda r: (
                sum(e.payload["results"][0]["evaluator"] == "llm_judge" for e in r.envelopes)
                >= len(runs)
            ),
            90,
            "a judge's verdict per run",
        )
    finally:
        for process in processes:
            process.terminate()
        for process, log in zip(processes, ("foundation", "observability"), strict=True):
            assert process.wait(timeout=60) == 0, (tmp_path / f"{log}.log").read_text()[-3000:]

    by_evaluator: dict[str, dict[str, dict[str, object]]] = {}
    for event in verdicts.envelopes:
        for verdict in event.payload["results"]:
            by_evaluator.setdefault(str(verdict["evaluator"]), {})[event.correlation_id] = verdict
    asked = {run.correlation_id for run in runs}
    assert set(by_evaluator) == {"empty", "llm_judge"}  # a judgement is not itself judged
    assert set(by_evaluator["llm_judge"]) == set(by_evaluator["empty"]) == asked
    assert all(v["score"] == 0.8 and v["passed"] for v in by_evaluator["llm_judge"].values())
    graded = [r.body for r in upstream.received if RUBRIC in str(r.body)]
    assert len(graded) == len(runs)
    assert all(body["max_tokens"] == 40 for body in graded)
    assert not any(e.correlation_id.startswith(JUDGE_PREFIX) for e in verdicts.envelopes)
