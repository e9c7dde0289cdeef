"""Retrain and promote behind a gate: `workbench retrain` and the auto-retrain check.

`retrain_and_gate` is the one entry point (the CLI, serve and the benchmarks call it):

1. assemble the data (`labeling.training_data.learning_data`: the label of record, calibration
   copies resolved, one example per text of a bulk decision, campaign-grouped stored splits,
   human labels weighted);
2. train a challenger (the champion's kind and parameters unless told) on the train side, base
   data and human labels together, validated in the registry on the test side;
3. score the same evaluation items with champion and challenger, in memory: (a) `test_split`,
   the human labels on the test side, and (b) `qa_audit`, those of them from the uniform
   QA-audit sample (an unbiased picture of the traffic, where (a) leans to what the queues
   served); compare them (`evaluation.compare.paired_bootstrap`, resampling whole campaign
   groups) and write the report (Markdown + PNG);
4. promote only when the gate passes (`evaluation.compare.gate`: the lower bound of the chosen
   metric's interval above `promotion.min_lower_bound` on every set with `min_items`), or with
   `force` by someone allowed `force_promote`, with a reason (audited as `model.force_promote`
   beside the gate's verdict); every verdict is audited as `model.gate`;
5. after a promotion, rescore and re-prioritise the open cases (`labeling.rescore`): in the
   foreground with a progress bar, in a background thread, or not at all.

Every version trained from the store (`models train` too) fits on the train side alone
(`LearningData.fit_sets`), so neither model has seen an item it is compared on. A version
registered before that rule (an item-level split of every labelled item) may have;
`item_split_warning` says so beside its verdict.
"""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import numpy as np
from sqlalchemy import Integer, exists, func, select
from sqlalchemy.orm import aliased

from core import audit
from core.backoff import exponential_backoff
from core.hooks import check_permission
from core.labels import AUTHORITATIVE_KINDS
from core.principals import Actor, actor_name
from core.schema import AuditEvent, Decision, Item, utcnow
from core.store import Busy
from core.text import free_text_error, one_line
from models.base import ModelError

from .compare import gate, paired_bootstrap
from .cross_fit import CrossFit, cross_fit, pooled_note
from .promotion_report import left_out_line, plot_comparison, write_markdown
from .retrain_mark import after_marks, counting_marks, naive_utc as _naive_utc
from .scoring import score_set

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy
    from labeling.queue_config import QueueConfig
    from labeling.training_data import LearningData
    from models.config import ModelsConfig

    from .drift import DriftReport

RESCORE_MODES = ("foreground", "background", "none")
_NOT_INHERITED = ("checkpoint_dir",)  # a champion's run-specific parameters


class PromotionError(ModelError):
    """A retrain cannot run as asked (the message says why; the CLI prints it as one line)."""


class RetrainBusy(PromotionError):
    """Another retrain holds the store's retrain lock (another thread, process or host)."""


class PromotionRefused(PromotionError):
    """The gate's verdict stands, but the champion it compared with was replaced meanwhile."""


RETRAIN_FAILED = "model.retrain_failed"   # audit action of an automatic retrain that raised


def _challenger_params(cfg: "ModelsConfig", kind: str, champ: Optional[dict[str, Any]],
                       params: Optional[dict[str, Any]]) -> dict[str, Any]:
    inherited = {}
    if champ is not None and champ["kind"] == kind:
        inherited = {k: v for k, v in (champ.get("params") or {}).items() if k not in _NOT_INHERITED}
    return {**cfg.kind_params(kind), **inherited, **(params or {})}


def retrain_and_gate(store: "Store", taxonomy: "Taxonomy", *, models_config: "ModelsConfig",
                     queue_config: Optional["QueueConfig"], actor: Actor, kind: Optional[str] = None,
                     params: Optional[dict[str, Any]] = None, sources: Optional[Sequence[str]] = None,
                     promote: bool = True, force: bool = False, reason: str = "",
                     rescore: str = "foreground", report_dir: Optional[str] = None,
                     now: Optional[dt.datetime] = None, show_progress: bool = True,
                     echo: Callable[..., None] = lambda *a, **k: None) -> dict[str, Any]:
    """Train a challenger on base data plus human labels, compare it with the champion on the same
    held-out items, promote it only through the gate (or `force` with a `reason`), then rescore
    the open cases. Stable signature: the CLI, serve and the benchmarks call it.

    - `kind` / `params`: default the champion's kind and parameters (else `training.default_kind`).
    - `promote=False`: evaluate and report only (the challenger stays registered as a challenger).
    - `force`: promote even when the gate refuses; needs `force_promote` and a non-empty `reason`.
    - `rescore`: `foreground` (progress bar), `background` (a thread; the job is in
      `result['rescore_job']`), or `none`; needs `queue_config` unless `none`.
    - Needs `train` (and `promote` to promote).

    Returns a dict: challenger, champion (the one compared against), promoted, forced, gate
    (verdict, reason, per set), comparisons (per set: `paired_bootstrap` output), data (counts),
    report and png (paths), rescore (counts) when it ran in the foreground.
    """
    from models.kinds import make_classifier
    from models.registry import champion

    cfg = models_config
    check_permission(actor, "train", "retrain")
    _check_promotion(actor, promote, force, reason, "retrain", rescore, queue_config)
    _check_metric(cfg, taxonomy)
    champ = champion(store)  # read again under the lock: this one only names the default kind
    checked = kind or (champ["kind"] if champ else cfg.training.default_kind)
    make_classifier(checked, taxonomy.labels, **_challenger_params(cfg, checked, champ, params))  # before any work
    try:
        with store.exclusive("retrain"):
            return _retrain_and_gate(store, taxonomy, cfg, queue_config, actor, kind, params, sources, promote,
                                     force, reason, rescore, report_dir, now, show_progress, echo)
    except Busy:
        raise RetrainBusy("a retrain is already running on this store (another process or host): wait for "
                          "its verdict (`workbench models gates`)") from None


def _retrain_and_gate(store: "Store", taxonomy: "Taxonomy", cfg: "ModelsConfig", queue_config: Optional["QueueConfig"],
                      actor: Actor, kind: Optional[str], params: Optional[dict[str, Any]],
                      sources: Optional[Sequence[str]], promote: bool, force: bool, reason: str, rescore: str,
                      report_dir: Optional[str], now: Optional[dt.datetime], show_progress: bool,
                      echo: Callable[..., None]) -> dict[str, Any]:
    """`retrain_and_gate` once its checks passed and it holds the store's retrain lock."""
    from labeling.training_data import learning_data
    from models.registry import champion, train_model

    now = now or utcnow()
    champ = champion(store)
    kind = kind or (champ["kind"] if champ else cfg.training.default_kind)
    merged = _challenger_params(cfg, kind, champ, params)
    echo("assembling training data (campaign-grouped splits, human labels weighted)")
    ld = learning_data(store, taxonomy, cfg.learning, actor, sources=sources, now=now,
                       min_examples_per_label=cfg.training.min_examples_per_label)
    train, test_side = ld.fit_sets(cfg.training.seed)
    for w in ld.stats["warnings"]:
        echo(f"  warning: {w}")
    echo(f"  {ld.stats['items']} items ({ld.stats['human_labels']} human labels); "
         f"train {ld.stats['by_split']['train']}, test {ld.stats['by_split']['test']}, "
         f"excluded {ld.stats['by_split']['excluded']}; {len(train)} training rows after weighting")
    if (left_out := left_out_line(ld.stats)) is not None:
        echo(f"  {left_out}")
    row = train_model(store, taxonomy, kind=kind, params=merged, config=cfg, parent=champ["id"] if champ else None,
                      promote_if="never", actor=actor, data=train, validation=test_side, train_side_only=True,
                      decisions_through=ld.stats["decisions_through"],
                      show_progress=show_progress, echo=echo)
    cf = (cross_fit(store, taxonomy, ld, champ, kind=kind, params=merged, config=cfg, seed=cfg.training.seed,
                    show_progress=show_progress, echo=echo) if "pooled" in cfg.promotion.sets else None)
    return compare_and_promote(store, taxonomy, ld, champ, row["id"], kind=kind, models_config=cfg,
                               queue_config=queue_config, actor=actor, promote=promote, force=force, reason=reason,
                               rescore=rescore, report_dir=report_dir, show_progress=show_progress, echo=echo,
                               cross_fitted=cf)


def _check_metric(cfg: "ModelsConfig", taxonomy: "Taxonomy") -> None:
    """`promotion.metric: auc:<policy>` must name a label of the taxonomy: a typo would gate on a
    metric no comparison has, and no challenger could ever be promoted."""
    metric = cfg.promotion.metric
    if metric.startswith("auc:") and metric[4:] not in taxonomy.labels:
        raise PromotionError(f"models.yaml promotion.metric: {metric!r} names no label of the taxonomy "
                             f"(labels: {', '.join(taxonomy.labels)})")


def _check_promotion(actor: Actor, promote: bool, force: bool, reason: str, what: str, rescore: str,
                     queue_config: Optional["QueueConfig"]) -> None:
    """The input and permission checks every gated promotion makes before any work."""
    if rescore not in RESCORE_MODES:
        raise PromotionError(f"rescore must be one of {', '.join(RESCORE_MODES)}, not {rescore!r}")
    if rescore != "none" and queue_config is None:
        raise PromotionError("rescoring open cases needs the queue config (or rescore='none')")
    if promote:
        check_permission(actor, "promote", what)
        if rescore != "none":  # the rescore's own checks came after the promotion: it stood, every case stale
            check_permission(actor, "score", "open cases")
            check_permission(actor, "build_cases", "open cases")
    if (bad := free_text_error(reason, "a reason")) is not None:  # kept in the audit log, printed by `models gates`
        raise PromotionError(bad)
    if force:
        if not reason.strip():
            raise PromotionError("--force needs a --reason (kept in the audit log)")
        check_permission(actor, "force_promote", what)


def promote_through_gate(store: "Store", taxonomy: "Taxonomy", version: str, *, models_config: "ModelsConfig",
                         queue_config: Optional["QueueConfig"], actor: Actor, force: bool = False, reason: str = "",
                         rescore: str = "foreground", report_dir: Optional[str] = None,
                         now: Optional[dt.datetime] = None, show_progress: bool = True,
                         echo: Callable[..., None] = lambda *a, **k: None) -> dict[str, Any]:
    """Promote an already trained `version` (`workbench models promote`) by the same rule as a
    retrain: compared with the champion on the same held-out human labels, promoted only when
    the gate passes, or with `force` and a `reason` (a rollback is a forced promotion: the audit
    log says why). Without a champion, or when `version` is the champion, no comparison is due
    (a first champion still has the open cases rescored).

    Returns `compare_and_promote`'s dict (`gate.reason` says why when nothing changed)."""
    from labeling.training_data import learning_data
    from models.registry import ChampionChanged, champion, get_model, promote as promote_version

    _check_promotion(actor, True, force, reason, f"model_version {version}", rescore, queue_config)
    _check_metric(models_config, taxonomy)
    row = get_model(store, version)  # an unknown version is a one-line RegistryError
    _check_labels(row, taxonomy)
    if row.get("role") == "retired":  # before the gate's work (registry.promote refuses it too, under its lock)
        raise PromotionError(f"{row['id']} is retired (kept for the record, never used to score): "
                             f"not promoted; train or pick another version")
    champ = champion(store)
    if champ is None or champ["id"] == row["id"]:
        try:
            result = promote_version(store, row["id"], actor=actor, reason=reason or "first champion",
                                     expect_champion=champ["id"] if champ else None)
        except ChampionChanged as exc:
            raise PromotionRefused(str(exc)) from None
        why = "no champion yet: the first champion" if champ is None else "already the champion"
        out = {"challenger": row["id"], "champion": champ["id"] if champ else None, "kind": row["kind"],
               "promoted": result["changed"], "forced": False, "gate": {"passed": True, "reason": why}}
        if result["changed"]:  # open cases built on another model's predictions follow the first champion
            _rescore_after(out, store, taxonomy, models_config, queue_config, actor, rescore, show_progress)
        return out
    echo("assembling the held-out human labels (campaign-grouped splits)")
    ld = learning_data(store, taxonomy, models_config.learning, actor, now=now or utcnow(),
                       min_examples_per_label=models_config.training.min_examples_per_label)
    return compare_and_promote(store, taxonomy, ld, champ, row["id"], kind=row["kind"], models_config=models_config,
                               queue_config=queue_config, actor=actor, promote=True, force=force, reason=reason,
                               rescore=rescore, report_dir=report_dir, show_progress=show_progress, echo=echo)


def _check_labels(row: dict[str, Any], taxonomy: "Taxonomy") -> None:
    """Refuse a version that predicts labels the taxonomy no longer has (trained before it lost a
    policy): made champion, forced or first, it could score nothing (`models.scoring`
    refuses it), so the promotion stood and every rescore after it failed."""
    missing = sorted(set(row.get("labels") or ()) - set(taxonomy.labels))
    if missing:
        raise PromotionError(f"model {row['id']} predicts labels the taxonomy no longer has: {missing} (trained for "
                             f"taxonomy {row.get('taxonomy_version')}, now {taxonomy.version}): not promoted; "
                             "retrain it against the current taxonomy")


def item_split_warning(row: Optional[dict[str, Any]]) -> Optional[str]:
    """A line for a registered version trained on an item-level split of every labelled item
    (registered before every version fitted the grouped train side alone: its metrics carry a
    `split_seed` and not `train_side_only`), which may have seen items of the comparison; None
    for any other version."""
    metrics = (row or {}).get("metrics") or {}
    if not row or metrics.get("split_seed") is None or metrics.get("train_side_only"):
        return None
    return (f"{row['id']} was trained on an item-level split: it may have seen items of this comparison, "
            f"which flatters its figures")


def compare_and_promote(store: "Store", taxonomy: "Taxonomy", ld: "LearningData", champ: Optional[dict[str, Any]],
                        challenger_id: str, *, kind: str, models_config: "ModelsConfig",
                        queue_config: Optional["QueueConfig"], actor: Actor, promote: bool, force: bool, reason: str,
                        rescore: str, report_dir: Optional[str], show_progress: bool,
                        echo: Callable[..., None], cross_fitted: Optional[CrossFit] = None) -> dict[str, Any]:
    """Steps 3-5 of the module doc for a registered `challenger_id`: score the evaluation sets of
    `ld` (`labeling.training_data.learning_data`) with champion and challenger, gate, report,
    audit, promote (through the gate, or forced), rescore. The callers check permissions first.
    A champion whose artifact fails its check cannot be compared with: only a forced promotion
    replaces it (the way out of a broken champion), with no comparison and the reason recorded.
    `cross_fitted`: the retrain's out-of-fold scores that make the `pooled` set (`evaluation.cross_fit`)."""
    from models.registry import ChampionChanged, RegistryError, load_model_version, promote as promote_version

    cfg, pcfg = models_config, models_config.promotion
    challenger_model, challenger_row = load_model_version(store, challenger_id)
    champion_model, unloadable = None, None
    if champ:
        try:
            champion_model = load_model_version(store, champ["id"])[0]
        except RegistryError as exc:
            if not (promote and force):
                raise PromotionError(
                    f"the champion {champ['id']}'s artifact is unusable ({exc}): roll back with "
                    f"`workbench models promote VERSION --force --reason \"...\"`") from None
            unloadable = f"champion unloadable: {exc}"
            echo(f"warning: {unloadable}; promoting without a comparison (forced)")
    labels = list(taxonomy.labels)
    comparisons: dict[str, dict[str, Any]] = {}
    reliability = None
    for set_name in pcfg.sets if unloadable is None else ():
        data, groups = ld.test_set("test_split" if set_name == "pooled" else set_name)
        pb, predb = score_set(store, challenger_model, data, labels, cfg)
        if set_name == "pooled" and cross_fitted is not None:
            data, groups, pb, predb = cross_fitted.extend(ld, data, groups, pb, predb)
        y = np.array([labels.index(lab) for lab in data.labels], dtype=int)
        pa, preda = score_set(store, champion_model, data, labels, cfg) if champion_model else (pb, predb)
        comparisons[set_name] = paired_bootstrap(y, pa, pb, preda, predb, labels, groups=groups,
                                                 n_boot=pcfg.bootstrap, seed=pcfg.seed, confidence=pcfg.confidence)
        if set_name == "test_split" or (set_name == "pooled" and "test_split" not in pcfg.sets):
            reliability = {"champion": (pa, y), "challenger": (pb, y)}
    if champ is None:
        verdict = {"passed": True, "metric": pcfg.metric, "min_lower_bound": pcfg.min_lower_bound, "sets": {},
                   "reason": "no champion yet: the challenger becomes the first champion"}
    elif unloadable is not None:
        verdict = {"passed": False, "metric": pcfg.metric, "min_lower_bound": pcfg.min_lower_bound, "sets": {},
                   "reason": unloadable}
    else:
        verdict = gate(comparisons, pcfg.metric, pcfg.min_lower_bound, pcfg.min_items, pcfg.mcnemar_alpha,
                       pcfg.mcnemar_test)
    promoted = bool(promote and (verdict["passed"] or force))
    forced = bool(promoted and force and not verdict["passed"])
    result: dict[str, Any] = {"challenger": challenger_id, "champion": champ["id"] if champ else None,
                              "kind": kind, "promoted": promoted, "forced": forced, "evaluate_only": not promote,
                              "forced_by": actor_name(actor) if forced else None,
                              "force_reason": reason if forced else None, "confidence": pcfg.confidence,
                              "gate": verdict, "comparisons": comparisons, "data": ld.stats,
                              "pooled": pooled_note(pcfg.sets if unloadable is None else (), cross_fitted),
                              "warnings": [w for w in (item_split_warning(champ),
                                                       item_split_warning(challenger_row)) if w]}
    for w in result["warnings"]:
        echo(f"warning: {w}")
    folder = _report_folder(store, challenger_id, report_dir)
    png = plot_comparison(folder / "comparison.png", result["champion"] or "(none)", challenger_id, comparisons,
                          reliability)
    result.update(png=png, report=str(folder / "comparison.md"))
    write_markdown(folder / "comparison.md", result, "comparison.png")
    summary = {"champion": result["champion"], "passed": verdict["passed"], "metric": verdict["metric"],
               "decisions_through": ld.stats.get("decisions_through"),  # where `retrain_due` counts from
               "min_lower_bound": verdict["min_lower_bound"], "mcnemar_alpha": verdict.get("mcnemar_alpha"),
               "mcnemar_test": verdict.get("mcnemar_test"), "sets": verdict["sets"], "reason": verdict["reason"],
               "report": result["report"], "warnings": result["warnings"]}
    with store.begin() as conn:
        audit.record(conn, actor, "model.gate", "model_version", challenger_id, summary)
        if forced:
            audit.record(conn, actor, "model.force_promote", "model_version", challenger_id,
                         {"reason": reason, "approved_by": actor_name(actor), "gate": summary,
                          **({"champion_unloadable": unloadable} if unloadable else {})})
    if promoted:
        why = ("first champion" if champ is None else
               f"forced by {actor_name(actor)} over the gate: {reason}" if forced else
               f"passed the gate: {verdict['reason']}" + (f"; {reason}" if reason.strip() else ""))
        try:  # a compare-and-swap: the champion compared with must still be the champion
            promote_version(store, challenger_id, actor=actor, reason=why,
                            expect_champion=champ["id"] if champ else None)
        except ChampionChanged as exc:  # the verdict above stands; the record says why it promoted nothing
            result.update(promoted=False, promote_refused=str(exc))  # the report said "promoted"
            write_markdown(folder / "comparison.md", result, "comparison.png")
            with store.begin() as conn:
                audit.record(conn, actor, "model.promote_refused", "model_version", challenger_id,
                             {"compared_with": result["champion"], "reason": str(exc)})
            raise PromotionRefused(str(exc)) from None
        echo(f"promoted {challenger_id}: {why}")
        _rescore_after(result, store, taxonomy, cfg, queue_config, actor, rescore, show_progress)
    elif not promote and verdict["passed"]:
        echo(f"passed the gate, not promoted (evaluated only): {verdict['reason']}")
    else:
        echo(f"not promoted: {verdict['reason']}")
    return result


def _rescore_after(result: dict[str, Any], store: "Store", taxonomy: "Taxonomy", cfg: "ModelsConfig",
                   queue_config: Optional["QueueConfig"], actor: Actor, rescore: str, show_progress: bool) -> None:
    """After a promotion, the open cases as `rescore` says: `result['rescore']` (foreground, with a
    progress bar), `result['rescore_job']` (background) or nothing."""
    if rescore == "foreground":
        from labeling.rescore import rescore_open_cases

        result["rescore"] = rescore_open_cases(store, taxonomy, models_config=cfg, queue_config=queue_config,
                                               actor=actor, progress=show_progress)
    elif rescore == "background":
        from labeling.rescore import start_background_rescore

        result["rescore_job"] = start_background_rescore(store, taxonomy, models_config=cfg,
                                                         queue_config=queue_config, actor=actor)


def _report_folder(store: "Store", challenger_id: str, report_dir: Optional[str] = None) -> Path:
    """A folder of one verdict's report: `report_dir` (default `reports/promotion-<challenger>`),
    else the same name with `-2`, `-3`... Why: a later verdict on the same version (`models
    promote` after a refused retrain, a rollback), or any verdict given the same `--report-dir`,
    wrote over the report that the first verdict's audit row (`model.gate`) names. The folder is
    claimed by creating its comparison.md exclusively: two verdicts at once get two folders."""
    if not report_dir and (not challenger_id or any(c in challenger_id for c in "/\\\0") or ".." in challenger_id):
        raise ValueError(f"model id {challenger_id!r} cannot name a report folder (a path in it): nothing written")
    base = (Path(report_dir).expanduser().resolve() if report_dir
            else store.path("reports", "x").parent / f"promotion-{challenger_id}")
    for k in range(1, 10_000):
        folder = base if k == 1 else base.parent / f"{base.name}-{k}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "comparison.md", "x", encoding="utf-8"):
                return folder
        except (FileExistsError, NotADirectoryError):
            continue
    raise PromotionError(f"no free report folder for {challenger_id} under {base.parent}")


def retrain_due(store: "Store", config: "ModelsConfig",
                drift: Optional[Callable[[], "DriftReport"]] = None,
                now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Whether an automatic retrain should start now (`auto_retrain` in models.yaml): `due` and
    the reason. Counted since the champion was trained: new human decisions (at least
    `after_decisions`; none an undo took back or wrote, `_stands`), the override rate of decisions
    on the champion's suggestions (at or above `override_rate_alarm`, over at least
    `alarm_min_decisions`), and with `drift_alarm`
    the drift report `drift` computes (`evaluation.drift.drift_report`): an alarm counts when
    the champion was trained before its current window began (a champion that already saw the
    drifted window is not retrained again for it). A retrain the gate refused starts the count
    again: new decisions and the drift window are counted from the last gate verdict when it is
    later than the champion, and the override rate is then that of the champion's decisions since
    that verdict (at least `alarm_min_decisions` of them), so a refused retrain is not repeated at
    every check on the same evidence (on the champion's lifetime rate, 20 fresh decisions with no
    override re-fired an alarm that 20 overridden ones before the verdict had raised).
    An automatic retrain that failed (`record_retrain_failure`) is not due again before
    `failure_backoff_seconds` x 2^(failures - 1) after the latest failure (at most
    `failure_backoff_cap_seconds`), failures counted since the champion or the last gate verdict:
    a retrain that fails for a lasting reason (memory, disk, a broken model) is not started again
    at every check. "Since" is by decision id (the last one the champion's data or the verdict held),
    never the writing server's clock; rows without that id keep the time rule
    (`evaluation.retrain_mark`). Read-only."""
    from models.registry import champion

    ac = config.auto_retrain
    if not ac.enabled:
        return {"due": False, "reason": "auto_retrain.enabled is false"}
    champ = champion(store)
    if champ is None:
        return {"due": False, "reason": "no champion: train one with `workbench models train`"}
    D, AE = Decision.__table__, AuditEvent.__table__
    with store.read() as conn:
        # After the champion's data and the last verdict (its retrain already saw the decisions before
        # it), by decision id: `created_at` is the writing server's clock (`evaluation.retrain_mark`).
        mark, earlier = counting_marks(conn, champ)
        after = after_marks(mark, earlier)
        new = conn.execute(select(func.count()).select_from(D).where(
            D.c.kind.in_(AUTHORITATIVE_KINDS + ("calibration",)), D.c.kind != "bulk", after, _stands())).scalar() or 0
        new += _bulk_texts(conn, after)
        seen, overrides = conn.execute(select(func.count(), func.sum(D.c.is_override.cast(Integer))).where(
            D.c.model_version == champ["id"], D.c.kind.in_(AUTHORITATIVE_KINDS), after,
            _stands())).one()   # since the last verdict: its retrain already answered the decisions before it
        failed = conn.execute(select(AE.c.ts, AE.c.payload).where(AE.c.action == RETRAIN_FAILED,
                                                                  mark.events_after(AE.c.id, AE.c.ts))
                              .order_by(AE.c.id)).all()
    since = mark.time
    seen, overrides = int(seen or 0), int(overrides or 0)
    out = {"champion": champ["id"], "new_decisions": int(new), "champion_decisions": seen,
           "override_rate": round(overrides / seen, 4) if seen else None, "failed_retrains": len(failed),
           "after_decision": mark.decision_id}
    if failed:
        last = _naive_utc(failed[-1].ts)
        wait = exponential_backoff(len(failed), ac.failure_backoff_seconds, ac.failure_backoff_cap_seconds)
        retry_at = last + dt.timedelta(seconds=wait)
        out["retry_after"] = retry_at.isoformat(timespec="seconds")
        if _naive_utc(now or utcnow()) < retry_at:
            error = one_line(str((failed[-1].payload or {}).get("error", "?")), 200)  # SQL errors span lines
            return {**out, "due": False,
                    "reason": f"the last automatic retrain failed at {last:%Y-%m-%d %H:%M} UTC ({error}); "
                              f"{len(failed)} failure(s) since {champ['id']} or the last gate verdict, next try "
                              f"after {retry_at:%Y-%m-%d %H:%M} UTC (auto_retrain.failure_backoff_seconds)"}
    if ac.after_decisions is not None and new >= ac.after_decisions:
        return {**out, "due": True, "reason": f"{new} new human decisions since {champ['id']} or the last retrain "
                                               f"(>= {ac.after_decisions})"}
    if (ac.override_rate_alarm is not None and seen >= ac.alarm_min_decisions and new >= ac.alarm_min_decisions
            and overrides / seen >= ac.override_rate_alarm):
        return {**out, "due": True, "reason": f"override rate {overrides / seen:.3f} on {seen} decisions "
                                               f">= alarm {ac.override_rate_alarm}"}
    if ac.drift_alarm and drift is not None:
        from .drift import DriftError

        try:
            report = drift()
        except DriftError as exc:   # e.g. an empty store: no drift to act on
            report, out["drift_error"] = None, str(exc)
        alarms = [c.check for c in report.alarms] if report else []
        out["drift_alarms"] = alarms
        if report and alarms and since is not None and _naive_utc(since) < report.current[0]:
            return {**out, "due": True, "reason": f"drift alarm ({', '.join(alarms)}) in the window from "
                                                   f"{report.current[0]:%Y-%m-%d %H:%M} UTC, after {champ['id']} was trained"}
    return {**out, "due": False, "reason": f"{new} new decisions since the last retrain or promotion (retrain at "
                                           f"{ac.after_decisions}); override rate "
                                           f"{out['override_rate']} (alarm {ac.override_rate_alarm})"
                                           + (f"; drift alarms {out.get('drift_alarms') or 'none'}"
                                              if ac.drift_alarm and drift is not None else "")}


def _bulk_texts(conn: Any, after: Any) -> int:
    """The new bulk decisions `retrain_due` counts: once per campaign (else case), label and
    template-normalised text, as training learns them (`labeling.training_data`): one click on
    a 600-member wave of 4 templates is 4 new labels, not 600 (it made a retrain due alone)."""
    from labeling.training_data import template_hash

    D, I = Decision.__table__, Item.__table__
    rows = conn.execute(select(D.c.campaign_id, D.c.case_id, D.c.label, func.min(I.c.text))
                        .join(I, I.c.id == D.c.item_id).where(D.c.kind == "bulk", after, _stands())
                        .group_by(D.c.campaign_id, D.c.case_id, D.c.label, I.c.text_hash))
    return len({(("campaign", c) if c is not None else ("case", k), lab, template_hash(t)) for c, k, lab, t in rows})


def _stands() -> Any:
    """The decisions `retrain_due` counts (new ones, and the champion's for the override rate): the
    labels of record only, none a later decision superseded (a correction, an undo, an appeal's
    outcome: four decisions each corrected once counted as eight), and none an undo wrote (a
    restoring row, which supersedes its "undo" row, re-asserts a decision counted already): cases
    decided and taken back at once made a retrain due with no label changed."""
    undo = aliased(Decision.__table__)
    D = Decision.__table__
    return (~exists().where(undo.c.supersedes_id == D.c.id)
            & ~exists().where(undo.c.id == D.c.supersedes_id, undo.c.kind == "undo"))


def record_retrain_failure(store: "Store", actor: Actor, trigger: str, exc: BaseException) -> None:
    """Audit an automatic retrain that raised (`model.retrain_failed`: why it started, the error),
    so that `retrain_due` backs off instead of retraining again at the next check."""
    from models.registry import champion

    champ = champion(store)
    with store.begin() as conn:
        audit.record(conn, actor, RETRAIN_FAILED, "model_version", champ["id"] if champ else None,
                     {"trigger": trigger, "error": f"{type(exc).__name__}: {exc}"[:500]})


@contextmanager
def failure_recorded(store: "Store", actor: Actor, trigger: str) -> Iterator[None]:
    """Run an automatic retrain (cron's `--if-due`, serve's check): an exception is audited by
    `record_retrain_failure` and raised again. Another retrain holding the lock (`RetrainBusy`)
    and a champion replaced meanwhile (`PromotionRefused`, audited by itself) are not failures."""
    try:
        yield
    except (RetrainBusy, PromotionRefused):
        raise
    except Exception as exc:
        try:
            record_retrain_failure(store, actor, trigger, exc)
        except Exception as err:  # noqa: BLE001 - the store itself may be what failed: keep the first error
            exc.add_note(f"(the failure could not be recorded either: {err})")
        raise
