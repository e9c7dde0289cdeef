"""What every command module shares: JSON-or-human output, the --json option, the application
context decorator, and one translation of user-caused errors into one-line messages."""
from __future__ import annotations

import contextlib
import json
from typing import Any, Callable, Iterator

import click

from ..context import AppContext

pass_app = click.make_pass_decorator(AppContext)


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print `data` as one JSON document, or hand it to `human` for a readable rendering."""
    if as_json:
        click.echo(json.dumps(data, default=str, ensure_ascii=False))
    else:
        human(data)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(f)


def as_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--as", "analyst", required=True, metavar="NAME",
                        help="Who does it (recorded on the case, the decision and the audit log).")(f)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Errors a user can cause (bad input, a refused action, a broken config) become one line."""
    from clustering.service import CampaignError
    from core.config import ConfigError
    from core.hooks import PermissionDenied
    from labeling.errors import LabelingError
    from models.base import ModelError
    from core.ingest import IngestError
    from core.quarantine import QuarantineError
    from labeling.export import ExportError

    try:
        yield
    except (LabelingError, ConfigError, PermissionDenied, ModelError, CampaignError, IngestError, ExportError,
            QuarantineError) as exc:
        raise click.ClickException(str(exc)) from None
