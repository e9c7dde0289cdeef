"""Locating and loading the YAML configs in `configs/`, with errors that name file and field.

Every YAML file is validated by a pydantic model on load; a broken file raises `ConfigError`
whose message names the file and the dotted path of the offending field, so a T&S lead editing
policy does not need to read a traceback.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file is missing, is not YAML, or does not validate."""


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
        return yaml.safe_load(text)
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
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None


def config_file(path: str | os.PathLike[str] | None, name: str) -> Path:
    """The YAML file `name` given a file, a configs folder, or nothing (the bundled folder)."""
    p = Path(path) if path else DEFAULT_CONFIG_DIR
    return p / name if p.is_dir() else p


def raise_problems(path: Path, problems: list[tuple[str, str]]) -> None:
    """ConfigError naming the file and each (field, problem) pair, when there are any."""
    if problems:
        raise ConfigError("\n".join(f"{path}: field '{f}': {msg}" for f, msg in problems))
