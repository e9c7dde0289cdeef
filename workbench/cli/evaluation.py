"""`workbench eval report|drift`: the model measured against human decisions, and drift."""
from __future__ import annotations

from typing import Optional

import click

from core.hooks import hookimpl

from .common import AppContext, acting, emit, json_option, pass_app, user_errors


@hookimpl
def register_commands(cli: click.Group) -> None:
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

        with user_errors():
            result = write_report(app.store(), app.taxonomy(), out_dir, model_version, actor=acting(app))
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
