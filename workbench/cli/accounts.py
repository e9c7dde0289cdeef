"""Account commands: `workbench users add|list|disable|enable|set-role|set-password|sessions|logout` and
`workbench tokens create|list|revoke`. Thin wrappers over `core.accounts`; the services check the
`users` / `tokens` permissions and audit every change.

On a store without accounts the local command line acts as admin, so it can add the first
account (which must be an admin); that first account gets a token at once, printed once, since
from then on every command needs one.
"""
from __future__ import annotations

import sys
from typing import Any, Optional

import click

from core.hooks import hookimpl

from .common import AppContext, acting, emit, json_option, pass_app, user_errors


def _read_password(password_stdin: bool) -> Optional[str]:
    """The first line of stdin (without its line ending, `\\n` or a Windows `\\r\\n`: a `\\r` kept would
    be a password nobody can type at the sign-in page); one line of error when it is not UTF-8 text
    (bytes that do not decode, or that the locale let through as surrogates argon2 cannot hash).
    A person at a terminal is asked twice without echo: read as a line, the password was shown on
    screen (and left in the terminal's scrollback) as it was typed."""
    if not password_stdin:
        return None
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    try:
        line = sys.stdin.readline()
        line.encode("utf-8")
    except UnicodeError:
        raise click.ClickException("the password on stdin is not UTF-8 text") from None
    return line.removesuffix("\n").removesuffix("\r")


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.group()
    def users() -> None:
        """Accounts: add, list, disable, enable, set-role, set-password (needs the `users` permission).

        \b
        Example:
          workbench users add ada --role admin
          workbench users list
        """

    @users.command("add")
    @click.argument("name")
    @click.option("--role", required=True, help="A role of configs/roles.yaml (viewer, analyst, lead, engineer, admin).")
    @click.option("--password-stdin", is_flag=True, help="Read a password (for the web sign-in) from the first line of stdin.")
    @json_option
    @pass_app
    def users_add(app: AppContext, name: str, role: str, password_stdin: bool, as_json: bool) -> None:
        """Add an account. The first account must be an admin; it gets a token at once (shown once).

        \b
        Examples:
          workbench users add ada --role admin              # the first account: prints ada's token
          printf '%s\\n' "$PW" | workbench users add bob --role analyst --password-stdin
        """
        from core.accounts import add_user, create_token

        with user_errors():
            actor = app.principal()
            out: dict[str, Any] = add_user(app.store(), name, role, actor=actor, roles=app.roles(),
                                           password=_read_password(password_stdin))
            if out["first"]:
                out["token"] = create_token(app.store(), name, actor=actor)
        def human(o: dict[str, Any]) -> None:
            click.echo(f"user {o['name']} added with role {o['role']}" + (" and a password" if o["password"] else ""))
            if o.get("token"):
                click.echo("this store now has accounts: every command needs a token. The first one, for "
                           f"{o['name']} (shown once; put it in WORKBENCH_TOKEN):\n{o['token']['token']}")
        emit(out, as_json, human)

    @users.command("list")
    @json_option
    @pass_app
    def users_list(app: AppContext, as_json: bool) -> None:
        """List accounts: role, disabled, password set, live tokens, failed logins.

        \b
        Example:
          workbench users list --json
        """
        from core.accounts import list_users

        with user_errors():
            app.require("users", "accounts")
            rows = list_users(app.store())
        emit(rows, as_json, lambda rs: [click.echo(
            f"{r['name']:<24} {r['role']:<10} {'disabled' if r['disabled'] else 'active':<9} "
            f"tokens={r['tokens']} password={'yes' if r['password'] else 'no'}"
            + (f" locked until {r['locked_until']:%Y-%m-%d %H:%M}" if r["locked_until"] else "")) for r in rs])

    @users.command("disable")
    @click.argument("name")
    @json_option
    @pass_app
    def users_disable(app: AppContext, name: str, as_json: bool) -> None:
        """Disable an account: its tokens and password stop working at once (decisions keep its name).

        \b
        Example:
          workbench users disable bob
        """
        from core.accounts import disable_user

        with user_errors():
            out = disable_user(app.store(), name, actor=acting(app), roles=app.roles())
        emit(out, as_json, lambda o: click.echo(f"user {o['name']} disabled"))

    @users.command("enable")
    @click.argument("name")
    @json_option
    @pass_app
    def users_enable(app: AppContext, name: str, as_json: bool) -> None:
        """Enable a disabled account again (and lift a login lockout).

        \b
        Example:
          workbench users enable bob
        """
        from core.accounts import enable_user

        with user_errors():
            out = enable_user(app.store(), name, actor=acting(app))
        emit(out, as_json, lambda o: click.echo(f"user {o['name']} enabled"))

    @users.command("set-role")
    @click.argument("name")
    @click.argument("role")
    @json_option
    @pass_app
    def users_set_role(app: AppContext, name: str, role: str, as_json: bool) -> None:
        """Give an account another role; it applies to its next command or request.

        \b
        Example:
          workbench users set-role bob lead
        """
        from core.accounts import set_role

        with user_errors():
            out = set_role(app.store(), name, role, actor=acting(app), roles=app.roles())
        emit(out, as_json, lambda o: click.echo(f"user {o['name']} is now {o['role']}"))

    @users.command("set-password")
    @click.argument("name")
    @json_option
    @pass_app
    def users_set_password(app: AppContext, name: str, as_json: bool) -> None:
        """Set an account's password from the first line of stdin (and lift a login lockout).

        \b
        Example:
          printf '%s\\n' "$PW" | workbench users set-password bob
        """
        from core.accounts import set_password

        with user_errors():
            out = set_password(app.store(), name, _read_password(True) or "", actor=acting(app))
        emit(out, as_json, lambda o: click.echo(f"password of {o['name']} set"))

    @users.command("sessions")
    @click.argument("name", required=False)
    @click.option("--all", "show_all", is_flag=True, help="Also sessions that ended (and why).")
    @json_option
    @pass_app
    def users_sessions(app: AppContext, name: Optional[str], show_all: bool, as_json: bool) -> None:
        """List web sessions (newest first): user, client address, start, last activity, end.

        \b
        Example:
          workbench users sessions bob --all
        """
        from core.web_sessions import list_sessions

        with user_errors():
            app.require("users", "sessions")
            rows = list_sessions(app.store(), name, live_only=not show_all)
        emit(rows, as_json, lambda rs: [click.echo(
            f"{r['id']:>5} {r['user']:<20} {r['client'] or '-':<16} since {r['created_at']:%Y-%m-%d %H:%M} "
            f"last {r['last_seen_at']:%H:%M:%S}"
            + (f"  ended {r['ended_at']:%Y-%m-%d %H:%M} ({r['end_reason']})" if r["ended_at"] else "")) for r in rs])

    @users.command("logout")
    @click.argument("name")
    @json_option
    @pass_app
    def users_logout(app: AppContext, name: str, as_json: bool) -> None:
        """Sign NAME out of the web UI everywhere: every live session ends at once.

        \b
        Example:
          workbench users logout bob
        """
        from core.web_sessions import SessionError, revoke_sessions

        with user_errors():
            try:
                out = revoke_sessions(app.store(), name, actor=acting(app))
            except SessionError as exc:
                raise click.ClickException(str(exc)) from None
        emit(out, as_json, lambda o: click.echo(f"{o['ended']} session(s) of {o['user']} ended"))

    @cli.group()
    def tokens() -> None:
        """Tokens: create (shown once), list, revoke (needs the `tokens` permission).

        \b
        Example:
          workbench tokens create bob --expires 90
          workbench tokens list
        """

    @tokens.command("create")
    @click.argument("name")
    @click.option("--expires", "expires_days", type=float, metavar="DAYS", help="Expire after this many days.")
    @click.option("--scope", "scopes", multiple=True, metavar="ACTION",
                  help="Narrow the token to these actions of roles.yaml (repeatable); default: the user's role.")
    @json_option
    @pass_app
    def tokens_create(app: AppContext, name: str, expires_days: Optional[float], scopes: tuple[str, ...],
                      as_json: bool) -> None:
        """Create a token for NAME and print it once (only its SHA-256 is stored).

        \b
        Examples:
          workbench tokens create bob --expires 90
          workbench tokens create ci-bot --scope read --scope score --json
        """
        from core.accounts import create_token

        with user_errors():
            out = create_token(app.store(), name, actor=acting(app), expires_days=expires_days, scopes=list(scopes))
        emit(out, as_json, lambda o: click.echo(
            f"token {o['id']} for {o['user']}" + (f", expires {o['expires_at']:%Y-%m-%d %H:%M} UTC" if o["expires_at"] else "")
            + (f", scopes {', '.join(o['scopes'])}" if o["scopes"] else "")
            + f" (shown once; put it in WORKBENCH_TOKEN):\n{o['token']}"))

    @tokens.command("list")
    @click.option("--user", "name", help="Only this user's tokens.")
    @json_option
    @pass_app
    def tokens_list(app: AppContext, name: Optional[str], as_json: bool) -> None:
        """List tokens (id, user, prefix, scopes, expiry, revocation); never the tokens themselves.

        \b
        Example:
          workbench tokens list --user bob
        """
        from core.accounts import list_tokens

        with user_errors():
            app.require("tokens", "tokens")
            rows = list_tokens(app.store(), name)
        emit(rows, as_json, lambda rs: [click.echo(
            f"{r['id']:>5} {r['user']:<20} {r['prefix']}…  scopes={','.join(r['scopes'] or []) or 'role'} "
            f"expires={r['expires_at'] or 'never'} {'REVOKED ' + str(r['revoked_at']) if r['revoked_at'] else ''}")
            for r in rs])

    @tokens.command("revoke")
    @click.argument("token_id", type=int)
    @json_option
    @pass_app
    def tokens_revoke(app: AppContext, token_id: int, as_json: bool) -> None:
        """Revoke a token by the id `tokens list` shows; it stops working at once.

        \b
        Example:
          workbench tokens revoke 3
        """
        from core.accounts import revoke_token

        with user_errors():
            out = revoke_token(app.store(), token_id, actor=acting(app), roles=app.roles())
        emit(out, as_json, lambda o: click.echo(f"token {o['id']} of {o['user']} revoked"
                                                + ("" if o["changed"] else " (already)")))
