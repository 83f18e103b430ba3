"""The one config loader: YAML validated into typed models, errors naming file, line and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["ConfigError", "ConfigProblem", "load_config", "problem_at"]

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a config file; ``line`` is 1-based."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class ConfigError(ValueError):
    """A config file that cannot be loaded; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


def load_config(path: Path, model: type[Model]) -> Model:
    """Parse ``path`` and validate it as ``model``; raise ``ConfigError`` pointing at the spot."""
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise ConfigError([ConfigProblem(str(path), line, "<syntax>", str(exc.problem))]) from exc
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as exc:
        problems = [
            ConfigProblem(
                str(path),
                _line_of(root, error["loc"]),
                ".".join(str(part) for part in error["loc"]) or "<root>",
                error["msg"],
            )
            for error in exc.errors()
        ]
        raise ConfigError(problems) from exc


def problem_at(path: Path, loc: tuple[str | int, ...], message: str) -> ConfigProblem:
    """A problem found after validation (a cross-file reference, say), located in ``path``."""
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    field = ".".join(str(part) for part in loc)
    return ConfigProblem(str(path), _line_of(root, loc), field, message)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """Line of the deepest YAML node on the error's path (the parent, for a missing key)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return value  # type: ignore[no-any-return]  # PyYAML's nodes are untyped
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None
