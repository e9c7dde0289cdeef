"""`workbench eval report|drift`: the model measured against human decisions, and drift."""
from __future__ import annotations

from typing import Optional

import click

from core.hooks import hookimpl
from core.text import one_line  # standard library only

from .common import TEXT, AppContext, acting, emit, json_option, pass_app, user_errors
from .guards import file_errors, require_read


def _check_model_version(app: AppContext, version: str) -> None:
    """A misspelt --model measured nothing and wrote an empty report with exit 0, as if that model
    had no decisions: name the known versions instead (the registry's and those decisions name)."""
    from sqlalchemy import select, union

    from core.schema import Decision, ModelVersion

    with app.store().read() as conn:
        known = sorted(v for v in conn.execute(union(
            select(ModelVersion.id), select(Decision.model_version).where(Decision.model_version.is_not(None)))
        ).scalars())
    if version not in known:
        shown = ", ".join(one_line(v, 100) for v in known[:20]) + (" ..." if len(known) > 20 else "")
        raise click.BadParameter(f"unknown model version {version!r} (known: {shown or 'none yet'})",
                                 param_hint="'--model'")


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.group("eval")
    def eval_group() -> None:
        """Measure the model against human decisions: overrides, precision/recall, calibration, drift.

        \b
        Example:
          workbench eval report ./reports/week-48
          workbench eval drift --check
        """

    @eval_group.command("report")
    @click.argument("out_dir", type=click.Path(file_okay=False), required=False)
    @click.option("--model", "model_version", type=TEXT,
                  help="Only decisions made on this model version (default: all).")
    @json_option
    @pass_app
    def eval_report(app: AppContext, out_dir: Optional[str], model_version: Optional[str], as_json: bool) -> None:
        """Write report.html (one self-contained file, plots embedded) and report.md with PNGs.

        OUT_DIR defaults to reports/latest in the data directory (of this store, wherever the
        command runs).

        QA-audit precision / recall / F1 per policy with intervals and the audits still needed,
        override rates over time (per model version, policy, queue) with a test of change, the
        confusion matrix, calibration, agreement, slices with the Jigsaw bias AUCs, drift, and
        analyst quality when you are a lead (configs/evaluation.yaml, configs/drift.yaml).

        \b
        Example:
          workbench eval report ./reports/week-48 --json | jq .overrides.overall
        """
        from evaluation.config import load_evaluation_config
        from evaluation.drift import load_drift_config
        from evaluation.report import write_report

        with user_errors(), file_errors("write the report"):  # a file where the folder belongs, a full disk
            config = load_evaluation_config(app.config_dir)
            drift_config = load_drift_config(app.config_dir)
            out_dir = out_dir or str(app.store().path("reports", "latest", "report.html").parent)
            if model_version is not None:
                app.require("evaluate", out_dir)
                _check_model_version(app, model_version)
            result = write_report(app.store(), app.taxonomy(), out_dir, model_version, actor=acting(app),
                                  config=config, drift_config=drift_config)

        def line(r: dict) -> None:
            o = r["overrides"]["overall"]
            rate = "n/a" if o["estimate"] is None else f"{o['estimate']:.1%} [{o['lo']:.1%}, {o['hi']:.1%}]"
            # two counts of two things: items by their current human label (precision, recall,
            # calibration) and each first judgement of the model's suggestion (the override rate)
            click.echo(f"{r['decisions']} human-labelled items ({r['estimates']['qa_audit']['n']} from QA audits); "
                       f"override rate {rate} over {o['n']} judgements of the model's suggestion; "
                       f"report at {r['html']} and {r['report']} with {len(r['plots'])} plots")

        emit(result, as_json, line)

    @eval_group.command("drift")
    @click.option("--reference-days", type=float, default=None,
                  help="Length of the reference window, ending where the current one starts (default: drift.yaml, 28).")
    @click.option("--current-days", type=float, default=None,
                  help="Length of the current window, ending at --now (default: drift.yaml, 7).")
    @click.option("--now", "now_text", metavar="ISO-TIME", default=None,
                  help="End of the current window (ISO time, UTC unless it says otherwise); default: the newest item time.")
    @click.option("--check", is_flag=True,
                  help="Exit 1 when any alarm fires (one line each), 2 when it could not measure (empty store, broken config, "
                       "no check with enough data), 0 otherwise: for cron or CI.")
    @json_option
    @pass_app
    def eval_drift(app: AppContext, reference_days: Optional[float], current_days: Optional[float],
                   now_text: Optional[str], check: bool, as_json: bool) -> None:
        """Drift between the last days of item time and the weeks before: scores, labels, embeddings, campaigns, overrides.

        Checks and thresholds: configs/drift.yaml. A window below a check's minimum size says
        "not enough data" instead of alarming. Exit status with --check: 0 no alarm, 1 alarm,
        2 could not measure (empty store, broken config, or not one check with enough data).

        \b
        Example (cron, every morning; exit 1 mails the alarms):
          workbench eval drift --check
          workbench eval drift --reference-days 28 --current-days 7 --now 2026-11-30T00:00 --json
        """
        import datetime as dt

        from core.config import ConfigError
        from evaluation.drift import NOT_ENOUGH, DriftError, drift_report, load_drift_config

        now = None
        if now_text:
            try:
                now = dt.datetime.fromisoformat(now_text)
            except ValueError:
                raise click.BadParameter(f"expected an ISO time such as 2026-11-30T00:00, got {now_text!r}",
                                         param_hint="--now") from None
        for name, days in (("--reference-days", reference_days), ("--current-days", current_days)):
            if days is not None and not days > 0:
                raise click.BadParameter(f"must be more than 0 days, got {days:g}", param_hint=name)
        class CannotRun(click.ClickException):
            exit_code = 2  # 1 means "alarm" to a scheduler: a run that could not measure is not one

        try:
            config = load_drift_config(app.config_dir)
            with user_errors():
                store, taxonomy = app.store(), app.taxonomy()
            require_read(app, "drift")
            report = drift_report(store, config, taxonomy, now=now, reference_days=reference_days,
                                  current_days=current_days)
        except (ConfigError, DriftError, click.ClickException) as exc:
            raise CannotRun(exc.format_message() if isinstance(exc, click.ClickException) else str(exc)) from None

        def human(_: object) -> None:
            r, c = report.reference, report.current
            click.echo(f"reference {r[0]:%Y-%m-%d %H:%M} - {r[1]:%Y-%m-%d %H:%M} ({report.n_reference} items), "
                       f"current {c[0]:%Y-%m-%d %H:%M} - {c[1]:%Y-%m-%d %H:%M} ({report.n_current} items)")
            for ch in (report.alarms if check else report.checks):
                click.echo(one_line(("ALARM " if ch.alarm else "") + ch.message, 2000))
            if check:
                click.echo(f"{len(report.alarms)} alarm(s) in {len(report.checks)} checks"
                           + (f" ({skipped} with not enough data)" if skipped else ""))

        skipped = sum(ch.status == NOT_ENOUGH for ch in report.checks)
        emit(report.to_dict(), as_json, human)
        if not check:
            return
        if report.alarms:  # 1 wins: something measured alarmed; the rest unmeasured is said beside it
            if skipped:
                click.echo(f"exit 1: alarm; {skipped} of {len(report.checks)} checks could not be measured "
                           "(not enough data)", err=True)
            click.get_current_context().exit(1)
        if skipped == len(report.checks):  # every check "not enough data" (or none enabled): no all-clear
            click.echo(f"exit 2: could not measure: none of the {len(report.checks)} checks had enough data "
                       "(configs/drift.yaml minimums, or widen --reference-days / --current-days)", err=True)
            click.get_current_context().exit(2)
