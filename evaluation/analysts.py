"""Analyst quality, for leads: QA pass rate, agreement with gold and with peers, override rate,
throughput and rework, each with its n (and an interval where it is a rate).

Why: a lead coaching an analyst needs to know whether a low figure is a pattern or three unlucky
cases. Shown only to roles with the `analyst_quality` permission (lead, admin: configs/roles.yaml),
one analyst per row **sorted by name**, never by a score: this is a coaching view, not a league
table.

Definitions:
- QA pass rate: of an analyst's decisions that a lead later re-reviewed blind (a QA-audit
  decision by someone else on the same item: the decision the answer re-reviewed, a campaign
  copy's bulk decision included), the share where the re-review gave the same label (the label
  the QA case ended with, its corrections included).
- Gold agreement: on calibration copies, the share of the analyst's labels equal to the item's
  label of record decided by someone else (review, QA audit, appeal, escalation), and Cohen's
  kappa between the two. One answer per analyst and item (their latest): an item drawn into two
  calibration sets counted twice for whoever answered both.
- Peer agreement: on calibration items, every (analyst, other rater) pair on the same item (each
  rater's latest answer, whichever set asked): the share of equal labels and Cohen's kappa. Its
  interval is as sure as the items, not the pairs (`peer_items`): one answer per item.
- Kappa is None (`kappa_note` says why) when both sides gave one and the same label throughout:
  chance agreement is then 1 and kappa 0/0, undefined; it read as a perfect 1.0.
- Override rate: share of the analyst's first judgements of the model's suggestion that overruled
  it (`data.first_judgements`: a correction is rework, not a judgement of the model), the rule of
  the report's override rate, so the analysts' counts add up to it.
- Throughput: decisions per day with at least one decision (active day). A campaign decided in
  one action (its "bulk" rows, one per distinct text) is one decision here: one click read as
  hundreds. Override and rework rates keep one per text, the report's rule.
- Rework: share of the analyst's original decisions whose label or action no longer stands at
  the end of their chain of later decisions (a correction, an appeal reversal). A change that a
  later one (an appeal) reversed back to the analyst's label is no rework of theirs: the
  corrector's mistake read as the original decider's.
- Decisions taken back with undo, and the rows an undo restored, count nowhere (`taken_back`).
  A calibration answer counts only live (`live_calibration`): a lead's correction of it is the
  lead's label, not the rater's, so that answer drops out rather than show agreement the rater
  never gave; the rater's own correction and an answer an undo restored count as theirs.
- Label errors: the analyst's decisions the confident-learning scan (`labeling.label_errors`)
  queued for a lead's re-review, and of them how many the lead corrected (confirmed errors) and
  confirmed correct; the rest are pending. Zeros where no scan has queued any.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from core.hooks import check_permission
from core.labels import current_labels
from core.principals import Actor
from core.schema import DECISION_KINDS
from core.store import Store
from labeling.label_errors import LABEL_ERROR_COUNTS, tally_label_errors
from labeling.rereview import as_acts

from .config import EvaluationConfig
from .data import decision_events, first_judgements, taken_back
from .estimates import proportion, ratio_estimate, wilson
from .metrics import cohen_kappa

JUDGED = ("review", "qa_audit", "bulk", "escalation")  # acts by an analyst on a case of their own


def qa_pass_pairs(events: Sequence[Mapping[str, Any]], left_out: Sequence[Mapping[str, Any]] = ()
                  ) -> list[tuple[str, bool]]:
    """(analyst, passed) for every QA-audit decision that re-reviewed someone else's decision.

    The re-reviewed decision is the one the answer names (`rereviews_id`, `labeling.rereview.as_acts`;
    found in `events` or in `left_out`, the bulk copies `_left_out` reads back) when it is a live
    decision of kinds `JUDGED` by another reviewer: the latest earlier one left in the events was,
    for a re-reviewed campaign copy, the decision the bulk one had replaced, whose analyst took the
    QA fail. Otherwise (an answer from before re-reviews named it, an undo-restored row, an appeal
    outcome) it is the latest earlier one on the item (of kinds `JUDGED`) by another reviewer; but
    an answer naming a live decision of its own reviewer checks nobody (the fallback credited the
    QA verdict to whoever decided the item before that reviewer's own, superseded, decision).
    Passed when the labels agree, the answer's label being the last of its corrections in the QA
    case (a re-reviewer's corrected slip read as the analyst's fail, though an undone one counted
    nowhere). Undone decisions and restored rows take no part."""
    gone = taken_back(events)
    acts = as_acts(events)
    by_id = {**{e["id"]: e for e in left_out}, **{e["id"]: e for e in acts}}
    fixed = {e["supersedes_id"]: e for e in acts if e["kind"] == "qa_audit" and e["supersedes_id"] in by_id
             and e["id"] not in gone and e["case_id"] == by_id[e["supersedes_id"]]["case_id"]}

    def verdict(answer: Mapping[str, Any], analyst: Any) -> Any:
        """The label the QA case ended with: the answer's own corrections, not the analyst's."""
        seen = {answer["id"]}
        while answer["id"] in fixed and fixed[answer["id"]]["reviewer"] != analyst \
                and fixed[answer["id"]]["id"] not in seen:
            answer = fixed[answer["id"]]
            seen.add(answer["id"])
        return answer["label"]

    by_item: dict[str, list[Mapping[str, Any]]] = {}
    pairs: list[tuple[str, bool]] = []
    for e in sorted(acts, key=lambda e: e["id"]):  # store order (`core.labels.record_key`), not app clocks
        if e["item_id"] is None or e["id"] in gone:
            continue
        if e["kind"] == "qa_audit" and e["supersedes_id"] is None:  # a correction keeps its kind: not a re-review
            named = by_id.get(e.get("rereviews_id"))
            if named is not None and named["id"] not in gone and str(named["reviewer"]) == str(e["reviewer"]):
                earlier = []  # a re-review of one's own decision (rows from before it was refused) checks nobody
            elif named is not None and named["id"] not in gone and named["kind"] in JUDGED \
                    and named["reviewer"] != e["reviewer"]:
                earlier = [named]
            else:
                earlier = [p for p in by_item.get(e["item_id"], []) if p["reviewer"] != e["reviewer"]]
            if earlier:
                who = earlier[-1]["reviewer"]
                pairs.append((str(who), earlier[-1]["label"] == verdict(e, who)))
        if e["kind"] in JUDGED:
            by_item.setdefault(e["item_id"], []).append(e)
    return pairs


def live_calibration(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The calibration answers that count for agreement: one per rater and item, each the end of
    its chain of corrections (nothing supersedes it, so not undone) **and by the rater who gave
    the first answer of that chain**. Why: a lead's correction of an answer is the lead's label;
    counted as a further rater it made the item look 3-rated, credited to the rater it would show
    agreement they never gave, so the answer drops out. The rater's own correction, and their
    answer an undo restored, count as theirs. `events` should hold every decision kind (the
    "undo" rows link the chains); returns the counted "calibration" rows."""
    by_id = {e["id"]: e for e in events}
    superseded = {e["supersedes_id"] for e in events if e["supersedes_id"] is not None}
    out = []
    for e in events:
        if e["kind"] != "calibration" or e["id"] in superseded:
            continue
        root, seen = e, {e["id"]}
        while root["supersedes_id"] in by_id and root["supersedes_id"] not in seen:
            root = by_id[root["supersedes_id"]]
            seen.add(root["id"])
        if root["kind"] == "calibration" and root["reviewer"] == e["reviewer"]:
            out.append(e)
    return out


def _latest_answers(calibration: Sequence[Mapping[str, Any]]) -> dict[Any, dict[str, Mapping[str, Any]]]:
    """item -> {rater: their latest answer}: one answer per rater and item, whichever calibration
    set asked (an item drawn into two sets was counted twice for whoever answered both)."""
    out: dict[Any, dict[str, Mapping[str, Any]]] = {}
    for e in sorted(calibration, key=lambda e: e["id"]):
        out.setdefault(e["item_id"], {})[str(e["reviewer"])] = e
    return out


def gold_pairs(calibration: Sequence[Mapping[str, Any]], gold: Mapping[str, Mapping[str, Any]]
               ) -> dict[str, list[tuple[str, str]]]:
    """analyst -> [(their calibration label, the gold label)] where a gold label by someone else
    exists, one per analyst and item (`_latest_answers`)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for item, raters in _latest_answers(calibration).items():
        g = gold.get(item)
        for who, e in raters.items():
            if g is not None and g["reviewer"] != e["reviewer"]:
                out.setdefault(who, []).append((e["label"], g["label"]))
    return out


def peer_pairs(calibration: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """analyst -> [(their label, a peer's label)] over every other rater of the same calibration
    item, one answer per rater and item (`_latest_answers`)."""
    by_item = {item: {who: e["label"] for who, e in raters.items()}
               for item, raters in _latest_answers(calibration).items()}
    out: dict[str, list[tuple[str, str]]] = {}
    for raters in by_item.values():
        for a, la in raters.items():
            for b, lb in raters.items():
                if a != b:
                    out.setdefault(a, []).append((la, lb))
    return out


def peer_items(calibration: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, int]]]:
    """analyst -> one (equal labels, peers) per calibration item they rated beside others: the
    units of `peer_pairs`' interval. Why: an item's pairs are one answer of the analyst set beside
    each peer, not independent trials; with ten raters on one item, 9 of 9 pairs read as
    [0.77, 1.0], the certainty of nine items from one."""
    out: dict[str, list[tuple[int, int]]] = {}
    for raters in _latest_answers(calibration).values():
        labels = {who: e["label"] for who, e in raters.items()}
        for a, la in labels.items():
            peers = [lb for b, lb in labels.items() if b != a]
            if peers:
                out.setdefault(a, []).append((sum(la == lb for lb in peers), len(peers)))
    return out


def rework_flags(events: Sequence[Mapping[str, Any]], left_out: Sequence[Mapping[str, Any]] = ()
                 ) -> dict[str, list[bool]]:
    """analyst -> one flag per original decision (superseding nothing): whether the label and
    action standing at the end of its chain differ from its own. A decision undone and a row an
    undo restored are no original; an undone correction changes nothing (its undo restored the
    label), nor does a change an appeal reversed back to the analyst's label (counted against the
    original decider, it was the corrector's mistake). `left_out`: decisions the events leave out
    that may change one of them (a campaign decision's copy, collapsed to one per text, that
    superseded an analyst's decision of that copy: without it the same change counted as rework
    or not by which copy the analyst had decided)."""
    by_id = {e["id"]: e for e in events}
    gone = taken_back(events)
    after: dict[int, Mapping[str, Any]] = {}  # decision id -> the (latest) decision superseding it
    for e in sorted([*events, *(d for d in left_out if d["id"] not in by_id)], key=lambda e: e["id"]):
        if e["supersedes_id"] is not None:
            after[e["supersedes_id"]] = e

    def standing(e: Mapping[str, Any]) -> tuple[Any, Any]:
        """(label, action) at the end of the chain from `e`: its last decision that is no "undo"
        row (an undo's restoring row carries the label it restored)."""
        last, seen = e, {e["id"]}
        while e["id"] in after and after[e["id"]]["id"] not in seen:
            e = after[e["id"]]
            seen.add(e["id"])
            if e["kind"] != "undo":
                last = e
        return last["label"], last["action"]

    out: dict[str, list[bool]] = {}
    for e in events:
        if e["supersedes_id"] is None and e["kind"] in JUDGED and e["id"] not in gone:
            out.setdefault(str(e["reviewer"]), []).append(standing(e) != (e["label"], e["action"]))
    return out


def _agreement(pairs: Sequence[tuple[str, str]], conf: float,
               items: Optional[Sequence[tuple[int, int]]] = None) -> dict[str, Any]:
    """The share of equal labels with its interval, and Cohen's kappa; kappa None with a
    `kappa_note` where it is undefined: no pairs ("not enough data": 0 or 1 rater), or one and the
    same label on both sides (chance agreement 1, kappa 0/0; `metrics.cohen_kappa` gives 1.0
    there, sklearn NaN). `items`: the pairs grouped by item (`peer_items`); where an item gave
    several, the interval is Wilson's at the effective n of the ratio estimator over items
    (`estimates.ratio_estimate`), at most the items: one answer per item, however many peers it
    is set beside."""
    est = proportion(sum(a == b for a, b in pairs), len(pairs), conf)
    if items and len(items) < len(pairs):
        n_eff = min(float(len(items)), ratio_estimate([k for k, _ in items], [n for _, n in items])["n_eff"])
        lo, hi = wilson(est["estimate"] * n_eff, n_eff, conf)
        est.update(lo=lo, hi=hi, items=len(items), n_eff=n_eff, method="wilson-by-item")
    if not pairs:  # 0 or 1 rater: said in words, as the report's table shows it, never NaN
        est["kappa"], est["kappa_note"] = None, "not enough data: no pairs"
    elif len({lab for pair in pairs for lab in pair}) < 2:
        est["kappa"], est["kappa_note"] = None, "undefined: one label only on both sides"
    else:
        est["kappa"], est["kappa_note"] = cohen_kappa([a for a, _ in pairs], [b for _, b in pairs]), None
    return est


def _act(e: Mapping[str, Any]) -> Any:
    """One decision act: a campaign decided in one action writes a "bulk" row per copy (one per
    distinct text after the collapse), all of its case and of one moment."""
    return ("bulk", e["case_id"], e["created_at"]) if e["kind"] == "bulk" else e["id"]


def analyst_table(events: Sequence[Mapping[str, Any]], gold: Mapping[str, Mapping[str, Any]],
                  conf: float = 0.9, label_errors: Optional[Mapping[str, Mapping[str, int]]] = None,
                  left_out: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """One row per analyst, sorted by name: every figure of the module doc, each with its n.

    `label_errors`: `labeling.label_errors.tally_label_errors` per analyst; an analyst it names
    gets a row even without a decision of `JUDGED` kinds, so no flagged decision drops out.
    `events` should include the "undo" rows: undone decisions and restored rows are no judgement.
    `left_out`: decisions `events` leave out (`_left_out`: collapsed bulk copies) that QA pass rates
    and rework must still see."""
    label_errors = label_errors or {}
    gone = taken_back(events)
    judged = [e for e in events if e["kind"] in JUDGED and e["id"] not in gone]
    first = {e["id"] for e in first_judgements(events) if e["kind"] in JUDGED and e.get("model_label")}
    calibration = live_calibration(events)
    qa: dict[str, list[bool]] = {}
    for who, ok in qa_pass_pairs(events, left_out):
        qa.setdefault(who, []).append(ok)
    golds, peers, rework = gold_pairs(calibration, gold), peer_pairs(calibration), rework_flags(events, left_out)
    peer_units = peer_items(calibration)
    raters = {str(e["reviewer"]) for e in events  # whoever answered calibration, even if that answer drops out
              if e["kind"] == "calibration" and e["supersedes_id"] is None and e["id"] not in gone}
    names = sorted({str(e["reviewer"]) for e in judged} | {str(e["reviewer"]) for e in calibration}
                   | raters | set(label_errors))
    rows = []
    for name in names:
        mine = [e for e in judged if str(e["reviewer"]) == name]
        with_model = [e for e in mine if e["id"] in first]
        acts = {_act(e) for e in mine}
        days = {e["created_at"].date() for e in mine}
        passed = qa.get(name, [])
        flags = rework.get(name, [])
        rows.append({
            "analyst": name, "decisions": len(acts), "active_days": len(days),
            "per_active_day": (len(acts) / len(days)) if days else None,
            "qa_pass_rate": proportion(sum(passed), len(passed), conf),
            "gold_agreement": _agreement(golds.get(name, []), conf),
            "peer_agreement": _agreement(peers.get(name, []), conf, peer_units.get(name)),
            "override_rate": proportion(sum(bool(e["is_override"]) for e in with_model), len(with_model), conf),
            "rework_rate": proportion(sum(flags), len(flags), conf),
            "label_errors": dict(label_errors.get(name) or dict.fromkeys(LABEL_ERROR_COUNTS, 0)),
        })
    return rows


def analyst_quality(store: Store, actor: Actor, config: EvaluationConfig,
                    analyst: Optional[str] = None) -> dict[str, Any]:
    """The analyst table from the store (one analyst, or all). Needs `analyst_quality` (leads)."""
    check_permission(actor, "analyst_quality", f"analyst {analyst}" if analyst else "analysts")
    events = decision_events(store, kinds=DECISION_KINDS)
    cal_sets = _calibration_sets(store, [e["case_id"] for e in events if e["kind"] == "calibration"])
    for e in events:
        e["calibration_set"] = cal_sets.get(e["case_id"])
    gold = current_labels(store, {e["item_id"] for e in events if e["kind"] == "calibration" and e["item_id"]})
    label_errors = _label_errors(store)
    rows = analyst_table(events, gold, config.confidence, label_errors, _left_out(store, events))
    if analyst is not None:
        rows = [r for r in rows if r["analyst"] == analyst]
    return {"analysts": rows, "sorted_by": "name", "confidence": config.confidence,
            "label_errors_queued": sum(r["queued"] for r in label_errors.values())}


def _label_errors(store: Store) -> dict[str, dict[str, int]]:
    """Per analyst, the re-review cases of the label-error scan, found by their `label_error` meta:
    the evaluation config does not name the queue they sit in. A record that is no mapping counts
    nowhere and a reviewer that is no string is read as one (a hand-edited or corrupt row raised
    AttributeError or TypeError, and every lead's report lost its analyst part)."""
    from sqlalchemy import select

    from core.schema import Case

    C = Case.__table__
    with store.read() as conn:
        metas = conn.execute(select(C.c.meta).where(C.c.meta["label_error"].as_string().is_not(None))).scalars()
        infos = [m.get("label_error") for m in metas if isinstance(m, dict)]
    return tally_label_errors(dict(i, reviewer=None if i.get("reviewer") is None else str(i["reviewer"]))
                              for i in infos if isinstance(i, dict))


def _left_out(store: Store, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The bulk decisions `events` left out (copies collapsed to one per text,
    `data.one_per_labelling_act`) that a QA answer re-reviews or that supersede one of `events`:
    who decided a re-reviewed copy, and whose decision a campaign decision changed."""
    from sqlalchemy import select

    from core.schema import Decision

    D = Decision.__table__
    have = [e["id"] for e in events]
    named = sorted({e["rereviews_id"] for e in events if e.get("rereviews_id") is not None} - set(have))
    cols = (D.c.id, D.c.case_id, D.c.item_id, D.c.reviewer, D.c.kind, D.c.label, D.c.action, D.c.supersedes_id)
    out: dict[int, dict[str, Any]] = {}
    with store.read() as conn:
        for column, keys in ((D.c.supersedes_id, have), (D.c.id, named)):
            for i in range(0, len(keys), 900):  # SQLite's bound-parameter limit
                out.update({r["id"]: dict(r) for r in conn.execute(
                    select(*cols).where(D.c.kind == "bulk", column.in_(keys[i:i + 900]))).mappings()})
    seen = set(have)
    return [r for i, r in sorted(out.items()) if i not in seen]


def _calibration_sets(store: Store, case_ids: Sequence[Optional[int]]) -> dict[int, str]:
    from sqlalchemy import select

    from core.schema import Case

    C = Case.__table__
    ids = [c for c in dict.fromkeys(case_ids) if c is not None]
    out: dict[int, str] = {}
    with store.read() as conn:
        for i in range(0, len(ids), 900):
            out.update({cid: cs for cid, cs in conn.execute(
                select(C.c.id, C.c.calibration_set).where(C.c.id.in_(ids[i:i + 900]))).all()})
    return out
