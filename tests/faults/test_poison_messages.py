"""Poison and oversize messages on every command topic, mid-load, from another client: bytes
that are not Avro, a truncated Avro body, valid framing with a fingerprint no schema has. Each
lands once in the topic's dead-letter topic with its error, and every other command is
processed. The topic's ``max.message.bytes`` is lowered: a command just under it is accepted
and answered, one over it is refused to its producer (an error, never a silent loss)."""

import secrets
from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaError, Message
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # not re-exported in stubs
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from streams.dead_letter import read_dead_letters
from streams.envelope import Envelope
from streams.producer import MESSAGE_TYPE_HEADER, EnvelopeProducer
from streams.serde import SingleObjectFraming
from streams.topics import load_topic_catalog
from tests.factories import chat_command
from tests.faults.case import Rig, Strike, run_case
from tests.faults.load import SERDE

LOAD_TYPE = "llm.chat.requested"  # what the load sends and the foundation processor consumes
# Every command topic a running processor consumes (commands.workflow joins when layer 2 does).
COMMAND_TOPICS = [
    t.name
    for t in load_topic_catalog().topics
    if t.name.startswith("commands.") and LOAD_TYPE in t.carries
]
MAX_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Poison:
    value: bytes
    error: str  # what the dead letter's error must say


def poisons(command: Envelope) -> list[Poison]:
    encoded = SERDE.encode(command)
    marker = SingleObjectFraming.MARKER
    return [
        Poison(b"not avro at all " + bytes(range(64)), "not Avro single-object encoded"),
        Poison(encoded[: len(encoded) // 2], "undecodable body"),
        Poison(marker + bytes(8) + encoded[10:], "no schema with fingerprint 0000000000000000"),
    ]


def sized_command(name: str, content_bytes: int) -> Envelope:
    """A valid command whose prompt is random hex (lz4 cannot shrink it below the limit)."""
    return chat_command(name, content=secrets.token_hex(content_bytes // 2))


@pytest.mark.parametrize("command_topic", COMMAND_TOPICS)
def test_poison_and_oversize_messages_mid_load(command_topic: str, rig: Rig) -> None:
    spec = next(t for t in rig.topics.topics if t.name.endswith(command_topic))
    admin = AdminClient({"bootstrap.servers": rig.bootstrap})
    limit = ConfigEntry(
        "max.message.bytes",
        str(MAX_MESSAGE_BYTES),
        incremental_operation=AlterConfigOpType.SET,
    )
    resource = ConfigResource("TOPIC", spec.name, incremental_configs=[limit])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    injected = poisons(chat_command("poison"))
    refusals: list[KafkaError] = []

    def inject(strike: Strike) -> None:
        strike.at_fraction(0.3)
        client = EnvelopeProducer(rig.bootstrap, SERDE, rig.topics).kafka  # another client

        def refused(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                refusals.append(error)

        headers: list[tuple[str, str | bytes | None]] = [(MESSAGE_TYPE_HEADER, LOAD_TYPE.encode())]
        for poison in injected:
            client.produce(spec.name, poison.value, headers=headers, on_delivery=refused)
        assert client.flush(60) == 0  # else they share the oversize one's batch, and its fate
        oversize = SERDE.encode(sized_command("oversize", 2 * MAX_MESSAGE_BYTES))
        client.produce(spec.name, oversize, headers=headers, on_delivery=refused)
        assert client.flush(60) == 0
        strike.load.send(sized_command("just-under", MAX_MESSAGE_BYTES * 5 // 8))

    run_case(f"poison + oversize on {command_topic}", rig, inject)
    assert [e.code() for e in refusals] == [KafkaError.MSG_SIZE_TOO_LARGE]
    letters = list(read_dead_letters(rig.bootstrap, rig.topics.dead_letter_of(spec.name)))
    assert sorted((letter.value, letter.source_topic) for letter in letters) == sorted(
        (p.value, spec.name) for p in injected
    )
    for letter in letters:
        expected = next(p.error for p in injected if p.value == letter.value)
        assert expected in letter.error, letter
