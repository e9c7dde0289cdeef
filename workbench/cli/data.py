"""Commands over the store: init, ingest, status, items, audit verify|head|checkpoint|log, export."""
from __future__ import annotations

import json
import sys
from typing import Any, Optional

import click

from core.hooks import hookimpl
from core.json_text import inert_json  # standard library only
from core.text import one_line  # standard library only

from .common import (ID, TEXT, AppContext, acting, emit, json_option, pass_app, principal_option,
                     user_errors)
from .guards import require_read

# A count of rows: PostgreSQL refuses a negative LIMIT / OFFSET or one past 32 bits with a traceback.
COUNT = click.IntRange(0, 2**31 - 1)


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command()
    @json_option
    @pass_app
    def init(app: AppContext, as_json: bool) -> None:
        """Create (or migrate) the store and check the taxonomy.

        \b
        Example:
          workbench --data-dir ./workbench-data init
          workbench --db postgresql://postgres@127.0.0.1/test init --json
        """
        store = app.store()
        store.migrate()  # at head too: seals a chain a plain `alembic upgrade` left without a keyed event
        tax = app.taxonomy()
        data = {"database": store.display_url, "data_dir": str(store.data_dir),
                "schema_revision": store.schema_revision(), "taxonomy_version": tax.version,
                "policies": tax.labels}
        emit(data, as_json, lambda d: click.echo(
            f"store ready: {d['database']} (schema {d['schema_revision']})\n"
            f"taxonomy {d['taxonomy_version']}: {', '.join(d['policies'])}"))

    @cli.command()
    @click.argument("paths", nargs=-1, required=True)
    @click.option("--preset", type=click.Choice(["sms_spam", "davidson"]), help="Column mapping of a known dataset.")
    @click.option("--source", help="Source name stored on each item (default: the preset, or the file's stem).")
    @click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "jsonl", "parquet", "hf"]),
                  help="Input format (default: from the file extension; hub ids and dataset folders are 'hf').")
    @click.option("--id-column", help="Column with a stable id ('@row' = row number); default: a hash of the content.")
    @click.option("--text-column", help="Column with the text (default: text).")
    @click.option("--author-column", help="Column with the author id.")
    @click.option("--created-column", help="Column with the creation time (ISO 8601 or epoch seconds).")
    @click.option("--label-column", help="Column with the source's own label.")
    @click.option("--meta-column", "meta_columns", multiple=True, help="Extra column kept as metadata (repeatable).")
    @click.option("--surface", help="Surface of the items (sms, comment, post, listing, ...).")
    @click.option("--split", default="train", show_default=True, help="Split of a Hugging Face dataset.")
    @click.option("--chunk-size", default=20000, show_default=True, help="Rows per transaction.")
    @click.option("--limit", type=COUNT, help="Stop after this many rows per input (for a quick look).")
    @principal_option("actor", help="Who runs the ingest (audit log); on a store without accounts, default: the OS user.")
    @json_option
    @pass_app
    def ingest(app: AppContext, paths: tuple[str, ...], preset: Optional[str], source: Optional[str],
               fmt: Optional[str], id_column: Optional[str], text_column: Optional[str],
               author_column: Optional[str], created_column: Optional[str], label_column: Optional[str],
               meta_columns: tuple[str, ...], surface: Optional[str], split: str, chunk_size: int,
               limit: Optional[int], actor: str, as_json: bool) -> None:
        """Ingest CSV, TSV, JSONL, Parquet or Hugging Face datasets; bad rows go to quarantine.

        Every row read is counted once it is written, as exactly one of: stored; duplicate (its
        id is already stored with the same text: re-ingesting adds nothing); conflict (its id is
        stored with a different text: the stored item is never rewritten, the new row goes to
        the quarantine with both texts for a person to resolve); quarantined (missing text, text
        that is not a string, an id that is neither text nor an integer (a float id such as 1.0
        is refused), unparsable time, unknown label, bytes that are not UTF-8 in any field used,
        a wrong number of fields, an unbalanced CSV quote, invalid JSON). The summary reconciles
        read = stored + duplicate + conflict + quarantined. Quarantine records
        (quarantine.jsonl in the data directory, see `workbench quarantine list`) name file,
        line, field and reason. A missing local path fails at once.

        Exits 1 when a row was lost, a file could not be read or was cut short, or nothing
        could be stored; quarantined and conflicting rows alone do not fail the run.

        \b
        Examples:
          workbench ingest ../shared/data/sms_spam_collection/SMSSpamCollection --preset sms_spam
          workbench ingest reports.jsonl --text-column body --id-column report_id \\
              --created-column reported_at --author-column user --meta-column country
          workbench ingest ucirvine/sms_spam --preset sms_spam       # from the Hub, where a network exists
        """
        from core.ingest import ColumnMap, IngestError, ingest_paths

        columns = ColumnMap(id=id_column, text=text_column, author=author_column, created=created_column,
                            label=label_column, meta=list(meta_columns))
        try:
            summary = ingest_paths(app.store(), app.taxonomy(), list(paths), preset=preset, source=source,
                                   fmt=fmt, columns=columns, surface=surface, split=split,
                                   chunk_size=chunk_size, limit=limit, actor=actor)
        except IngestError as exc:
            raise click.ClickException(_no_escapes(str(exc))) from None
        emit(summary.as_dict(), as_json, lambda _: click.echo(_no_escapes(summary.describe())))
        if not summary.ok:
            sys.exit(1)

    @cli.command()
    @json_option
    @pass_app
    def status(app: AppContext, as_json: bool) -> None:
        """Counts per source, policy label and case state; models, campaigns, decisions.

        \b
        Example:
          workbench status --json | jq .items
        """
        require_read(app, "status")
        from core.items import store_status

        data = store_status(app.store())
        emit(data, as_json, _print_status)

    @cli.command()
    @click.option("--source", type=TEXT, help="Only items from this source.")
    @click.option("--label", type=TEXT, help="Only items whose source label maps to this policy.")
    @click.option("--predicted", type=TEXT, help="Only items whose latest prediction is this label.")
    @click.option("--state", type=TEXT, help="Only items whose case is in this state (open, claimed, decided, ...).")
    @click.option("--campaign", type=ID, help="Only members of this campaign.")
    @click.option("--limit", type=COUNT, default=20, show_default=True, help="How many items (0 = all).")
    @click.option("--offset", type=COUNT, default=0, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    @pass_app
    def items(app: AppContext, source: Optional[str], label: Optional[str], predicted: Optional[str],
              state: Optional[str], campaign: Optional[int], limit: int, offset: int, as_json: bool) -> None:
        """List items with their source label, latest prediction, campaign and case state.

        Needs `read`. Texts are masked as on the Review tab and in `find` (`masked` says so);
        a terminal escape sequence in a text is shown as its escape, never run.

        \b
        Examples:
          workbench items --source sms_spam --label spam --limit 5
          workbench items --state open --json | head
        """
        from core.hooks import check_permission
        from core.items import iter_items

        from labeling.reviewer_names import namer_for

        with user_errors():
            check_permission(who := acting(app), "read", "items")
        namer = namer_for(app.store(), who)  # the decision's reviewer: a lead's, or its pseudonym
        rows = iter_items(app.store(), source=source, label=label, predicted=predicted, state=state,
                          campaign=campaign, limit=limit or None, offset=offset)
        settings = app.review()
        for row in rows:
            row = _masked_item(settings, row)
            if isinstance(row.get("decision"), dict):
                row["decision"] = dict(row["decision"], reviewer=namer(row["decision"].get("reviewer")))
            if as_json:
                click.echo(inert_json(row))
            else:
                pred = row.get("prediction") or {}
                guess = f"{pred['label']}:{pred['score']:.2f}" if pred else "-"
                click.echo(f"{one_line(row['id'], 200):<24} {one_line(row['source_label'] or '-'):<8} {guess:<16} "
                           f"{row.get('campaign_id') or '-':<6} {(row.get('case') or {}).get('state', '-'):<9} "
                           f"{one_line(row['text'], 70)}")

    @cli.group()
    def audit() -> None:
        """The tamper-evident audit log.

        \b
        Example:
          workbench audit verify --json
          workbench audit checkpoint
        """

    @audit.command("verify")
    @click.option("--expect-head", type=TEXT,
                  help="A hash printed by an earlier `audit head`: it must still be in the chain "
                       "(events appended since are fine).")
    @click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False),
                  help="A file written by `audit checkpoint`: the event at each line's count must have its hash.")
    @click.option("--no-decisions", is_flag=True, help="Skip checking decisions against their audit events.")
    @json_option
    @pass_app
    def audit_verify(app: AppContext, expect_head: Optional[str], checkpoint_file: Optional[str],
                     no_decisions: bool, as_json: bool) -> None:
        """Recompute the keyed chain and check decisions; exit 1 on any sign of tampering.

        Finds edited, deleted, inserted or re-ordered events, a chain recomputed without the key,
        and decisions edited, replaced, deleted or written without their event. With --checkpoint
        it also finds a cut tail; events appended after a checkpoint are fine.

        \b
        Examples:
          workbench audit verify --json
          workbench audit verify --checkpoint /secure/audit-checkpoints.jsonl
        """
        require_read(app, "audit log")
        from core import audit as audit_log

        try:
            cps = audit_log.read_checkpoints(checkpoint_file) if checkpoint_file else None
            with app.store().read(snapshot=True) as conn:
                result = audit_log.verify(conn, expect_head=expect_head, checkpoints=cps,
                                          check_decisions=not no_decisions)
        except audit_log.AuditError as exc:
            raise click.ClickException(str(exc)) from None

        def human(_: Any) -> None:
            if result.ok:
                old = f", {result.legacy_events} from before the key" if result.legacy_events else ""
                old += f", {result.redacted_events} redacted" if result.redacted_events else ""
                click.echo(f"audit chain intact: {result.events} events ({result.keyed_events} keyed{old}), "
                           f"{result.decisions} decisions bound, {result.checkpoints} checkpoints held, "
                           f"head {result.head}")
            else:
                click.echo(f"AUDIT CHAIN BROKEN ({len(result.problems)} problems):", err=True)
                for p in result.problems:
                    click.echo(f"  {p}", err=True)

        emit(result.as_dict(), as_json, human)
        if not result.ok:
            sys.exit(1)

    @audit.command("redact")
    @click.option("--dry-run", is_flag=True, help="List events and fields holding secret values; change nothing.")
    @click.option("--reason", type=TEXT, default="a secret value in an audit payload", show_default=True,
                  help="Recorded in each audit.redact event.")
    @principal_option("actor", help="Who redacts (audit log); on a store without accounts, default: the OS user.")
    @json_option
    @pass_app
    def audit_redact(app: AppContext, dry_run: bool, reason: str, actor: Any, as_json: bool) -> None:
        """Remove password and token hashes that older versions wrote into audit payloads, verifiably:
        each removal is first recorded as a keyed audit.redact event, and no stored hash changes.
        `workbench init` does it on upgrade; run this as the database owner role.

        \b
        Examples:
          workbench audit redact --dry-run --json
          workbench audit redact --as admin --reason "old password hashes"
        """
        from core import audit as audit_log
        from core.hooks import check_permission

        check_permission(actor, "users", "audit log")
        store = app.store()
        try:
            with (store.read() if dry_run else store.begin()) as conn:
                out = audit_log.redact(conn, actor, reason=reason, dry_run=dry_run)
        except audit_log.AuditError as exc:
            raise click.ClickException(str(exc)) from None
        emit(out, as_json, lambda d: click.echo(
            f"{'would redact' if dry_run else 'redacted'} {len(d['redacted'])} events; "
            f"{len(d['refused'])} refused (contents do not verify: run `workbench audit verify`)"))
        if out["refused"]:
            sys.exit(1)

    @audit.command("head")
    @json_option
    @pass_app
    def audit_head(app: AppContext, as_json: bool) -> None:
        """Print the newest hash, the number of events and the time (keep it outside the database).

        \b
        Example:
          workbench audit head --json
        """
        from core import audit as audit_log

        with app.store().read() as conn:
            data = audit_log.head(conn)
        emit(data, as_json, lambda d: click.echo(f"head {d['head']}\nevents {d['count']}\ntime {d['time']}"))

    @audit.command("checkpoint")
    @click.option("--file", "path", type=click.Path(dir_okay=False),
                  help="Append to this file (default: <data dir>/audit-checkpoints.jsonl); keep a copy off the host.")
    @click.option("--post", "post_url", metavar="URL",
                  help="Also POST the checkpoint as JSON to this webhook (5 s timeout).")
    @click.option("--no-verify", is_flag=True, help="Write the checkpoint without verifying the chain first.")
    @json_option
    @pass_app
    def audit_checkpoint(app: AppContext, path: Optional[str], post_url: Optional[str], no_verify: bool,
                         as_json: bool) -> None:
        """Verify the chain, then append {head, count, time} as a JSON line to a 0600 file.

        `audit verify --checkpoint FILE` later finds truncation, deletion, re-ordering and
        recomputation up to each checkpoint. Run it from cron, and ship the file or --post it.

        \b
        Examples:
          workbench audit checkpoint
          workbench audit checkpoint --file /secure/wb.jsonl --post https://logs.example.org/hook
        """
        from pathlib import Path

        from core import audit as audit_log

        store = app.store()
        target = Path(path) if path else store.data_dir / audit_log.CHECKPOINT_FILE
        try:
            with store.read(snapshot=True) as conn:
                if not no_verify:
                    cps = audit_log.read_checkpoints(target) if target.exists() else None
                    result = audit_log.verify(conn, checkpoints=cps)
                    if not result.ok:
                        for p in result.problems:
                            click.echo(f"  {p}", err=True)
                        raise click.ClickException("the audit chain does not verify: no checkpoint written")
                cp = audit_log.head(conn)
            audit_log.append_checkpoint(target, cp)
            data = dict(cp, file=str(target))
            if post_url:
                data["posted"] = audit_log.post_checkpoint(post_url, cp)
        except audit_log.AuditError as exc:
            raise click.ClickException(str(exc)) from None
        emit(data, as_json, lambda d: click.echo(f"checkpoint: {d['count']} events, head {d['head']} -> {d['file']}"
                                                 + (f" (posted: HTTP {d['posted']})" if "posted" in d else "")))

    @audit.command("log")
    @click.option("--limit", type=COUNT, default=20, show_default=True)
    @json_option
    @pass_app
    def audit_log_cmd(app: AppContext, limit: int, as_json: bool) -> None:
        """Show the newest audit events. Needs `analyst_quality` (a lead's right): every event
        names its actor, and its payload who resolved, escalated or appealed what.

        \b
        Example:
          workbench audit log --limit 5
        """
        from core.items import recent_audit_events
        from labeling.reviewer_names import LEAD_PERMISSION

        with user_errors():  # who decided, revealed, escalated what: per-analyst figures and more
            app.require(LEAD_PERMISSION, "audit log")
        events = recent_audit_events(app.store(), limit)
        emit(events, as_json, lambda ev: [click.echo(
            f"{e['id']:>6} {e['ts']} {e['actor']:<12} {e['action']:<20} {e['entity_type'] or ''}:{e['entity_id'] or ''} "
            f"{json.dumps(e['payload'], default=str)[:80]}") for e in ev])

    @cli.command()
    @click.argument("out_dir", type=click.Path(file_okay=False))
    @click.option("--include-source-labels", is_flag=True,
                  help="Also export items labelled only by their source (marked label_origin=source).")
    @click.option("--source", type=TEXT, help="Only items of this source.")
    @click.option("--push-to-hub", metavar="REPO", help="Also push the dataset to this Hugging Face Hub repo (created private).")
    @click.option("--overwrite", is_flag=True,
                  help="Replace OUT_DIR when it holds an earlier export (only dataset/ and labels.parquet); refused otherwise.")
    @json_option
    @pass_app
    def export(app: AppContext, out_dir: str, include_source_labels: bool, source: Optional[str],
               push_to_hub: Optional[str], overwrite: bool, as_json: bool) -> None:
        """Export current labels as a Hugging Face dataset (save_to_disk folder + Parquet).

        Human decisions win over source labels; each row keeps reviewer, action, policy reference,
        rationale and what the model said when the analyst decided.

        \b
        Example:
          workbench export ./exports/2026-11 --include-source-labels
          python -c "import datasets; print(datasets.load_from_disk('./exports/2026-11/dataset'))"
        """
        from core.text import escaped
        from labeling.export import ExportError, export_labels

        try:
            summary = export_labels(app.store(), app.taxonomy(), out_dir, include_source_labels, source, push_to_hub,
                                    actor=acting(app), splits=app.models().learning, overwrite=overwrite,
                                    progress=True)  # on stderr: the --json output stays clean
        except ExportError as exc:
            raise click.ClickException(str(exc)) from None
        for w in summary["warnings"]:
            click.echo(f"warning: {w}", err=True)
        click.echo("unmasked texts by tier: " + ", ".join(
            f"{t}={n}" for t, n in summary["unmasked_by_tier"].items()), err=True)
        emit(summary, as_json, lambda d: click.echo(
            f"exported {d['rows']} labelled items ({d['by_origin']['human']} human, "
            f"{d['by_origin'].get('calibration', 0)} calibration, {d['by_origin']['source']} source) "
            f"to {escaped(d['path'], 1000)} and {escaped(d['parquet'], 1000)}"  # a non-UTF-8 name crashed the echo
            + ("\nas training counts them (a bulk decision once per text): "
               + ", ".join(f"{k}={v}" for k, v in d["by_split"].items()) if "by_split" in d else "")))


def _no_escapes(text: str) -> str:
    """Each line with its control characters as escapes (`one_line`), its indent kept: a file
    name (`ingest incoming/*` of uploaded files) may hold an escape sequence the terminal would run."""
    return "\n".join(line[:len(line) - len(line.lstrip())] + one_line(line, len(line) * 12)
                     for line in text.splitlines())


def _masked_item(settings: Any, row: dict[str, Any]) -> dict[str, Any]:
    """An item row with its text masked by its own rule (`masking.shown_text`: scores of record,
    source policy, decided label), as the HTTP API's item view shows it without a reveal."""
    from labeling.masking import mask_metadata, shown_text

    pred, dec = row.get("prediction") or {}, row.get("decision") or {}
    shown = shown_text(settings, row["text"], pred.get("scores"), row.get("policy_label"), dec.get("label"))
    hidden = shown != row["text"]  # extra source columns are often free text quoting it
    return dict(row, text=shown, masked=hidden, metadata=mask_metadata(row.get("metadata")) if hidden else row.get("metadata"))


def _print_status(d: dict[str, Any]) -> None:
    click.echo(f"items: {d['items']}  predictions: {d['predictions']}  campaigns: {d['campaigns']}  "
               f"cases: {d['cases']}  decisions: {d['decisions']}  audit events: {d['audit_events']}")
    for key, title in (("by_source", "per source"), ("by_label", "per policy label"),
                       ("by_state", "per case state"), ("by_prediction", "per predicted label")):
        if d.get(key):
            click.echo(f"{title}: " + ", ".join(f"{k}={v}" for k, v in d[key].items()))
    if d.get("champion"):
        click.echo(f"champion model: {d['champion']}")
