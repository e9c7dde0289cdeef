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
# No workbench config comes near these (the largest is ~13 kB, ~400 values, 6 levels deep): past
# them a file is a mistake or an attack (a "billion laughs" of aliases, a 1 GB paste).
MAX_CONFIG_BYTES = 1 << 20
MAX_VALUES = 50_000
MAX_DEPTH = 32


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

    def compose_node(self, parent: Any, index: Any) -> Any:
        # The composer recurses once per level: a file of 5,000 `[` would end in a RecursionError.
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def config_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The configs folder: an explicit path, else the bundled one.

    No environment variable is read here: the application reads its options (`--config-dir`,
    or `$WORKBENCH_CONFIG_DIR` through the command line) once and passes the folder down.
    """
    return Path(override) if override else DEFAULT_CONFIG_DIR


def read_yaml(path: Path) -> Any:
    """The YAML document in `path`, or ConfigError in one line naming the file (and line): not
    found, too large, not UTF-8, not YAML, a repeated key, aliases that expand past `MAX_VALUES`
    values or `MAX_DEPTH` levels, or an alias inside the structure it names (a cycle)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes; not a workbench config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    loader = None
    try:
        loader = _UniqueKeyLoader(text)  # its reader refuses a control character at once
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, 0, {}, set())
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, text, exc)) from None
    except RecursionError:  # MAX_DEPTH keeps far below it; a last line of defence
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_problem(path: Path, text: str, exc: yaml.YAMLError) -> str:
    """One line for a YAML error: PyYAML's own text spans lines and names "<unicode string>"."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return (f"{path}: line {line}: invalid YAML: character U+{exc.character:04X} is not allowed "
                f"(a control character: delete it)")
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1} column {mark.column + 1}:" if mark else ""
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    return f"{path}:{where} invalid YAML: {problem}"


def _check_expansion(node: yaml.Node, depth: int, sizes: dict[int, tuple[int, int]], open_: set[int]) -> tuple[int, int]:
    """(values, levels) of `node` with every alias expanded, refusing a cycle or more than
    `MAX_VALUES` / `MAX_DEPTH`. An alias is the anchored node itself, so a node is walked once."""
    key = id(node)
    if key in sizes:
        size, height = sizes[key]
    elif key in open_:
        raise yaml.composer.ComposerError(None, None, "an alias refers to a structure that contains it (a cycle)",
                                          node.start_mark)
    elif isinstance(node, yaml.ScalarNode):
        size, height = 1, 0
    else:
        open_.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        size, height = 1, 0
        for child in children:
            s, h = _check_expansion(child, depth + 1, sizes, open_)
            size, height = size + s, max(height, h + 1)
            if size > MAX_VALUES:
                raise yaml.composer.ComposerError(None, None, f"its aliases expand to more than {MAX_VALUES:,} "
                                                  f"values (an alias bomb?)", child.start_mark)
        open_.discard(key)
        sizes[key] = (size, height)
    if depth + height > MAX_DEPTH:
        raise yaml.composer.ComposerError(None, None, f"its aliases nest more than {MAX_DEPTH} levels deep",
                                          node.start_mark)
    return size, height


def format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{path}: field '{loc}': {err['msg']}")
    return "\n".join(lines)


def load_model(path: Path, model: type[M]) -> M:
    """Read `path` and validate it as `model`, raising `ConfigError` on any problem."""
    data = read_yaml(path)
    if data is None:
        raise ConfigError(f"{path}: the file is empty (expected the settings as `key: value` lines)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    raise_problems(path, _unreadable_text(data))
    try:
        loaded = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
    raise_problems(path, _lax_coercions(model, data) + _non_finite(data))
    return loaded


def _unreadable_text(data: Any, where: str = "") -> list[tuple[str, str]]:
    """Every key or string value holding a control character or a lone surrogate (`core.text`'s
    rule for text people write), and every boolean or null key. A double-quoted "\\bkill\\b"
    pattern holds backspaces, not word boundaries (it never matched); an escape sequence in a
    label rewrites the terminal that prints it; `yes:` as a policy name is the boolean true."""
    from .text import text_error

    field = where or "(top level)"
    if isinstance(data, str):
        problem = text_error(data, "the text")
        return [(field, problem)] if problem else []
    out: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            problem = text_error(k, f"the key {k!r}") if isinstance(k, str) else None
            if isinstance(k, bool) or k is None:  # `yes:`, `off:`, `~:` name no label, tier or queue
                problem = (f"the key {str(k).lower()} is not a name: YAML reads yes/no/on/off/true/false as "
                           f"a boolean and null or ~ as nothing; put the name in quotes")
            if problem:
                out.append((field, problem))
            else:
                out += _unreadable_text(v, f"{where}.{k}" if where else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _unreadable_text(v, f"{where}[{i}]")
    return out


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


def _lax_coercions(model: type[BaseModel], data: Any) -> list[tuple[str, str]]:
    """Numbers and booleans that lax validation would read out of another type: `true` / `false`
    as 1 and 0, the text "0.5" as a number (a quoted value is text: the file says something other
    than the lead meant, or was pasted from somewhere), and 0, 1, "yes" or "off" as a boolean.

    Strict validation is run for its errors only: those of a number or boolean field (a YAML list
    for a tuple and the like stay accepted, and YAML ints still fill float fields).
    """
    try:
        model.model_validate(data, strict=True)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            value, where = err.get("input"), ".".join(str(p) for p in err["loc"])
            if err["type"] in _NUMBER_ERRORS and isinstance(value, bool):
                out.append((where, f"expected a number, got {str(value).lower()}"))
            elif err["type"] in _NUMBER_ERRORS and isinstance(value, str):
                out.append((where, f"expected a number, got the text {value!r} (write numbers without quotes)"))
            elif err["type"] == "bool_type" and isinstance(value, (str, int, float)):
                out.append((where, f"expected true or false, got {value!r}"))
        return out
    return []


def version_text(value: object) -> object:
    """A config's `version` as text (a pydantic "before" validator): `version: 3` is "3", but a
    YAML float loses digits (1.10 reads as 1.1, 2026.10 as 2026.1) and `yes` is true, so those
    must be quoted; one rule for every versioned config."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a version in quotes, got {str(value).lower()}")
    if isinstance(value, float):
        raise ValueError(f"write the version in quotes: YAML reads {value} as a number (1.10 would be 1.1)")
    return str(value) if isinstance(value, int) else value


def config_file(path: str | os.PathLike[str] | None, name: str) -> Path:
    """The YAML file `name` given a file, a configs folder, or nothing (the bundled folder)."""
    p = Path(path) if path else DEFAULT_CONFIG_DIR
    return p / name if p.is_dir() else p


def raise_problems(path: Path, problems: list[tuple[str, str]]) -> None:
    """ConfigError naming the file and each (field, problem) pair, when there are any."""
    if problems:
        raise ConfigError("\n".join(f"{path}: field '{f}': {msg}" for f, msg in problems))
