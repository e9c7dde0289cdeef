"""Two guards the read-only and file-writing commands share (standard library and click only, so
`workbench --help` stays light): the `read` permission a listing needs, and an OSError from a
file the command writes as one line naming the file, not a traceback."""
from __future__ import annotations

import contextlib
from typing import Iterator

import click

from .common import AppContext, user_errors


def require_read(app: AppContext, what: str) -> None:
    """Refuse (one line) a principal without `read`: a token scoped to `ingest` only, or a role in
    roles.yaml that reads nothing, must not list campaigns, neighbours, notes or the quarantine
    when `items` and `find` refuse it (configs/roles.yaml: read covers them all)."""
    with user_errors():
        app.require("read", what)


@contextlib.contextmanager
def file_errors(what: str) -> Iterator[None]:
    """An OSError while the command writes or reads its files (a full disk, a read-only mount, a
    file where a folder belongs) as one line naming the file; whatever the store holds is untouched."""
    try:
        yield
    except OSError as exc:
        from core.hooks import PermissionDenied

        if isinstance(exc, PermissionDenied):  # a PermissionError too: a refusal, not a file's fault
            raise
        name = f"{exc.filename}: " if exc.filename else ""
        raise click.ClickException(f"cannot {what}: {name}{exc.strerror or exc}") from None
