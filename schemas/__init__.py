"""The Avro contract: every message on Kafka is typed by an ``.avsc`` file in this folder.

Layout: ``schemas/<kind>s/<message_type>/v<N>.avsc``. A released version file never changes;
an evolution adds ``v<N+1>.avsc`` that readers of ``v<N>`` can still read (and vice versa).
"""

from schemas.catalog import (
    MessageKind,
    MessageSchema,
    SchemaCatalog,
    UnknownSchemaError,
    default_catalog,
)

__all__ = [
    "MessageKind",
    "MessageSchema",
    "SchemaCatalog",
    "UnknownSchemaError",
    "default_catalog",
]
