"""README.md's `workbench ...` command lines must name commands and options the CLI has.

A new engineer copies these lines; a renamed command or option left in the README is a command
that fails on their first day. Each line (inline code spans, indented and fenced blocks) is
resolved against the click tree by invoking `--help` on every command path it names, and each
`--option` on it must be in that command's help text.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from workbench.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"
CUT = re.compile(r"\s(?:#|\|\||&&|;)\s|\s#$")   # a comment or another shell command ends a line
ALTERNATIVE = re.compile(r"\s[/|]\s")            # "a / b", "a | b": alternative forms on one line
START = re.compile(r"(?:^|(?<=[\s/`(]))workbench(?=\s)")
TOKEN = re.compile(r'"[^"]*"|\'[^\']*\'|\S+')
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, code) for every inline code span, indented line and fenced-block line."""
    out: list[tuple[int, str]] = []
    fenced = False
    for no, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            out.append((no, line.strip()))
        else:
            out.extend((no, span) for span in re.findall(r"`([^`]+)`", line))
    return out


def command_uses(text: str) -> list[tuple[int, str, tuple[str, ...], tuple[str, ...]]]:
    """(line, segment, command path, long options) for every `workbench` command on a code line."""
    uses = []
    for no, code in code_lines(text):
        for piece in re.split(r"\s(?:\|\||&&|;)\s", code):
            m = START.search(piece)
            if not m:
                continue
            piece = piece[m.end():]
            cut = CUT.search(piece)
            piece = piece[:cut.start()] if cut else piece
            parent: tuple[str, ...] = ()
            current: tuple[str, ...] | None = None
            for seg in ALTERNATIVE.split(piece):
                words = [w for w in TOKEN.findall(seg) if w not in ("workbench", ".venv/bin/workbench")]
                if not words:
                    continue
                if words[0].startswith("-") and current is not None:
                    path = current                        # "… | --endpoint E": more options of it
                else:
                    base = parent if words[0].split("|")[0] in subcommands(parent) else ()
                    path, rest = resolve(base, words)
                    if path == base and not path:
                        continue                           # prose after a slash, not a command
                    words = rest
                    parent, current = path[:-1], path
                opts = tuple(OPTION.findall(" ".join(words)))
                for name in words[0].split("|") if words and "|" in words[0] else ():
                    uses.append((no, seg.strip(), path + (name,), ()))
                uses.append((no, seg.strip(), path, opts))
    return uses


@lru_cache(maxsize=None)
def command(path: tuple[str, ...]) -> click.Command | None:
    """The click command at `path`, or None when there is none."""
    cmd: click.Command | None = cli
    for name in path:
        if not isinstance(cmd, click.Group):
            return None
        cmd = cmd.get_command(click.Context(cmd), name)
        if cmd is None:
            return None
    return cmd


def subcommands(path: tuple[str, ...]) -> list[str]:
    """Names of the sub-commands at `path` (empty for a leaf command)."""
    cmd = command(path)
    return cmd.list_commands(click.Context(cmd)) if isinstance(cmd, click.Group) else []


def resolve(base: tuple[str, ...], words: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """Walk `words` down the group tree from `base`; a word no group has is kept as a defect."""
    path = base
    i = 0
    while i < len(words) and isinstance(command(path), click.Group):
        word = words[i]
        if word.startswith("-") or "|" in word:
            break
        path += (word,)
        i += 1
        if command(path) is None:
            break
    return path, words[i:]


@lru_cache(maxsize=None)
def help_text(path: tuple[str, ...]) -> tuple[int, str]:
    """Exit code and stdout of `workbench <path> --help`."""
    res = CliRunner().invoke(cli, [*path, "--help"])
    return res.exit_code, res.stdout


USES = command_uses(README.read_text(encoding="utf-8"))


def test_readme_names_commands() -> None:
    """The parser finds the README's command lines (so the checks below check something)."""
    paths = {u[2] for u in USES}
    assert len(USES) > 80
    assert {("ingest",), ("users", "sessions"), ("eval", "drift"), ("webhooks", "replay")} <= paths


@pytest.mark.parametrize("line,seg,path,opts", USES, ids=[f"L{u[0]}" for u in USES])
def test_readme_command_exists(line: int, seg: str, path: tuple[str, ...], opts: tuple[str, ...]) -> None:
    """Every command path the README names answers `--help`, and has every option named with it."""
    code, out = help_text(path)
    assert code == 0 and out.startswith("Usage:"), \
        f"README.md:{line}: `workbench {' '.join(path)}` is no command ({seg!r})"
    known = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out))
    missing = [o for o in opts if o not in known]
    assert not missing, f"README.md:{line}: `workbench {' '.join(path)}` has no {', '.join(missing)} ({seg!r})"


def test_demo_skip_names_are_steps() -> None:
    """The step names README gives for `demo --skip` are the demo's steps, all of them."""
    from workbench.demo import collect_steps

    text = README.read_text(encoding="utf-8")
    m = re.search(r"--skip NAME` \(([^)]*)\)", text)
    assert m, "README.md no longer lists the names `demo --skip NAME` takes"
    named = re.findall(r"`([a-z-]+)`", m.group(1))
    assert named == ["ingest", *(s.name for s in collect_steps())]


@pytest.mark.parametrize("path", sorted({u[2] for u in USES if not subcommands(u[2])}), ids=" ".join)
def test_readme_commands_have_examples(path: tuple[str, ...]) -> None:
    """README promises every command's `--help` carries an example; a reader copies it."""
    code, out = help_text(path)
    assert code == 0 and "Example" in out, f"`workbench {' '.join(path)} --help` shows no example"


def test_readme_layout_names_every_config() -> None:
    """The layout table's configs row names every shipped configs/*.yaml (a lead looks there)."""
    text = README.read_text(encoding="utf-8")
    row = next((line for line in text.splitlines() if line.startswith("| | `configs/` |")), None)
    assert row, "README.md's layout table has no `configs/` row"
    shipped = sorted(p.name for p in (README.parent / "configs").glob("*.yaml"))
    missing = [name for name in shipped if f"`{name}`" not in row]
    assert not missing, f"README.md's configs row leaves out {', '.join(missing)}"


def _every_path(path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    return [p for name in subcommands(path) for p in ((*path, name), *_every_path((*path, name)))]


def test_every_command_and_group_shows_an_example_that_parses() -> None:
    """`workbench X --help` shows an Example for every command and command group (groups such as
    `audit`, `users`, `cases` had none), and each example line names a real command and options."""
    missing, wrong = [], []
    for path in _every_path():
        code, text = help_text(path)
        if code != 0 or "Example" not in text:
            missing.append(" ".join(path))
            continue
        for line in text.split("Example", 1)[1].splitlines()[1:]:
            if not line.strip():
                break  # the example block ends at its first blank line
            for seg in line.split("&&"):  # "workbench a && workbench b": each command on its own
                words = seg.split()
                if not words or words[0] != "workbench":
                    continue
                found, rest = resolve((), [w for w in words[1:] if not w.startswith(("$", "<"))])
                if command(found) is None:
                    wrong.append(f"{' '.join(path)}: {seg.strip()}")
                    continue
                opts = [w.split("=")[0] for w in rest if w.startswith("--")]
                _, own = help_text(found)
                wrong += [f"{' '.join(path)}: {seg.strip()} ({o})" for o in opts if o not in own]
    assert not missing, f"no Example in the help of: {', '.join(missing)}"
    assert not wrong, "example lines naming no such command or option:\n" + "\n".join(wrong)
