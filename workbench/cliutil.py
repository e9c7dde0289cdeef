"""What every command module shares: JSON-or-human output and the --json option.

Kept apart from `cli.py` so command modules of other areas (models, clustering, queues) import
it without importing the command group itself.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import click


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print `data` as one JSON document, or hand it to `human` for a readable rendering."""
    if as_json:
        click.echo(json.dumps(data, default=str, ensure_ascii=False))
    else:
        human(data)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(f)
