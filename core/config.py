"""Locating and loading the YAML configs in `configs/`, with errors that name file and field.

Every YAML file is validated by a pydantic model on load; a broken file raises `ConfigError`
whose message names the file and the dotted path of the offending field, so a T&S lead editing
policy does not need to read a traceback.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file is missing, is not YAML, or does not validate."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping: PyYAML keeps the last one silently,
    so a second `sla_minutes` or `escalation:` would override the first without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges are overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable: the base constructor reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {first.line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def config_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The configs folder: an explicit path, else the bundled one.

    No environment variable is read here: the application reads its options (`--config-dir`,
    or `$WORKBENCH_CONFIG_DIR` through the command line) once and passes the folder down.
    """
    return Path(override) if override else DEFAULT_CONFIG_DIR


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None


def format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{path}: field '{loc}': {err['msg']}")
    return "\n".join(lines)


def load_model(path: Path, model: type[M]) -> M:
    """Read `path` and validate it as `model`, raising `ConfigError` on any problem."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        loaded = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
    raise_problems(path, _booleans_as_numbers(model, data) + _non_finite(data))
    return loaded


def _non_finite(data: Any, where: str = "") -> list[tuple[str, str]]:
    """Every YAML `.inf` / `.nan` in `data`, by dotted field: numeric bounds such as `gt=0` let
    infinity through, and no setting of a workbench config means anything with it (an infinite
    weight or threshold turns sums into NaN far from the file that caused it)."""
    if isinstance(data, float) and not math.isfinite(data):
        return [(where or "(top level)", f"must be a finite number, got {data}")]
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _non_finite(v, f"{where}[{i}]")]
    return []


_NUMBER_ERRORS = frozenset({"int_type", "float_type", "decimal_type"})


def _booleans_as_numbers(model: type[BaseModel], data: Any) -> list[tuple[str, str]]:
    """Numeric fields given `true` / `false`, which lax validation would read as 1 and 0.

    Strict validation is run for its errors only: the numeric-type ones whose input is a bool
    (a YAML list for a tuple and the like stay accepted, and YAML ints still fill float fields).
    """
    try:
        model.model_validate(data, strict=True)
    except ValidationError as exc:
        return [(".".join(str(p) for p in err["loc"]), f"expected a number, got {str(err['input']).lower()}")
                for err in exc.errors()
                if isinstance(err.get("input"), bool) and err["type"] in _NUMBER_ERRORS]
    return []


def config_file(path: str | os.PathLike[str] | None, name: str) -> Path:
    """The YAML file `name` given a file, a configs folder, or nothing (the bundled folder)."""
    p = Path(path) if path else DEFAULT_CONFIG_DIR
    return p / name if p.is_dir() else p


def raise_problems(path: Path, problems: list[tuple[str, str]]) -> None:
    """ConfigError naming the file and each (field, problem) pair, when there are any."""
    if problems:
        raise ConfigError("\n".join(f"{path}: field '{f}': {msg}" for f, msg in problems))
