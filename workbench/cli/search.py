"""Finding things and leaving notes: `find`, `note`, `tag`, `notes`.

`workbench find` searches items and campaigns by text, item id, author, tag or note within the
caller's rights, texts masked (`labeling.search`); `workbench search` (campaigns module) is the
other search, by meaning, over the faiss index. Thin: every command is one service call.
"""
from __future__ import annotations

from typing import Any

import click

from core.hooks import hookimpl
from core.text import one_line  # standard library only

from .common import TEXT, AppContext, acting, emit, json_option, pass_app, principal_option, user_errors

TARGETS = click.Choice(["item", "campaign"])


def _one_line(text: str, n: int = 70) -> str:
    return one_line(text, n)


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command("find")
    @click.argument("query")
    @click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500),
                  help="Results per page (1 to 500).")
    @click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0),
                  help="Skip this many results (the next page).")
    @json_option
    @pass_app
    def find_cmd(app: AppContext, query: str, limit: int, offset: int, as_json: bool) -> None:
        """Items (and campaigns) by text, item id, author, tag or note; texts masked.

        Free text matches an item id or author exactly, a tag, a note, or part of a text. A prefix
        narrows it: id:, author:, tag:, note:, text:, case:, campaign:. Without the right to reveal,
        a text match on a masked text is left out.

        \b
        Examples:
          workbench find "prize"
          workbench find author:u1 --json
          workbench find tag:bank-impersonation
        """
        from labeling.search import search

        who = acting(app)
        with user_errors():
            out = search(app.store(), query, who, app.review(), limit=limit, offset=offset)

        def human(o: dict[str, Any]) -> None:
            n = len(o["results"])
            click.echo(f"{o['total']}{'+' if o['capped'] else ''} items match {o['query']!r}"
                       + (f"; showing {o['offset'] + 1}-{o['offset'] + n}" if n < o["total"] else ""))
            for r in o["results"]:
                case = f"case {r['case_id']}" if r["case_id"] is not None else "no case"
                click.echo(f"  {r['item_id']:<22} {case:<11} {r['decided'] or r['predicted'] or '-':<10} "
                           f"[{','.join(r['matched'])}] {_one_line(r['text'])}")
            for c in o["campaigns"]:
                click.echo(f"  campaign {c['campaign_id']} ({c['size']} items) tags {', '.join(c['tags']) or '-'}")
            if len(o["campaigns"]) < o.get("campaign_total", 0):  # campaigns page as items do (--offset)
                click.echo(f"  {o['campaign_total']} campaigns match; showing {len(o['campaigns'])}"
                           + (f" from {o['offset'] + 1}" if o["campaigns"] else ""))

        emit(out, as_json, human)

    @cli.command("note")
    @click.argument("target", type=TARGETS)
    @click.argument("target_id", type=TEXT)
    @click.argument("body")
    @principal_option("actor")
    @json_option
    @pass_app
    def note_cmd(app: AppContext, target: str, target_id: str, body: str, actor: Any, as_json: bool) -> None:
        """Add a note to an item or a campaign (notes are kept for good; audited).

        \b
        Example:
          workbench note item sms_spam:12 "Sender confirmed by the carrier as a phishing line"
        """
        from labeling.notes import add_note

        with user_errors():
            out = add_note(app.store(), target, target_id, body, actor)
        emit(out, as_json, lambda o: click.echo(f"note {o['id']} on {o['entity_type']} {o['entity_id']}"))

    @cli.command("tag")
    @click.argument("target", type=TARGETS)
    @click.argument("target_id", type=TEXT)
    @click.argument("tag")
    @click.option("--remove", is_flag=True, help="Take the tag off instead.")
    @principal_option("actor")
    @json_option
    @pass_app
    def tag_cmd(app: AppContext, target: str, target_id: str, tag: str, remove: bool, actor: Any,
                as_json: bool) -> None:
        """Tag an item or a campaign, or take a tag off (audited).

        \b
        Examples:
          workbench tag campaign 7 wave-7
          workbench tag item sms_spam:12 wave-7 --remove
        """
        from labeling.notes import add_tag, remove_tag

        with user_errors():
            out = (remove_tag if remove else add_tag)(app.store(), target, target_id, tag, actor)
        verb = "removed from" if remove else ("added to" if out.get("added") else "already on")
        emit(out, as_json, lambda o: click.echo(f"tag {o['tag']} {verb} {o['entity_type']} {o['entity_id']}"))

    @cli.command("notes")
    @click.argument("target", type=TARGETS)
    @click.argument("target_id", type=TEXT)
    @json_option
    @pass_app
    def notes_cmd(app: AppContext, target: str, target_id: str, as_json: bool) -> None:
        """The notes (oldest first) and tags of an item or a campaign.

        \b
        Example:
          workbench notes campaign 7
        """
        from labeling.notes import MAX_NOTE_CHARS, list_notes

        who = acting(app)
        with user_errors():  # `read` is checked by list_notes itself
            out = list_notes(app.store(), target, target_id, app.review(), principal=who)  # masked bodies on a masked text

        def human(o: dict[str, Any]) -> None:
            click.echo(f"{o['entity_type']} {o['entity_id']}: tags {', '.join(o['tags']) or '-'}")
            for n in o["notes"]:
                # On one line, its escapes shown: a note's line break forged a second note under it,
                # and a bidi override (U+202E) made the terminal show it backwards.
                click.echo(f"  {n['created_at'][:16]} {one_line(n['author'], 200)}: "
                           f"{one_line(n['body'], MAX_NOTE_CHARS * 6)}")

        emit(out, as_json, human)
