"""The learning-loop steps of `workbench demo`, after the cases are built: simulated analysts
decide, then retrain behind the gate, the label-error scan, the evaluation report, drift and a
search, each through the service function its command calls (`workbench retrain`,
`label-errors scan`, `eval report`, `eval drift`, `find`) and each ending in a line or two a
user can act on.

The retrain keeps the demo short: a champion of any kind but the fast ones (`FAST_KINDS`) is
challenged by `FAST_KIND` instead of its own kind, and the step says so. Measured with
`retrain_and_gate` on a 3,000-item subset of the shared data (1,500 rows of each, 400 simulated
decisions; 2 busy CPU cores): hybrid 101 s, nblr 108 s, minilm_lr 14 s, tfidf_lr 11 s. On the
full data the demo's own hybrid took about 65 s per fit, six fits (6.5 minutes), while a
tfidf_lr fit on the same texts plus 4,000 replicated human labels took 36 s.

A drift alarm is printed, never fatal: the demo shows what `workbench eval drift --check` would
exit 1 on.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from core.hooks import DemoStep, hookimpl
from core.principals import Principal

if TYPE_CHECKING:  # pragma: no cover
    from .context import AppContext

Echo = Callable[..., None]
ACTOR = "demo"  # the workbench's own reserved name: trusted in-process, as the other demo steps
# Case decisions the simulated team makes: enough human labels on the test side for the gate's
# test_split (min_items 30 at a 20% test share) in well under a minute.
DECISIONS = 400
# Kinds retrained as they are in the demo (a few minutes on the full shared data at most); any
# other champion is challenged by FAST_KIND (word TF-IDF + logistic regression).
FAST_KINDS = ("tfidf_lr", "minilm_lr")
FAST_KIND = "tfidf_lr"
FIND_QUERY = "prize"
# Who searches in the demo: a viewer, so texts are masked as they would be for one.
VIEWER = Principal("demo-viewer", "viewer", "local")


def decisions_step(app: "AppContext", echo: Echo) -> dict[str, Any]:
    """A simulated team decides DECISIONS cases (`workbench.demo_analysts`), counting the cases it
    decided in an earlier run on this store: a rerun tops up, it does not decide DECISIONS more."""
    from .demo_analysts import TEAM, simulate_decisions, team_cases

    app.roles()  # the role matrix applies to the simulated analysts
    earlier = team_cases(app.store(), TEAM)
    out = simulate_decisions(app.store(), app.taxonomy(), app.queues(), max(DECISIONS - earlier, 0))
    out["earlier"] = earlier
    echo(f"  {len(TEAM)} simulated analysts decided {out['cases']} cases ({out['decisions']} decisions with "
         f"campaign members; {out['qa_audit']} QA audits, {out['overrides']} overrides of the model, "
         f"{out['slips']} decisions deliberately wrong for the label-error scan, {out['skipped']} cases skipped "
         f"as not theirs)" + (f"; {earlier} more in an earlier run of the demo (it decides {DECISIONS} in all)"
                              if earlier else ""))
    echo("  by queue: " + ", ".join(f"{q}={n}" for q, n in sorted(out["by_queue"].items()))
         + "; decide yourself with `workbench next --queue QUEUE` or `workbench serve`")
    return out


def retrain_step(app: "AppContext", echo: Echo) -> dict[str, Any]:
    """`workbench retrain`: a challenger on base data plus the human labels, through the gate."""
    from evaluation.promotion import retrain_and_gate
    from models.registry import champion

    store = app.store()
    champ = champion(store)
    if champ is None:
        echo("  no champion to challenge: skipped (`workbench models train` makes one)")
        return {"skipped": "no champion"}
    new = _new_decisions(app)
    if not new:  # a rerun: the same data again would only add a copy of the last challenger
        echo(f"  no human decision since {champ['id']} was trained or the last retrain's verdict: nothing new to "
             "learn from, skipped (`workbench retrain` runs one anyway)")
        return {"skipped": "no new decisions"}
    kind = champ["kind"]
    if kind not in FAST_KINDS:
        kind = FAST_KIND
        echo(f"  the champion is a {champ['kind']}: retraining one takes over 5 minutes on the full data, so a fast "
             f"{kind} challenges it here; `workbench retrain` retrains a {champ['kind']}")
    result = retrain_and_gate(store, app.taxonomy(), models_config=app.models(), queue_config=app.queues(),
                              actor=ACTOR, kind=kind, show_progress=True)
    verdict = "PROMOTED" if result["promoted"] else "not promoted"
    echo(f"  challenger {result['challenger']} vs champion {result['champion']}: {verdict}: "
         f"{result['gate']['reason']}" + "".join(f"; warning: {w}" for w in result["warnings"]))
    rescored = result.get("rescore")
    echo(f"  comparison report {result['report']} (plot {result['png']})"
         + (f"; {rescored['scored']} open-case items rescored" if rescored else ""))
    return {k: result[k] for k in ("challenger", "champion", "kind", "promoted", "report", "png")} | {
        "gate": {k: result["gate"][k] for k in ("passed", "metric", "reason")},
        "rescore": rescored}


def _new_decisions(app: "AppContext") -> int:
    """Human decisions since the champion was trained or the last gate verdict, counted as
    `workbench retrain --if-due` counts them (`evaluation.promotion.retrain_due`)."""
    from evaluation.promotion import retrain_due

    cfg = app.models()
    counting = cfg.auto_retrain.model_copy(update={"enabled": True, "after_decisions": 1, "override_rate_alarm": None,
                                                   "drift_alarm": False})
    return int(retrain_due(app.store(), cfg.model_copy(update={"auto_retrain": counting})).get("new_decisions", 0))


def label_errors_step(app: "AppContext", echo: Echo) -> dict[str, Any]:
    """`workbench label-errors scan`: confident learning over the decided items; the top ones
    go to the lead's re-review queue."""
    from labeling.label_errors import find_label_errors
    from models.embeddings import Embedder

    embedder = Embedder.from_settings(app.models().embedding)
    config = app.queues()
    out = find_label_errors(app.store(), app.taxonomy(), config, ACTOR, embedder, progress=True)
    slips, all_slips = _slips_among(app, [c["decision_id"] for c in out["cases"]])
    echo(f"  {out['decided']} decided items, {out['flagged']} flagged by confident learning, {out['queued']} "
         f"queued for re-review (among them {slips} of the {all_slips} items the simulated analysts deliberately "
         f"mislabelled)" + (f"; {out['note']}" if out.get("note") else ""))
    if out["queued"]:
        echo(f"  a lead works them: `workbench next --queue {config.label_errors.queue}`, then "
             f"`workbench label-errors resolve CASE --label LABEL --rationale WHY`")
    return {k: out[k] for k in ("decided", "flagged", "queued")} | {"slips_queued": slips, "slips": all_slips}


def _slips_among(app: "AppContext", decision_ids: list[int]) -> tuple[int, int]:
    """(how many of these decisions are deliberate slips of the simulated team, how many items
    carry one as their label of record): read back from the rationales the team wrote."""
    from core.labels import current_decisions

    from .demo_analysts import MISTAKE

    with app.store().read() as conn:
        slips = {d["id"] for d in current_decisions(conn).values() if MISTAKE in (d.get("rationale") or "")}
    return len(slips.intersection(decision_ids)), len(slips)


def eval_report_step(app: "AppContext", echo: Echo) -> dict[str, Any]:
    """`workbench eval report`: report.html (self-contained) and report.md with its PNGs."""
    from evaluation.config import load_evaluation_config
    from evaluation.drift import load_drift_config
    from evaluation.report import write_report

    store = app.store()
    out_dir = Path(store.path("reports", "demo", "x")).parent
    r = write_report(store, app.taxonomy(), out_dir, actor=ACTOR, config=load_evaluation_config(app.config_dir),
                     drift_config=load_drift_config(app.config_dir))
    o = r["overrides"]["overall"]
    rate = "n/a" if o["estimate"] is None else f"{o['estimate']:.1%} [{o['lo']:.1%}, {o['hi']:.1%}]"
    echo(f"  {r['decisions']} decided items ({r['estimates']['qa_audit']['n']} QA audits), override rate {rate}")
    echo(f"  open {r['html']} in a browser (one file, plots inside); Markdown {r['report']}")
    return {"decisions": r["decisions"], "html": r["html"], "report": r["report"], "plots": len(r["plots"])}


def drift_step(app: "AppContext", echo: Echo) -> dict[str, Any]:
    """`workbench eval drift`: every check printed; an alarm is shown, never fatal here."""
    from core.config import ConfigError
    from evaluation.drift import DriftError, drift_report, load_drift_config

    try:
        report = drift_report(app.store(), load_drift_config(app.config_dir), app.taxonomy())
    except (ConfigError, DriftError, ValueError) as exc:
        echo(f"  drift not measured: {exc} (`workbench eval drift --check` exits 2 here)")
        return {"error": str(exc)}
    r, c = report.reference, report.current
    echo(f"  reference {r[0]:%Y-%m-%d %H:%M} - {r[1]:%Y-%m-%d %H:%M} ({report.n_reference} items), "
         f"current {c[0]:%Y-%m-%d %H:%M} - {c[1]:%Y-%m-%d %H:%M} ({report.n_current} items)")
    short = [ch for ch in report.checks if ch.status == "not enough data"]
    for ch in report.checks:
        if ch not in short:
            echo(("  ALARM " if ch.alarm else "  ") + ch.message)
    if short:  # one line for them all: each says the same thing with its own minimum
        why = (" (the reference window is empty: an item without a time of its own counts at its ingest, and the "
               "shared datasets have none)" if report.n_reference == 0 else "")
        echo(f"  not enough data in a window for {len(short)} checks: {', '.join(ch.check for ch in short)}{why}")
    echo(f"  {len(report.alarms)} alarm(s) in {len(report.checks)} checks; `workbench eval drift --check` would "
         f"exit {1 if report.alarms else 0} (for cron or CI; thresholds and minimums in configs/drift.yaml)")
    return {"alarms": [ch.check for ch in report.alarms], "checks": [ch.check for ch in report.checks],
            "not_enough_data": [ch.check for ch in short]}


def find_step(app: "AppContext", echo: Echo) -> dict[str, Any]:
    """`workbench find`: items by text, id, author, tag or note, texts masked for a viewer."""
    from core.text import one_line
    from labeling.search import search

    app.roles()
    out = search(app.store(), FIND_QUERY, VIEWER, app.review(), limit=3)
    echo(f"  `workbench find {FIND_QUERY}`: {out['total']}{'+' if out['capped'] else ''} items match"
         + ("; the newest, as a viewer sees them (masking rules applied):" if out["results"] else ""))
    for r in out["results"]:
        case = f"case {r['case_id']}" if r["case_id"] is not None else "no case"
        text = one_line(r["text"], 70)  # a hostile text's escape sequence shown, never run
        echo(f"    {r['item_id']:<20} {case:<11} {r['decided'] or r['predicted'] or '-':<10} {text}")
    echo("  narrow it with a prefix: id:, author:, tag:, note:, text:, case:, campaign: (`workbench find --help`)")
    return {"query": FIND_QUERY, "total": out["total"], "shown": len(out["results"])}


@hookimpl
def demo_steps() -> list[DemoStep]:
    return [DemoStep("decisions", 400, decisions_step), DemoStep("retrain", 500, retrain_step),
            DemoStep("label-errors", 600, label_errors_step), DemoStep("eval-report", 700, eval_report_step),
            DemoStep("drift", 800, drift_step), DemoStep("find", 900, find_step)]
