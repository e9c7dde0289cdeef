"""The `workbench` command line: a thin layer over the service modules.

Top-level imports stay light (click and the standard library) so `workbench --help` answers at
once; each command imports what it needs. Commands of other areas live in their own modules,
listed in PLUGINS, each exposing `register(cli)`.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import click

from .cliutil import emit, json_option

if TYPE_CHECKING:
    from .store import Store
    from .taxonomy import Taxonomy

# Modules that add commands: each has `register(cli: click.Group) -> None`.
PLUGINS: tuple[str, ...] = ("workbench.queue_cli", "clustering.cli", "models.cli")


class AppContext:
    """What every command shares: where the data lives and which configs apply. Opened lazily."""

    def __init__(self, data_dir: Optional[str], db: Optional[str], config_dir: Optional[str]) -> None:
        self.data_dir = Path(data_dir) if data_dir else None
        self.db = db
        self.config_dir = config_dir
        self._store: Optional["Store"] = None
        self._taxonomy: Optional["Taxonomy"] = None

    def store(self) -> "Store":
        if self._store is None:
            from .store import open_store

            self._store = open_store(self.data_dir, self.db)
        return self._store

    def taxonomy(self) -> "Taxonomy":
        if self._taxonomy is None:
            from .config import config_dir
            from .taxonomy import load_taxonomy

            self._taxonomy = load_taxonomy(config_dir(self.config_dir))
        return self._taxonomy

    def config_path(self, name: str) -> Path:
        from .config import config_dir

        return config_dir(self.config_dir) / name


pass_app = click.make_pass_decorator(AppContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data-dir", envvar="WORKBENCH_DATA_DIR", default="workbench-data", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the SQLite database, quarantine, indexes and models.")
@click.option("--db", envvar="WORKBENCH_DB", default=None,
              help="Database URL instead of SQLite in the data dir, e.g. postgresql://user@host/db.")
@click.option("--config-dir", envvar="WORKBENCH_CONFIG_DIR", default=None, type=click.Path(file_okay=False),
              help="Folder with taxonomy.yaml and the other configs (default: the bundled configs/).")
@click.version_option(package_name="ts-workbench")
@click.pass_context
def cli(ctx: click.Context, data_dir: str, db: Optional[str], config_dir: Optional[str]) -> None:
    """Trust & Safety review workbench: ingest, score, cluster, queue, review, evaluate.

    \b
    Example (a fresh machine):
      workbench demo                      # ingest both shared datasets, then the rest of the loop
      workbench ingest posts.csv --text-column body --id-column post_id
      workbench status --json
    """
    if config_dir:
        # Every loader that falls back to the default folder (demo steps, the UI's sweeper) then
        # reads the same configs as the commands that are handed the folder explicitly.
        os.environ["WORKBENCH_CONFIG_DIR"] = str(Path(config_dir).resolve())
    ctx.obj = AppContext(data_dir, db, config_dir)
    ctx.call_on_close(lambda: ctx.obj._store.dispose() if ctx.obj._store is not None else None)


# --------------------------------------------------------------------------------------------
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
@click.option("--limit", type=int, help="Stop after this many rows per input (for a quick look).")
@click.option("--as", "actor", default="cli", show_default=True, help="Who runs the ingest (audit log).")
@json_option
@pass_app
def ingest(app: AppContext, paths: tuple[str, ...], preset: Optional[str], source: Optional[str],
           fmt: Optional[str], id_column: Optional[str], text_column: Optional[str],
           author_column: Optional[str], created_column: Optional[str], label_column: Optional[str],
           meta_columns: tuple[str, ...], surface: Optional[str], split: str, chunk_size: int,
           limit: Optional[int], actor: str, as_json: bool) -> None:
    """Ingest CSV, TSV, JSONL, Parquet or Hugging Face datasets; bad rows go to quarantine.

    Re-ingesting the same rows adds nothing. Rows that cannot be stored (missing text, unparsable
    time, unknown label, bytes that are not UTF-8) are written to quarantine.jsonl in the data
    directory with file, line and reason. Exits non-zero only when nothing could be stored.

    \b
    Examples:
      workbench ingest ../shared/data/sms_spam_collection/SMSSpamCollection --preset sms_spam
      workbench ingest reports.jsonl --text-column body --id-column report_id \\
          --created-column reported_at --author-column user --meta-column country
      workbench ingest ucirvine/sms_spam --preset sms_spam       # from the Hub, where a network exists
    """
    from .ingest import ColumnMap, IngestError, ingest_paths

    columns = ColumnMap(id=id_column, text=text_column, author=author_column, created=created_column,
                        label=label_column, meta=list(meta_columns))
    try:
        summary = ingest_paths(app.store(), app.taxonomy(), list(paths), preset=preset, source=source,
                               fmt=fmt, columns=columns, surface=surface, split=split,
                               chunk_size=chunk_size, limit=limit, actor=actor)
    except IngestError as exc:
        raise click.ClickException(str(exc)) from None
    emit(summary.as_dict(), as_json, lambda _: click.echo(summary.describe()))
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
    from .items import store_status

    data = store_status(app.store())
    emit(data, as_json, _print_status)


def _print_status(d: dict[str, Any]) -> None:
    click.echo(f"items: {d['items']}  predictions: {d['predictions']}  campaigns: {d['campaigns']}  "
               f"cases: {d['cases']}  decisions: {d['decisions']}  audit events: {d['audit_events']}")
    for key, title in (("by_source", "per source"), ("by_label", "per policy label"),
                       ("by_state", "per case state"), ("by_prediction", "per predicted label")):
        if d.get(key):
            click.echo(f"{title}: " + ", ".join(f"{k}={v}" for k, v in d[key].items()))
    if d.get("champion"):
        click.echo(f"champion model: {d['champion']}")


@cli.command()
@click.option("--source", help="Only items from this source.")
@click.option("--label", help="Only items whose source label maps to this policy.")
@click.option("--predicted", help="Only items whose latest prediction is this label.")
@click.option("--state", help="Only items whose case is in this state (open, claimed, decided, ...).")
@click.option("--campaign", type=int, help="Only members of this campaign.")
@click.option("--limit", default=20, show_default=True, help="How many items (0 = all).")
@click.option("--offset", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def items(app: AppContext, source: Optional[str], label: Optional[str], predicted: Optional[str],
          state: Optional[str], campaign: Optional[int], limit: int, offset: int, as_json: bool) -> None:
    """List items with their source label, latest prediction, campaign and case state.

    \b
    Examples:
      workbench items --source sms_spam --label spam --limit 5
      workbench items --state open --json | head
    """
    from .items import iter_items

    rows = iter_items(app.store(), source=source, label=label, predicted=predicted, state=state,
                      campaign=campaign, limit=limit or None, offset=offset)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, default=str, ensure_ascii=False))
        else:
            pred = row.get("prediction") or {}
            guess = f"{pred['label']}:{pred['score']:.2f}" if pred else "-"
            text = row["text"].replace("\n", " ")
            click.echo(f"{row['id']:<24} {row['source_label'] or '-':<8} {guess:<16} "
                       f"{row.get('campaign_id') or '-':<6} {(row.get('case') or {}).get('state', '-'):<9} "
                       f"{text[:70]}")


@cli.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.option("--expect-head", help="Hash printed by an earlier `audit head`: also detects lost newest events.")
@json_option
@pass_app
def audit_verify(app: AppContext, expect_head: Optional[str], as_json: bool) -> None:
    """Recompute the hash chain; exit 1 if any event was edited, deleted or re-ordered.

    \b
    Example:
      workbench audit verify --json
    """
    from . import audit as audit_log

    with app.store().read() as conn:
        result = audit_log.verify(conn, expect_head=expect_head)

    def human(_: Any) -> None:
        if result.ok:
            click.echo(f"audit chain intact: {result.events} events, head {result.head}")
        else:
            click.echo(f"AUDIT CHAIN BROKEN ({len(result.problems)} problems):", err=True)
            for p in result.problems:
                click.echo(f"  {p}", err=True)

    emit(result.as_dict(), as_json, human)
    if not result.ok:
        sys.exit(1)


@audit.command("log")
@click.option("--limit", default=20, show_default=True)
@json_option
@pass_app
def audit_log_cmd(app: AppContext, limit: int, as_json: bool) -> None:
    """Show the newest audit events.

    \b
    Example:
      workbench audit log --limit 5
    """
    from .items import recent_audit_events

    events = recent_audit_events(app.store(), limit)
    emit(events, as_json, lambda ev: [click.echo(
        f"{e['id']:>6} {e['ts']} {e['actor']:<12} {e['action']:<20} {e['entity_type'] or ''}:{e['entity_id'] or ''} "
        f"{json.dumps(e['payload'], default=str)[:80]}") for e in ev])


@cli.command()
@click.option("--shared-data", type=click.Path(file_okay=False),
              help="Folder with the shared datasets (default: ../shared/data, else the Hugging Face Hub).")
@click.option("--limit", type=int, help="Rows per dataset (for a quick run).")
@click.option("--skip", "skip_steps", multiple=True, help="Skip a step by name (repeatable).")
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
    from .demo import DemoError, run_demo

    try:
        report = run_demo(app, shared_data=shared_data, limit=limit, skip=set(skip_steps),
                          echo=(lambda *_: None) if as_json else click.echo)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report, default=str))
    if then_serve:
        from .ui import serve as serve_ui

        click.echo("serving the review UI on http://127.0.0.1:7860 (Ctrl+C to stop)")
        serve_ui(app.store(), app.taxonomy())
    elif not as_json:
        click.echo("next: `workbench serve` opens the review UI on http://127.0.0.1:7860")


@cli.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--include-source-labels", is_flag=True,
              help="Also export items labelled only by their source (marked label_origin=source).")
@click.option("--source", help="Only items of this source.")
@click.option("--push-to-hub", metavar="REPO", help="Also push the dataset to this Hugging Face Hub repo.")
@json_option
@pass_app
def export(app: AppContext, out_dir: str, include_source_labels: bool, source: Optional[str],
           push_to_hub: Optional[str], as_json: bool) -> None:
    """Export current labels as a Hugging Face dataset (save_to_disk folder + Parquet).

    Human decisions win over source labels; each row keeps reviewer, action, policy reference,
    rationale and what the model said when the analyst decided.

    \b
    Example:
      workbench export ./exports/2026-11 --include-source-labels
      python -c "import datasets; print(datasets.load_from_disk('./exports/2026-11/dataset'))"
    """
    from labeling.export import ExportError, export_labels

    try:
        summary = export_labels(app.store(), app.taxonomy(), out_dir, include_source_labels, source, push_to_hub)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    emit(summary, as_json, lambda d: click.echo(
        f"exported {d['rows']} labelled items ({d['by_origin']['human']} human, {d['by_origin']['source']} source) "
        f"to {d['path']} and {d['parquet']}"))


@cli.group("eval")
def eval_group() -> None:
    """Measure the model against human decisions: overrides, precision/recall, calibration, drift."""


@eval_group.command("report")
@click.argument("out_dir", type=click.Path(file_okay=False), default="workbench-data/reports/latest")
@click.option("--model", "model_version", help="Only decisions made on this model version (default: all).")
@json_option
@pass_app
def eval_report(app: AppContext, out_dir: str, model_version: Optional[str], as_json: bool) -> None:
    """Write report.md with PNG plots: override rates, P/R/F1 (all and QA-audit), ECE, kappa, drift.

    \b
    Example:
      workbench eval report ./reports/week-48 --json | jq .quality.override_rate
    """
    from evaluation.report import write_report

    result = write_report(app.store(), app.taxonomy(), out_dir, model_version)
    emit(result, as_json, lambda r: click.echo(
        f"{r['quality']['decisions']} decisions, override rate "
        f"{'n/a' if r['quality']['override_rate'] is None else format(r['quality']['override_rate'], '.1%')}; "
        f"report at {r['report']} with {len(r['plots'])} plots"))


@eval_group.command("drift")
@click.option("--reference", help="Reference window START/END (ISO times); default: first half of item time.")
@click.option("--current", help="Current window START/END (ISO times); default: second half.")
@click.option("--model", "model_version", help="Model version (default: the champion).")
@json_option
@pass_app
def eval_drift(app: AppContext, reference: Optional[str], current: Optional[str], model_version: Optional[str],
               as_json: bool) -> None:
    """Score drift between two windows of item time: PSI and KS per policy label.

    \b
    Example:
      workbench eval drift --reference 2026-10-01/2026-11-01 --current 2026-11-01/2026-11-25
    """
    import datetime as dt

    from evaluation.report import score_drift

    def window(text: Optional[str], name: str) -> Optional[tuple[dt.datetime, dt.datetime]]:
        if not text:
            return None
        try:
            a, b = text.split("/")
            return dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)
        except ValueError:
            raise click.BadParameter(f"expected START/END in ISO format, got {text!r}", param_hint=name) from None

    ref, cur = window(reference, "--reference"), window(current, "--current")
    if (ref is None) != (cur is None):
        raise click.UsageError("give both --reference and --current, or neither")
    result = score_drift(app.store(), app.taxonomy(), ref, cur, model_version)
    result.pop("_arrays", None)
    if "error" in result:
        raise click.ClickException(result["error"])
    emit(result, as_json, lambda r: [click.echo(
        f"{lab:<12} PSI {v['psi']:.3f}  KS {v['ks']:.3f}  mean {v['mean_ref']:.3f} -> {v['mean_cur']:.3f}")
        for lab, v in r["per_label"].items()])


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=7860, show_default=True, help="Port of the web UI.")
@click.option("--as", "analyst", default="analyst", show_default=True, help="Default analyst name in the UI.")
@click.option("--queue", help="Queue shown first (default: the one with most waiting cases).")
@pass_app
def serve(app: AppContext, host: str, port: int, analyst: str, queue: Optional[str]) -> None:
    """Serve the review workbench (Gradio web UI) over this store.

    \b
    Example:
      workbench serve --port 7860 --as alice      # then open http://127.0.0.1:7860
    """
    from .ui import serve as serve_ui

    click.echo(f"serving {app.store().display_url} on http://{host}:{port} (Ctrl+C to stop)")
    serve_ui(app.store(), app.taxonomy(), host=host, port=port, analyst=analyst, queue=queue)


def _register_plugins() -> None:
    for name in PLUGINS:
        importlib.import_module(name).register(cli)


_register_plugins()


def main() -> None:
    """Console entry point: user-caused errors become one line, not a traceback."""
    from .config import ConfigError

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"Error: config: {exc}", err=True)
        sys.exit(2)
    except SystemExit:
        raise
    except Exception as exc:  # the store and the configs raise typed errors; name them plainly
        from .store import StoreError

        if isinstance(exc, StoreError):
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
