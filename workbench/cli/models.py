"""Model commands: `models train|list|gates|show|promote|retire|kinds` and `score`.

Thin: every command calls `models.registry` or `models.scoring`. Top-level imports stay light
(click and the standard library); the service modules load inside the commands.
"""
from __future__ import annotations

import contextlib
from typing import Any, Optional

import click

from core.hooks import hookimpl

from .common import AppContext, PngPath, acting, emit, json_option, pass_app, principal_option, user_errors
from .guards import require_read


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a service function; user-caused errors become one-line messages."""
    with user_errors():
        return fn(*args, **kwargs)


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` as text; a number written so is a number
            try:
                value = float(value)
            except ValueError:
                pass
        out[key.strip()] = value
    return out


def _retrain(app: AppContext, cfg: Any, kind: Optional[str], params: tuple[str, ...], sources: tuple[str, ...],
             no_promote: bool, force: bool, reason: str, tune_weight: bool, tune_head: bool, no_rescore: bool,
             report_dir: Optional[str], actor: Any, as_json: bool) -> dict[str, Any]:
    """`workbench retrain`'s work: tune what was asked on the train side, then retrain, gate and
    (unless told not to) promote and rescore. Returns `retrain_and_gate`'s result."""
    from evaluation.promotion import retrain_and_gate

    if tune_weight:
        from evaluation.weight_tuning import tune_human_weight

        tuned = tune_human_weight(app.store(), app.taxonomy(), models_config=cfg, actor=actor, kind=kind,
                                  params=_parse_params(params), sources=list(sources) or None,
                                  show_progress=not as_json)
        cfg = cfg.model_copy(update={"learning": cfg.learning.model_copy(update={"human_weight": tuned["chosen"]})})
        if not as_json and not tuned["folds"]:
            click.echo(f"human weight not tuned ({tuned.get('reason') or 'no folds'}): "
                       f"keeping the configured {tuned['chosen']}")
        elif not as_json:
            click.echo(f"human weight {tuned['chosen']} by {tuned['folds']}-fold grouped cross-validation: "
                       + ", ".join(f"{w}: macro F1 {f:.4f}" for w, f in tuned["scores"].items()))
    if tune_head:
        from evaluation.weight_tuning import tune_head as choose_head

        chosen = choose_head(app.store(), app.taxonomy(), models_config=cfg, actor=actor, kind=kind,
                             params=_parse_params(params), sources=list(sources) or None, show_progress=not as_json)
        params = tuple(p for p in params if not p.startswith("head=")) + (f"head={chosen['chosen']}",)
        if not as_json:
            click.echo(f"head {chosen['chosen']} by {chosen['folds']}-fold grouped cross-validation "
                       f"({', '.join(chosen['policies'])} AUC): "
                       + ", ".join(f"{h}: {a:.4f}" for h, a in chosen["scores"].items()))
    echo = (lambda *a, **k: None) if as_json else click.echo
    if (tune_weight or tune_head) and "pooled" in cfg.promotion.sets:
        # The choice was made on the train-side human labels `pooled` would score: the test split instead.
        sets = list(dict.fromkeys("test_split" if s == "pooled" else s for s in cfg.promotion.sets))
        cfg = cfg.model_copy(update={"promotion": cfg.promotion.model_copy(update={"sets": sets})})
        echo("gate: test_split instead of pooled (the tuning chose on the train-side labels pooled would score)")
    return retrain_and_gate(app.store(), app.taxonomy(), models_config=cfg,
                            queue_config=None if no_rescore else app.queues(), actor=actor, kind=kind,
                            params=_parse_params(params), sources=list(sources) or None, promote=not no_promote,
                            force=force, reason=reason, rescore="none" if no_rescore else "foreground",
                            report_dir=report_dir, show_progress=not as_json, echo=echo)


def _print_gate(r: dict[str, Any]) -> None:
    """A gated promotion's outcome (`evaluation.promotion`): verdict, per-set figures, rescore, report."""
    click.echo(f"challenger {r['challenger']} vs champion {r['champion'] or '(none)'}: "
               + ("PROMOTED" + (" (forced)" if r["forced"] else "") if r["promoted"] else "not promoted"))
    click.echo(f"  gate: {r['gate']['reason']}")  # its warnings were echoed as the comparison ran
    for name, comp in (r.get("comparisons") or {}).items():
        m = comp.get("macro_f1") or {}
        if comp["n"]:
            click.echo(f"  {name}: {comp['n']} items, macro F1 {m.get('champion')} -> {m.get('challenger')} "
                       f"[{m.get('lower')}, {m.get('upper')}]; McNemar p {comp['mcnemar']['p_value']} "
                       f"(mid-p {comp['mcnemar'].get('mid_p')})")
    if r.get("rescore"):
        rs = r["rescore"]
        click.echo(f"  open cases: {rs['scored']} items rescored, {rs['replanned']} re-planned, "
                   f"{rs['refreshed']} refreshed, {rs['stale_left']} stale left")
    if r.get("report"):
        click.echo(f"  report: {r['report']}  plot: {r['png']}")


def _metrics_line(m: dict[str, Any]) -> str:
    met = m.get("metrics") or {}
    if not met:
        return "-"
    return (f"acc {met.get('accuracy', 0):.3f}  macro-F1 {met.get('macro_f1', 0):.3f}  "
            f"wF1 {met.get('weighted_f1', 0):.3f}  ECE {met.get('ece', 0):.3f}")


def _print_model(m: dict[str, Any]) -> None:
    click.echo(f"{m['id']}  [{m['role']}]  kind {m['kind']}  created {m['created_at']}"
               + (f"  promoted {m['promoted_at']}" if m.get("promoted_at") else ""))
    click.echo(f"  parent: {m.get('parent_id') or '-'}   taxonomy {m.get('taxonomy_version')}   "
               f"data fingerprint {str(m.get('data_fingerprint'))[:16]}")
    click.echo(f"  artefact: {m['artifact_path']}")
    met = m.get("metrics") or {}
    click.echo(f"  validation ({met.get('n_validation', '?')} items, trained on {met.get('n_train', '?')}): "
               + _metrics_line(m))
    for lab, d in (met.get("per_label") or {}).items():
        click.echo(f"    {lab:<12} P {d['precision']:.3f}  R {d['recall']:.3f}  F1 {d['f1']:.3f}  n={d['support']}")
    params = m.get("params") or {}
    click.echo("  params: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    if m.get("reliability_png"):
        click.echo(f"  reliability diagram: {m['reliability_png']}")


@hookimpl
def register_commands(cli: click.Group) -> None:

    @cli.group("models")
    def models_group() -> None:
        """Model registry: train classifiers, compare them, promote one champion.

        \b
        Example:
          workbench models list
        """

    @models_group.command("train")
    @click.option("--kind", help="Model kind (default: training.default_kind in models.yaml; see `models kinds`).")
    @click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                  help="Override a kind parameter for this run (repeatable), e.g. C=2 or char_ngrams=[2,4].")
    @click.option("--source", "sources", multiple=True, help="Train only on items of this source (repeatable).")
    @click.option("--parent", help="Version this one derives from (recorded in the registry).")
    @click.option("--promote", "promote_if", flag_value="always",
                  help="Promote it through the gate (as `models promote`); without a champion it becomes the first.")
    @click.option("--no-promote", "promote_if", flag_value="never", help="Never promote, even without a champion.")
    @click.option("--no-rescore", "no_rescore", is_flag=True,
                  help="After a promotion, leave the open cases as they are (`workbench cases rescore` later).")
    @principal_option("actor", help="Who trains it (audit log); on a store without accounts, default: the OS user.")
    @json_option
    @pass_app
    def train_cmd(app: AppContext, kind: Optional[str], params: tuple[str, ...], sources: tuple[str, ...],
                  parent: Optional[str], promote_if: Optional[str], no_rescore: bool, actor: str,
                  as_json: bool) -> None:
        """Train a model on the labelled items, validate it on the held-out side, register it.

        The data are `workbench retrain`'s: each item's label of record (a human decision wins
        over its source label), human labels weighted, fitted on the campaign-grouped train
        side and validated on the test side, so no version has seen an item the gate tests
        it on. Without --promote/--no-promote the new version becomes champion only when
        there is no champion yet. After a promotion through the gate the open cases are
        rescored (as `models promote`); exit status 1 when the gate refuses.

        \b
        Examples:
          workbench models train
          workbench models train --kind tfidf_lr --param C=2 --json
          workbench models train --kind transformer --param max_steps=200 --no-promote
        """
        from labeling.training_data import learning_data
        from models.registry import check_training_args, get_model, train_model

        echo = (lambda *a, **k: None) if as_json else click.echo
        cfg = app.models()
        # Before learning_data, which stores every labelled item's train/test side for good.
        _call(check_training_args, app.taxonomy(), cfg, kind, _parse_params(params))
        if parent is not None:
            _call(get_model, app.store(), parent)
        # Every --promote goes through promote_through_gate, the first champion too: a champion made
        # by another host while this one trained is then compared with, not replaced with no gate.
        gated = promote_if == "always"
        if gated:
            from core.hooks import check_permission

            _call(check_permission, actor, "promote", "models train --promote")  # before the training, not after
        ld = _call(learning_data, app.store(), app.taxonomy(), cfg.learning, actor, sources=list(sources) or None,
                   min_examples_per_label=cfg.training.min_examples_per_label)
        data, validation = ld.fit_sets(cfg.training.seed)
        from evaluation.promotion_report import left_out_line

        for w in ld.stats["warnings"] + [line for line in (left_out_line(ld.stats),) if line]:
            click.echo(f"warning: {w}", err=True)
        result = _call(train_model, app.store(), app.taxonomy(), kind=kind, params=_parse_params(params),
                       config=cfg, parent=parent, data=data, validation=validation, train_side_only=True,
                       decisions_through=ld.stats["decisions_through"],
                       promote_if="never" if gated else (promote_if or "no_champion"), actor=actor,
                       show_progress=not as_json, echo=echo)
        if gated:
            from evaluation.promotion import promote_through_gate

            r = _call(promote_through_gate, app.store(), app.taxonomy(), result["id"], models_config=app.models(),
                      queue_config=None if no_rescore else app.queues(), actor=actor,
                      rescore="none" if no_rescore else "foreground", show_progress=not as_json, echo=echo)
            result = {**get_model(app.store(), result["id"]), "gate": r["gate"]["reason"], "report": r.get("report"),
                      "rescore": r.get("rescore")}
            echo(("promoted" if r["promoted"] else "not promoted") + f" through the gate: {r['gate']['reason']}")
        emit(result, as_json, _print_model)
        if gated and not r["promoted"]:
            raise SystemExit(1)  # as `models promote`: `models train --promote && deploy` stops here

    @models_group.command("list")
    @click.option("--all", "include_retired", is_flag=True, help="Include retired versions.")
    @json_option
    @pass_app
    def list_cmd(app: AppContext, include_retired: bool, as_json: bool) -> None:
        """List model versions, newest first, with their validation metrics.

        \b
        Example:
          workbench models list --all --json
        """
        require_read(app, "models")
        from models.registry import list_models

        rows = list_models(app.store(), include_retired=include_retired)

        def human(rs: list[dict[str, Any]]) -> None:
            if not rs:
                click.echo("no models yet: train one with `workbench models train`")
            for m in rs:
                click.echo(f"{m['id']:<34} {m['role']:<10} {m['kind']:<12} {_metrics_line(m)}")

        emit(rows, as_json, human)

    @models_group.command("gates")
    @click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
                  help="How many verdicts, newest first.")
    @click.option("--plot", "plot_path", type=PngPath(), default=None,
                  help="Also write a PNG of these verdicts: challenger - champion with its interval, per verdict.")
    @json_option
    @pass_app
    def gates_cmd(app: AppContext, limit: int, plot_path: Optional[str], as_json: bool) -> None:
        """The gate's verdicts, newest first: every retrain and gated promotion (and forced ones),
        read back from the audit log, as the web UI's Models tab lists them.

        \b
        Example:
          workbench models gates --limit 5
          workbench models gates --plot gates.png
        """
        from evaluation.model_overview import gate_verdicts, verdict_word

        rows = _call(gate_verdicts, app.store(), acting(app), limit=limit)
        if plot_path:
            from evaluation.promotion_report import plot_gate_history

            written = plot_gate_history(plot_path, rows)
            if not as_json:
                click.echo(f"plot: {written}" if written else "plot: no verdict with a test split to draw")

        def human(rs: list[dict[str, Any]]) -> None:
            if not rs:
                click.echo("no gate verdicts yet: `workbench retrain` compares a challenger with the champion")
            for v in rs:
                word = verdict_word(v)
                why = f"{v['force_reason']} (gate: {v['reason']})" if v["forced"] else v["reason"]
                why += "".join(f"\n    warning: {w}" for w in v["warnings"])
                click.echo(f"{v['at']}  {v['challenger']} vs {v['champion'] or '-'}: {word} by {v['actor']}\n"
                           f"    {why}")

        emit(rows, as_json, human)

    @models_group.command("show")
    @click.argument("version", default="champion")
    @json_option
    @pass_app
    def show_cmd(app: AppContext, version: str, as_json: bool) -> None:
        """Show one version (default: the champion): parameters, metrics per label, artefacts.

        \b
        Examples:
          workbench models show
          workbench models show hybrid-20261125-101500-ab12 --json
        """
        from models.registry import artifact_dir, get_model

        row = _call(get_model, app.store(), version)
        png = artifact_dir(app.store(), row["id"]) / "reliability.png"
        if png.exists():
            row["reliability_png"] = str(png)
        emit(row, as_json, _print_model)

    @models_group.command("promote")
    @click.argument("version")
    @click.option("--force", is_flag=True,
                  help="Promote even when the gate refuses, e.g. a rollback (needs force_promote and --reason; "
                       "audited).")
    @click.option("--reason", default="", help="Why (required with --force; kept in the audit log).")
    @click.option("--no-rescore", "no_rescore", is_flag=True,
                  help="After the promotion, leave the open cases as they are (`workbench cases rescore` later).")
    @principal_option("actor", help="Who promotes (audit log); on a store without accounts, default: the OS user.")
    @json_option
    @pass_app
    def promote_cmd(app: AppContext, version: str, force: bool, reason: str, no_rescore: bool, actor: str,
                    as_json: bool) -> None:
        """Make VERSION the champion, through the same gate as `workbench retrain`.

        VERSION and the champion are scored on the same held-out human labels and VERSION is
        promoted only when the gate passes (models.yaml `promotion`), or with --force --reason
        (a rollback to an earlier version is a forced promotion). Without a champion it becomes
        the first. A comparison report is written; after a promotion the open cases are
        rescored. Exit status 1 when the gate refuses.

        \b
        Examples:
          workbench models promote hybrid-20261125-101500-ab12
          workbench models promote hybrid-20261120-090000-77aa --force --reason "rollback: new model floods the queue"
        """
        from evaluation.promotion import promote_through_gate

        echo = (lambda *a, **k: None) if as_json else click.echo
        r = _call(promote_through_gate, app.store(), app.taxonomy(), version, models_config=app.models(),
                  queue_config=None if no_rescore else app.queues(), actor=actor, force=force, reason=reason,
                  rescore="none" if no_rescore else "foreground", show_progress=not as_json, echo=echo)
        now_champion = r["challenger"] if r["promoted"] else r["champion"]
        out = {"champion": now_champion, "previous": r["champion"] if r["promoted"] else None,
               "changed": r["promoted"], "forced": r["forced"], "gate": r["gate"]["reason"],
               "report": r.get("report"), "warnings": r.get("warnings", [])}
        emit(out if as_json else r, as_json, _print_gate)
        if now_champion != r["challenger"]:
            raise SystemExit(1)

    @models_group.command("retire")
    @click.argument("version")
    @click.option("--reason", default="", help="Why (kept in the audit log).")
    @principal_option("actor", help="Who retires it (audit log); on a store without accounts, default: the OS user.")
    @json_option
    @pass_app
    def retire_cmd(app: AppContext, version: str, reason: str, actor: str, as_json: bool) -> None:
        """Retire VERSION: kept for the record, no longer offered for scoring. Not the champion.

        \b
        Example:
          workbench models retire tfidf_lr-20261125-093000-9f3e --reason superseded
        """
        from models.registry import retire

        result = _call(retire, app.store(), version, actor=actor, reason=reason)
        emit(result, as_json, lambda r: click.echo(f"{r['retired']} retired" + ("" if r["changed"] else " already")))

    @models_group.command("kinds")
    @json_option
    @pass_app
    def kinds_cmd(app: AppContext, as_json: bool) -> None:
        """List the model kinds and their configured parameters.

        \b
        Example:
          workbench models kinds --json
        """
        from models.kinds import kind_class, kind_names

        cfg = app.models()
        data = {k: {"description": (kind_class(k).__doc__ or "").strip().splitlines()[0],
                    "params": {**kind_class(k).default_params(), **cfg.kind_params(k)}}
                for k in kind_names()}

        def shown(name: str, value: Any) -> str:
            if name != "members":
                return f"{name}={value}"
            parts = []  # an ensemble's members, each with what it changes from its kind's settings
            for m in value:
                changed = {k: v for k, v in m["params"].items() if cfg.kind_params(m["kind"]).get(k) != v}
                parts.append(m["kind"] + (f"({', '.join(f'{k}={v}' for k, v in changed.items())})" if changed else ""))
            return "members=" + " + ".join(parts)

        emit(data, as_json, lambda d: [click.echo(f"{k:<12} {v['description']}\n             "
                                                  + ", ".join(shown(n, p) for n, p in v["params"].items()))
                                       for k, v in d.items()])

    @cli.command("retrain")
    @click.option("--kind", help="Challenger kind (default: the champion's kind, with its parameters).")
    @click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                  help="Override a parameter of the challenger (repeatable), e.g. C=2.")
    @click.option("--source", "sources", multiple=True, help="Use only items of this source (repeatable).")
    @click.option("--no-promote", "no_promote", is_flag=True,
                  help="Train, compare and report only; never promote.")
    @click.option("--force", is_flag=True,
                  help="Promote even when the gate refuses (needs force_promote and --reason; audited).")
    @click.option("--reason", default="", help="Why (required with --force; kept in the audit log).")
    @click.option("--if-due", "if_due", is_flag=True,
                  help="Only when auto_retrain in models.yaml says a retrain is due (for cron).")
    @click.option("--tune-weight", "tune_weight", is_flag=True,
                  help="Choose the human-label weight from learning.weight_grid by grouped cross-validation "
                       "on the train side before training.")
    @click.option("--tune-head", "tune_head", is_flag=True,
                  help="Choose the hybrid's head (multinomial or one binary head per label) by grouped "
                       "cross-validation on the train side before training (a new policy).")
    @click.option("--no-rescore", "no_rescore", is_flag=True,
                  help="After a promotion, leave the open cases as they are (run `workbench score` and "
                       "`workbench cases build` later).")
    @click.option("--report-dir", type=click.Path(file_okay=False), help="Where to write comparison.md / .png; a folder holding an "
                  "earlier verdict's report is kept and this one goes to <dir>-2, -3 ... "
                  "(default: <data dir>/reports/promotion-<challenger>, -2, -3 ...).")
    @principal_option("actor", help="Who retrains (audit log); on a store without accounts, default: the OS user.")
    @json_option
    @pass_app
    def retrain_cmd(app: AppContext, kind: Optional[str], params: tuple[str, ...], sources: tuple[str, ...],
                    no_promote: bool, force: bool, reason: str, if_due: bool, tune_weight: bool, tune_head: bool,
                    no_rescore: bool,
                    report_dir: Optional[str], actor: Any, as_json: bool) -> None:
        """Train a challenger on base data plus human labels; promote it only through the gate.

        The challenger and the champion are scored on the same held-out items: the human labels
        on the campaign-grouped test split and the uniform QA-audit decisions among them. It is
        promoted only when the lower bound of the paired bootstrap interval of the configured
        metric (models.yaml `promotion`) is above zero, or with --force --reason by an
        engineer. A comparison report (Markdown + PNG) is written either way. After a
        promotion the open cases are rescored and re-prioritised (with a progress bar).

        \b
        Examples:
          workbench retrain
          workbench retrain --no-promote --json
          workbench retrain --if-due                 # from cron
          workbench retrain --force --reason "hotfix for the new scam wave; QA set too small"
        """
        cfg = app.models()
        recorded: Any = contextlib.nullcontext()
        if if_due:
            from evaluation.promotion import failure_recorded, retrain_due
            from workbench.learning import drift_check

            due = _call(retrain_due, app.store(), cfg, drift_check(app))
            if not due["due"]:
                emit({"retrained": False, **due}, as_json, lambda d: click.echo(f"no retrain: {d['reason']}"))
                return
            if not as_json:
                click.echo(f"retrain due: {due['reason']}")
            # From cron: a failure is audited, and the next `--if-due` backs off instead of retrying at once.
            recorded = failure_recorded(app.store(), actor, due["reason"])
        from evaluation.promotion import RetrainBusy

        with user_errors(), recorded:  # a failure is recorded as raised, then printed as one line
            try:
                result = _retrain(app, cfg, kind, params, sources, no_promote, force, reason, tune_weight,
                                  tune_head, no_rescore, report_dir, actor, as_json)
            except RetrainBusy as exc:
                if not if_due:
                    raise
                # From cron: another process or host is retraining on these decisions; not an error.
                emit({"retrained": False, "due": True, "reason": str(exc)}, as_json,
                     lambda d: click.echo(f"no retrain: {d['reason']}"))
                return
        emit(result, as_json, _print_gate)

    @cli.command("score")
    @click.option("--model", "model_version", help="Version to score with (default: the champion).")
    @click.option("--chunk-size", type=click.IntRange(min=1), help="Items per transaction (default: scoring.chunk_size).")
    @click.option("--limit", type=click.IntRange(min=1), help="Stop after this many items (the next run continues).")
    @json_option
    @pass_app
    def score_cmd(app: AppContext, model_version: Optional[str], chunk_size: Optional[int],
                  limit: Optional[int], as_json: bool) -> None:
        """Score every item that has no prediction from the model yet (resumable).

        Each prediction stores per-label scores, the top label, its uncertainty, the taxonomy
        version and flags for empty, truncated or non-UTF-8 text. Killing the run loses at most
        one chunk; running it again continues where it stopped.

        \b
        Examples:
          workbench score
          workbench score --model hybrid-20261125-101500-ab12 --json
        """
        from models.scoring import score_items

        summary = _call(score_items, app.store(), app.taxonomy(), model_version=model_version,
                        chunk_size=chunk_size, config=app.models(), limit=limit, show_progress=not as_json,
                        actor=acting(app))
        emit(summary.as_dict(), as_json, lambda _: click.echo(summary.describe()))
