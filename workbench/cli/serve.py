"""`workbench demo` (the whole loop on the shared data) and `workbench serve` (the review UI)."""
from __future__ import annotations

import contextlib
import json
from typing import Iterator, Optional

import click

from core.hooks import hookimpl

from .common import TEXT, AppContext, json_option, pass_app, user_errors

# What `workbench demo` does on the store, each needing its permission (it runs them as the system).
DEMO_ACTIONS = ("ingest", "train", "score", "cluster", "build_cases", "promote", "evaluate")


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_serve_host(host: str, has_users: bool) -> None:
    """Refuse a non-loopback `--host` while the store has no accounts: without them nobody signs in,
    so anyone who reaches the port would act as anyone."""
    if not has_users and not is_loopback(host):
        raise click.ClickException(
            f"refusing to serve on {host}: this store has no accounts, so anyone reaching the port could act "
            f"as anyone. Add one first (`workbench users add NAME --role admin --password-stdin`), "
            f"or serve on 127.0.0.1")


@contextlib.contextmanager
def _serving(host: str, port: int) -> Iterator[None]:
    """The web server's start failing on the machine (the port taken, a host name that does not
    resolve: Gradio's OSError) as one line naming host and port, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port} (the port taken, or a host name that does not "
                                   f"resolve?): {' '.join(str(exc).split())}") from None


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command()
    @click.option("--shared-data", type=click.Path(file_okay=False),
                  help="Folder with the shared datasets (default: ../shared/data, else the Hugging Face Hub).")
    @click.option("--limit", type=int, help="Rows per dataset (for a quick run).")
    @click.option("--skip", "skip_steps", multiple=True, help="Skip a step by name (repeatable): ingest, campaigns, models, cases, decisions, retrain, label-errors, eval-report, drift, find.")
    @click.option("--serve", "then_serve", is_flag=True, help="Then serve the review UI on http://127.0.0.1:7860.")
    @json_option
    @pass_app
    def demo(app: AppContext, shared_data: Optional[str], limit: Optional[int], skip_steps: tuple[str, ...],
             then_serve: bool, as_json: bool) -> None:
        """Run the whole loop on the shared datasets: ingest, then every later step.

        \b
        Example:
          workbench --data-dir ./workbench-data demo
          workbench demo --shared-data /data/public --limit 2000 --serve
        """
        from ..demo import DemoError, run_demo

        with user_errors():
            for action in DEMO_ACTIONS:
                app.require(action, "demo")
        try:
            report = run_demo(app, shared_data=shared_data, limit=limit, skip=set(skip_steps),
                              echo=(lambda *_: None) if as_json else click.echo)
        except DemoError as exc:
            raise click.ClickException(str(exc)) from None
        if as_json:
            click.echo(json.dumps(report, default=str))
        if then_serve:
            from ..ui import serve as serve_ui

            click.echo("serving the review UI on http://127.0.0.1:7860 (Ctrl+C to stop)", err=as_json)
            with _serving("127.0.0.1", 7860):
                serve_ui(app)
        elif not as_json:
            click.echo("next: `workbench serve` opens the review UI on http://127.0.0.1:7860")

    @cli.command()
    @click.option("--host", default="127.0.0.1", show_default=True, type=TEXT, help="Interface to listen on.")
    @click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535),
                  help="Port of the web UI (1-65535).")
    @click.option("--as", "analyst", metavar="NAME",
                  help="Default analyst name in the UI on a store without accounts (default: the OS user); "
                       "refused on a store with accounts, where everyone signs in on the page.")
    @click.option("--queue", type=TEXT, help="Queue shown first (default: the one with most waiting cases).")
    @pass_app
    def serve(app: AppContext, host: str, port: int, analyst: Optional[str], queue: Optional[str]) -> None:
        """Serve the review workbench (Gradio web UI) over this store.

        \b
        Example:
          workbench serve --port 7860 --as alice      # then open http://127.0.0.1:7860
        """
        # The server itself needs no token: with accounts, every user signs in on the page and
        # each action runs as that user's principal (workbench/ui/session.py).
        app.on_open = None
        if not host.strip():  # the server would pick its own, not the one the "serving" line names
            raise click.BadParameter("is empty: name an interface, such as 127.0.0.1", param_hint="'--host'")
        with user_errors():
            check_serve_host(host, app.has_users())
            accounts = app.has_users()
            if accounts and analyst is not None:  # it was ignored without a word: the sign-in decides who acts
                raise click.BadParameter("has no effect on a store with accounts: everyone signs in on the page, "
                                         "and each action runs as that user; serve without --as",
                                         param_hint="'--as'")
            name = "" if accounts else app.principal(analyst).name
            web = app.web()  # configs/web.yaml: a broken file stops here, before the server starts
            queues = list(app.queues().queues)
        if queue is not None and queue not in queues:  # else the page opened on no queue, as if it were empty
            raise click.BadParameter(f"unknown queue {queue!r} (known: {', '.join(queues)})", param_hint="'--queue'")
        from ..ui import serve as serve_ui

        click.echo(f"serving {app.store().display_url} on http://{host}:{port} (Ctrl+C to stop)"
                   + (f" with sign-in (idle timeout {web.session.idle_timeout_seconds} s"
                      + (f"; single sign-on by {web.sso.user_header} from {', '.join(map(str, web.trusted_proxies))}"
                         if web.sso.enabled else "") + ")" if app.has_users() else ""))
        with _serving(host, port):
            serve_ui(app, host=host, port=port, analyst=name, queue=queue)
