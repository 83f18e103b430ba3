from pathlib import Path

import pytest
from pydantic import BaseModel

from streams.config import ConfigError, load_config
from streams.launcher import PlatformConfig
from streams.topics import CONFIG_ROOT, TopicCatalog


class Limits(BaseModel):
    rpm: int
    burst: int = 0


class Tenants(BaseModel):
    tenants: dict[str, Limits]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    return path


def test_valid_file_loads_into_the_model(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "tenants:\n  acme:\n    rpm: 60\n"), Tenants)
    assert config.tenants["acme"].rpm == 60


def test_wrong_type_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "tenants:\n  acme:\n    rpm: 60\n  globex:\n    rpm: lots\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, Tenants)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), 5, "tenants.globex.rpm")
    assert f"{path}:5: tenants.globex.rpm:" in str(caught.value)


def test_missing_field_points_at_its_parent(tmp_path: Path) -> None:
    path = write(tmp_path, "tenants:\n  acme:\n    burst: 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, Tenants)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (3, "tenants.acme.rpm")


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tenants:\n  acme: [1, 2\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, Tenants)
    assert caught.value.problems[0].field == "<syntax>"
    assert caught.value.problems[0].line >= 2


def test_topic_catalog_rejects_unknown_message_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "topics:\n  - name: commands.llm\n    carries:\n      - llm.chat.requested\n"
        "  - name: events.llm\n    carries: [llm.request.exploded]\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, TopicCatalog)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (6, "topics.1.carries")
    assert "llm.request.exploded" in problem.message


def test_repo_topic_catalog_maps_every_schema_to_one_topic() -> None:
    from schemas import default_catalog
    from streams.topics import load_topic_catalog

    catalog = load_topic_catalog()
    for message_type in default_catalog().message_types():
        topic = catalog.topic_for(message_type)
        kind = default_catalog().kind_of(message_type)
        assert topic.startswith("commands." if kind == "command" else "events.")


def test_each_child_of_up_that_serves_metrics_gets_its_own_port() -> None:
    platform = load_config(CONFIG_ROOT / "platform.yaml", PlatformConfig)
    assert platform.metrics_ports() == {
        "processors.foundation.processor:PROCESSOR": 9101,
        "processors.observability.processor:PROCESSOR": 9102,
        "processors.observability.alerting.webhook_processor:PROCESSOR": 9103,
        "processors.intelligence.processor:PROCESSOR": 9104,
        "projector": 9105,
        "alerter": 9106,  # the API serves /metrics on its own port
    }
    assert set(platform.metrics_ports(20000).values()) == set(range(20000, 20006))
    assert set(platform.metrics_ports(0).values()) == {0}  # each an ephemeral port
