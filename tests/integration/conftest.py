from collections.abc import Iterator

import pytest

from tests.integration.kafka_reading import TopicReader


@pytest.fixture(autouse=True)
def close_topic_readers() -> Iterator[None]:
    yield
    for reader in list(TopicReader.open_readers):
        reader.close()
