"""docs/EVENTS.md is generated from the contract and must match it."""

from schemas import default_catalog
from streams.docgen import EVENTS_DOC, render_events_doc
from streams.topics import load_topic_catalog


def test_events_doc_is_current() -> None:
    expected = render_events_doc(default_catalog(), load_topic_catalog())
    assert EVENTS_DOC.read_text(encoding="utf-8") == expected, (
        "docs/EVENTS.md is stale: run `python -m streams.docgen`"
    )


def test_every_message_type_is_documented_with_its_full_schema() -> None:
    page = EVENTS_DOC.read_text(encoding="utf-8")
    for message_type in default_catalog().message_types():
        schema = default_catalog().latest(message_type)
        assert f"### `{message_type}`" in page
        assert schema.fingerprint.hex() in page
