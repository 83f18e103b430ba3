"""``python -m processors.observability.alerting``: the alerter, until SIGTERM or Ctrl-C.

Reads ``configs/observability.yaml`` (``OBSERVABILITY_CONFIG``), ClickHouse at
``CLICKHOUSE_URL`` (else the projector's embedded endpoint) and Kafka at
``KAFKA_BOOTSTRAP_SERVERS``; serves Prometheus metrics on ``METRICS_PORT`` when set."""

from __future__ import annotations

import asyncio
import signal

from prometheus_client import start_http_server

from processors.observability.alerting.alerter import Alerter
from processors.observability.config import load_observability_config
from streams.envelope import WriterIdentity, system_clock
from streams.log_format import configure_json_logging
from streams.producer import EnvelopeProducer
from streams.projections_client import ProjectionsClient, projections_database, projections_url
from streams.settings import Settings
from streams.wiring import bootstrap_servers, serde_for, topics_for


async def _main() -> None:
    settings = Settings.from_env()
    configure_json_logging(settings.log_level)
    config = load_observability_config().alerting
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port)
    producer = EnvelopeProducer(
        bootstrap_servers(settings), serde_for(settings), topics_for(settings)
    )
    projections = ProjectionsClient(projections_url(), projections_database())
    writer = WriterIdentity("alerter", 4, settings.env)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await Alerter(config, projections, producer, writer).run(system_clock, stopping)
    finally:
        await projections.aclose()
        producer.flush()


if __name__ == "__main__":
    asyncio.run(_main())
