"""What every command module shares: JSON-or-human output, the --json option, the application
context decorator, and one translation of user-caused errors into one-line messages."""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable, Iterator, Optional

import click

from core.json_text import inert_json  # standard library only

from ..context import AppContext

pass_app = click.make_pass_decorator(AppContext)


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print `data` as one JSON document, or hand it to `human` for a readable rendering. The JSON
    escapes what a terminal would obey or hide (`core.json_text.inert_json`): a C1 CSI or a bidi
    override in an item's text is shown as `\\u009b`, never run."""
    if as_json:
        click.echo(inert_json(data))
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


class UnicodeText(click.ParamType):
    """Free text from the command line (a filter, an id, a reason): a byte that is not UTF-8 in
    argv arrives as a lone surrogate, which a database query, an audit event or JSON output
    cannot encode (a UnicodeEncodeError traceback); refused here in one line naming the
    parameter (`core.text.lone_surrogate_at`, the one rule)."""

    name = "text"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        from core.text import lone_surrogate_at

        if isinstance(value, str):
            at = lone_surrogate_at(value)
            if at is not None:
                self.fail(f"is not valid Unicode text (a byte that is not UTF-8, or a lone surrogate, "
                          f"at character {at}): check the terminal's encoding", param, ctx)
            if "\x00" in value:
                self.fail("contains a NUL character", param, ctx)
        return value


TEXT = UnicodeText()  # the type of a free-text argument or option that reaches the store


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


def masked_case_rows(app: AppContext, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Case list rows (`labeling.cases.list_cases`) as the review screen shows them unrevealed: the
    item text and what people wrote (the escalation's reason) masked where the case is
    (`packets.case_masked`, the one rule); a list has no reveal, `cases show --reveal` has."""
    from sqlalchemy import select

    from core.schema import Case, Item
    from labeling.masking import mask_case_reasons, mask_text
    from labeling.packets import case_masked

    ids, out = [r["id"] for r in rows], []
    with app.store().read() as conn:
        cases, items = {}, {}
        for at in range(0, len(ids), 900):  # under SQLite's bound-parameter limit
            chunk = conn.execute(select(Case.__table__).where(Case.id.in_(ids[at:at + 900]))).mappings().all()
            cases.update((c["id"], c) for c in chunk)
            item_ids = [c["item_id"] for c in chunk if c["item_id"]]
            items.update((i["id"], i) for i in conn.execute(
                select(Item.__table__).where(Item.id.in_(item_ids))).mappings()) if item_ids else None
        for r in rows:
            case = cases.get(r["id"])
            if case is None or not case_masked(conn, case, items.get(case["item_id"]), app.review()):
                out.append(r)
                continue
            row = mask_case_reasons(r)
            if isinstance(row.get("text"), str):
                row["text"] = mask_text(row["text"])
            out.append(row)
    return out


def masked_hits(app: AppContext, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nearest-neighbour hits (`clustering.search`) with each text masked by its own rule
    (`masking.shown_text`: scores of record, source and decided label), as `find` masks them:
    a search never reveals."""
    from core.predictions import predictions_of_record
    from labeling.masking import shown_text

    with app.store().read() as conn:
        preds = predictions_of_record(conn, [h["item_id"] for h in hits])
    out = []
    for h in hits:
        text = h.get("text")
        shown = text if not isinstance(text, str) else shown_text(
            app.review(), text, (preds.get(h["item_id"]) or {}).get("scores"), h.get("label"), h.get("decided_label"))
        out.append(dict(h, text=shown, masked=shown != text))
    return out


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
        if isinstance(exc, PermissionDenied):
            audit_cli_refusal(exc)
        raise click.ClickException(str(exc)) from None


def audit_cli_refusal(exc: BaseException) -> None:
    """A command's refusal in the audit log (`workbench.refusals`: surface `cli`, the command's
    path as the action), as the API's 403s are: a token probing commands it may not run shows
    there. Only a token's principal (authenticated) is recorded; never raises, the one line stands."""
    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(AppContext) if ctx is not None else None
    if app is None or not app.token:
        return
    try:
        who = app.principal()
    except Exception:  # noqa: BLE001 - a token that no longer resolves: no one to record
        return
    from ..refusals import audit_refusal

    audit_refusal(app, who, "cli", ctx.command_path, str(exc))
