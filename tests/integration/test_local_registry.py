"""A real local schema registry stores an Avro schema under an id, serves it back, and then
goes away completely when stopped."""

from __future__ import annotations

import json
import os
import socket

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams.local_registry import LocalSchemaRegistry

SUBJECT = "local-registry-smoke-value"
AVRO_SCHEMA = {
    "type": "record",
    "name": "Smoke",
    "namespace": "platform.test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "long", "default": 0},
    ],
}


@pytest.mark.slow
def test_registers_and_serves_avro_schema_then_stops() -> None:
    with LocalSchemaRegistry() as registry:
        schema_id = SchemaRegistryClient({"url": registry.url}).register_schema(
            SUBJECT, Schema(json.dumps(AVRO_SCHEMA), "AVRO")
        )
        # A fresh client: the registering one caches id -> schema and would not ask the server.
        fetched = SchemaRegistryClient({"url": registry.url}).get_schema(schema_id)
        assert fetched.schema_type == "AVRO"
        assert fetched.schema_str is not None
        assert json.loads(fetched.schema_str) == AVRO_SCHEMA

        pid = registry.pid
        assert pid is not None
        registry.stop()
        assert not registry.is_running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", registry.port), timeout=2).close()
