from datetime import UTC, datetime

from schemas import default_catalog
from streams.envelope import WriterIdentity, derived_id, new_message, stamp_outputs
from tests.factories import sample_envelope

WRITER = WriterIdentity("foundation", 1, "dev")
LATER = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)


def test_derived_ids_are_deterministic_and_distinct_by_position() -> None:
    assert derived_id("a", 0) == derived_id("a", 0)
    assert len({derived_id("a", 0), derived_id("a", 1), derived_id("b", 0)}) == 3


def test_stamped_outputs_carry_cause_writer_time_and_inherited_run() -> None:
    source = sample_envelope(default_catalog().latest("llm.chat.requested"))
    outputs = [source.derive("llm.request.started", {}), source.derive("llm.request.failed", {})]
    stamped = stamp_outputs(source, outputs, WRITER, LATER)
    assert [o.message_id for o in stamped] == [derived_id(source.message_id, i) for i in (0, 1)]
    assert stamp_outputs(source, outputs, WRITER, LATER) == stamped
    for output in stamped:
        assert output.causation_id == source.message_id
        assert (output.correlation_id, output.tenant_id) == (
            source.correlation_id,
            source.tenant_id,
        )
        assert (output.service_name, output.layer, output.timestamp) == ("foundation", 1, LATER)
        assert output.trace_id == source.trace_id


def test_new_message_takes_time_and_id_from_the_edge() -> None:
    message = new_message(
        "llm.chat.requested",
        {},
        correlation_id="run-9",
        tenant_id="t",
        writer=WRITER,
        clock=lambda: LATER,
        ids=lambda: "id-1",
    )
    assert (message.message_id, message.timestamp, message.causation_id) == ("id-1", LATER, None)
