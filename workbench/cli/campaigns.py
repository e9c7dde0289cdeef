"""Campaign commands: `cluster`, `campaigns list|show|timeline`, `search`, `similar`.

Thin: every command calls `clustering` (service, explore, search). Top-level imports stay light.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import click

from core.hooks import hookimpl
from core.text import one_line  # standard library only

from .common import (ID, TEXT, AppContext, PngPath, emit, json_option, masked_hits, pass_app,
                     principal_option, user_errors)
from .guards import file_errors, require_read


def _service_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a service function, turning user-caused errors into one-line messages."""
    with user_errors():
        return fn(*args, **kwargs)


def _short(text: Optional[str], n: int = 70) -> str:
    return one_line(text, n)


def _utc(when: Any) -> str:
    """A stored time (naive UTC) as `2026-11-25 08:00 UTC`; '-' for none: printed bare, a timeline
    bucket or a first-seen time read as the analyst's local time, hours off a wave's real start."""
    if when is None:
        return "-"
    return f"{when.isoformat(sep=' ', timespec='minutes')} UTC" if isinstance(when, dt.datetime) else f"{when} UTC"


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command("cluster")
    @click.option("--rebuild", is_flag=True, help="Full re-cluster: rebuild the index and every campaign.")
    @click.option("--no-cache", is_flag=True, help="Do not read or write the embedding cache.")
    @principal_option("actor", help="Who runs it (audit log); on a store without accounts, default: the OS user.")
    @json_option
    @pass_app
    def cluster_cmd(app: AppContext, rebuild: bool, no_cache: bool, actor: str, as_json: bool) -> None:
        """Embed and index new items and attach them to campaigns (incremental).

        A full re-cluster happens with --rebuild, on the first run, or when the model or the
        linking settings in campaigns.yaml changed. Campaign ids stay stable across runs.

        \b
        Examples:
          workbench cluster
          workbench cluster --rebuild --json
        """
        from clustering.service import cluster

        summary = _service_call(cluster, app.store(), app.campaigns(), rebuild=rebuild,
                                use_cache=not no_cache, actor=actor, show_progress=not as_json)

        def human(s: dict[str, Any]) -> None:
            why = f" ({s['reason']})" if s.get("reason") else ""
            click.echo(f"{s['mode']} clustering{why}: {s['items']} new items, {s['new_texts']} new texts, "
                       f"{s['new_similarity_edges']} new similarity links")
            click.echo(f"campaigns: {s['campaigns_created']} created, {s['campaigns_updated']} updated, "
                       f"{s['campaigns_merged']} merged; {s['campaigns_active']} active")
            ix = s["index"]
            click.echo(f"index: {ix['kind']} with {ix['size']} distinct texts "
                       f"(HNSW from {ix['hnsw_min_size']}); {s['seconds']['total']:.1f}s")

        emit(summary, as_json, human)

    @cli.group("campaigns")
    def campaigns() -> None:
        """Scam-wave campaigns: near-duplicate items linked by similarity and shared entities.

        \b
        Example:
          workbench campaigns list --sort last_seen --limit 10
          workbench campaigns show 3 --members 5
        """

    @campaigns.command("list")
    @click.option("--limit", default=20, show_default=True, help="How many campaigns (0 = all).")
    @click.option("--offset", default=0, show_default=True,
                  help="Leave out this many first (the next page: --offset 20 after --limit 20).")
    @click.option("--min-size", default=2, show_default=True, help="Only campaigns with at least this many items.")
    @click.option("--status", type=click.Choice(["active", "merged", "all"]), default="active", show_default=True,
                  help="Campaign status; --min-size only filters active ones (a merged campaign has size 0).")
    @click.option("--sort", type=click.Choice(["size", "last_seen", "id"]), default="size", show_default=True)
    @json_option
    @pass_app
    def list_cmd(app: AppContext, limit: int, offset: int, min_size: int, status: str, sort: str,
                 as_json: bool) -> None:
        """List campaigns with size, growth, top terms, decided label mix and mean model score.

        \b
        Examples:
          workbench campaigns list --limit 10
          workbench campaigns list --sort last_seen --json | jq '.[0]'
        """
        from clustering.explore import list_campaigns
        from labeling.masking import mask_campaign  # as the Campaigns tab shows them

        require_read(app, "campaigns")
        rows = _service_call(list_campaigns, app.store(), limit=limit, min_size=min_size, status=status,
                             sort=sort, taxonomy=app.taxonomy(), offset=offset)
        rows = [mask_campaign(app.review(), r) for r in rows]  # as the Campaigns tab shows them (no reveal)

        def human(rs: list[dict[str, Any]]) -> None:
            if not rs:
                click.echo(f"no campaigns past the first {offset}" if offset else "no campaigns; run `workbench cluster`")
            for c in rs:
                terms = ", ".join(t for t, _ in c["top_terms"][:4])
                score = "-" if c["mean_violation_score"] is None else f"{c['mean_violation_score']:.2f}"
                click.echo(f"{c['id']:>5} size {c['size']:>5}  +{c['growth']['last_day']:>4}/day  "
                           f"violation {score:>4}  decided {c['decided']:>3}  [{terms}]  {_short(c['exemplar_text'], 50)}")

        emit(rows, as_json, human)

    @campaigns.command("show")
    @click.argument("campaign_id", type=ID)
    @click.option("--members", default=20, show_default=True, help="Members to list (0 = all).")
    @json_option
    @pass_app
    def show_cmd(app: AppContext, campaign_id: int, members: int, as_json: bool) -> None:
        """One campaign: facts, shared entities, link reasons and members with why each is in.

        \b
        Example:
          workbench campaigns show 3 --members 5
        """
        from clustering.explore import campaign_detail
        from labeling.masking import mask_campaign  # as the Campaigns tab shows them

        require_read(app, f"campaign {campaign_id}")
        d = mask_campaign(app.review(), _service_call(campaign_detail, app.store(), campaign_id,
                                                members_limit=members, taxonomy=app.taxonomy()))

        def human(c: dict[str, Any]) -> None:
            if c["status"] == "merged":  # where its members, and a decision on them, are now
                click.echo(f"merged into campaign {c['successor']}" if c.get("successor")
                           else "merged: its members are in no campaign now")
            # stored naive UTC: said so, or an analyst east or west of UTC reads them as local times
            click.echo(f"campaign {c['id']} ({c['status']}): {c['size']} items, first seen {_utc(c['first_seen'])}, "
                       f"last seen {_utc(c['last_seen'])}")
            g = c["growth"]
            click.echo(f"growth: {g['per_hour']}/hour, {g['per_day']}/day; last hour +{g['last_hour']}, "
                       f"last day +{g['last_day']}")
            click.echo(f"exemplar {c['exemplar_item_id']}: {_short(c['exemplar_text'], 100)}")
            click.echo("top terms: " + _short(", ".join(t for t, _ in c["top_terms"]), 500))
            # A URL's path is cut from an item's text as it was (an ESC, a BEL: an OSC 52 clipboard
            # write), and a member's linked_by names it: shown as escapes, never run.
            for kind, vals in c["entities"].items():
                click.echo(f"shared {_short(kind, 40)}: " + ", ".join(f"{_short(v['value'], 200)} x{v['items']}"
                                                                     for v in vals[:6]))
            click.echo(f"link reasons: {c['link_reasons'].get('members_by_reason', {})}")
            click.echo(f"decided: {c['decided']} {c['label_mix']}; scored: {c['scored']} "
                       f"mean violation score {c['mean_violation_score']}")
            for m in c["members"]:
                sim = "" if m["similarity"] is None else f"{m['similarity']:.2f}"
                click.echo(f"  {m['item_id']:<22} {sim:>4} {_short(m['linked_by'], 40):<40} {_short(m['text'], 60)}")

        emit(d, as_json, human)

    @campaigns.command("timeline")
    @click.argument("campaign_id", type=ID)
    @click.option("--freq", type=click.Choice(["auto", "hour", "day"]), default="auto", show_default=True)
    @click.option("--png", "png_path", type=PngPath(),
                  help="Where to write the plot (default: <data dir>/campaigns/plots/campaign_<id>.png).")
    @json_option
    @pass_app
    def timeline_cmd(app: AppContext, campaign_id: int, freq: str, png_path: Optional[str], as_json: bool) -> None:
        """Members per hour or day and the running size of a campaign, also as a PNG plot.

        \b
        Example:
          workbench campaigns timeline 3 --freq day --png campaign3.png
        """
        from clustering.explore import campaign_timeline

        require_read(app, f"campaign {campaign_id}")
        store = app.store()
        with file_errors("write the timeline plot"):  # a file where the plots folder belongs, a full disk
            path = png_path or str(store.path("campaigns", "plots", f"campaign_{campaign_id}.png"))
            data = _service_call(campaign_timeline, store, campaign_id,
                                 freq={"auto": "auto", "hour": "h", "day": "D"}[freq], png_path=path)

        def human(t: dict[str, Any]) -> None:
            # buckets are hours and days of UTC (as stored): said so, as the plot's axis says it
            for b in t["buckets"][-48:]:
                click.echo(f"{_utc(b['start'])}  +{b['new']:<5} size {b['size']}")
            click.echo(f"plot: {t['png']}")

        emit(data, as_json, human)

    def _print_hits(hits: list[dict[str, Any]]) -> None:
        if not hits:
            click.echo("no similar items")
        for h in hits:
            click.echo(f"{h['similarity']:.3f}  {h['item_id']:<22} {h['label'] or '-':<10} "
                       f"campaign {h['campaign_id'] or '-':<6} {_short(h['text'])}")

    @cli.command("search")
    @click.argument("text")
    @click.option("-k", "--k", "k", default=10, show_default=True, help="How many items.")
    @json_option
    @pass_app
    def search_cmd(app: AppContext, text: str, k: int, as_json: bool) -> None:
        """The indexed items nearest to a text, with similarity, label and campaign.

        \b
        Example:
          workbench search "You have won a guaranteed prize, call 09061701461" -k 5
        """
        from clustering.search import search_text

        require_read(app, "search")
        hits = masked_hits(app, _service_call(search_text, app.store(), text, k=k, settings=app.campaigns()))
        emit(hits, as_json, _print_hits)

    @cli.command("similar")
    @click.argument("item_id", type=TEXT)
    @click.option("-k", "--k", "k", default=10, show_default=True, help="How many items.")
    @json_option
    @pass_app
    def similar_cmd(app: AppContext, item_id: str, k: int, as_json: bool) -> None:
        """The items nearest to an indexed item (its copies first), with similarity, label and campaign.

        \b
        Example:
          workbench similar sms_spam:3 -k 5 --json
        """
        from clustering.search import similar_items

        require_read(app, f"item {item_id}")
        hits = masked_hits(app, _service_call(similar_items, app.store(), item_id, k=k, settings=app.campaigns()))
        emit(hits, as_json, _print_hits)
