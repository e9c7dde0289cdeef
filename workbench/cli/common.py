"""What every command module shares: JSON-or-human output, the --json option, the application
context decorator, and one translation of user-caused errors into one-line messages."""
from __future__ import annotations

import contextlib
import functools
import json
import os
from typing import Any, Callable, Iterator, Optional

import click

from ..context import AppContext

pass_app = click.make_pass_decorator(AppContext)


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print `data` as one JSON document, or hand it to `human` for a readable rendering."""
    if as_json:
        click.echo(json.dumps(data, default=str, ensure_ascii=False))
    else:
        human(data)


class PngPath(click.Path):
    """Where a command writes a PNG: a file path whose folder exists (a usage error, one line,
    before any work; matplotlib would otherwise fail after it, with a traceback)."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, writable=True)

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        value = super().convert(value, param, ctx)
        folder = os.path.dirname(os.path.abspath(os.fsdecode(value)))
        if not os.path.isdir(folder):
            self.fail(f"folder {folder!r} does not exist", param, ctx)
        return value


class IdType(click.IntRange):
    """A row id (case, decision, campaign, delivery, ...): a positive integer a database column
    can hold. A longer pasted number is a usage error naming the parameter (one line), not an
    OverflowError traceback from the database driver."""

    name = "id"

    def __init__(self) -> None:
        super().__init__(1, 2**63 - 1)


ID = IdType()  # the type of every id argument and option


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(f)


def principal_option(param: str = "analyst",
                     help: str = "Who does it, on a store without accounts (default: the OS user); with "
                                 "accounts, leave it out or give the token's own user.") -> Callable[..., Any]:
    """`--as NAME`, handed to the command as the principal (`AppContext.principal`), not the string:
    the services check its role and record its name."""
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            app = click.get_current_context().find_object(AppContext)
            with user_errors():
                kwargs[param] = app.principal(kwargs.get(param))
            return f(*args, **kwargs)

        return click.option("--as", param, default=None, metavar="NAME", help=help)(wrapper)

    return decorate


as_option = principal_option("analyst")


def check_access(app: AppContext) -> None:
    """Run when a command opens the store: with accounts (or a token given), a valid token is
    needed for every command; which actions it allows is then up to the services."""
    if app.token or app.has_users():
        with user_errors():
            app.principal()


def acting(app: AppContext, as_name: Optional[str] = None) -> Any:
    """The principal for a command without `--as` (one-line errors)."""
    with user_errors():
        return app.principal(as_name)


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
    from core.accounts import AccountError
    from core.principals import InvalidName

    try:
        yield
    except (LabelingError, ConfigError, PermissionDenied, ModelError, CampaignError, IngestError, ExportError,
            QuarantineError, AccountError, InvalidName) as exc:
        raise click.ClickException(str(exc)) from None
