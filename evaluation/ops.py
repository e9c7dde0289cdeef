"""Operations KPIs of a review team: volume, backlog, SLAs, speed, throughput, rework, appeals.

Pure functions over arrays (times as epoch seconds, NaN where missing) compute each figure; one
function, `ops_kpis`, reads the store and applies them. The queue simulation benchmark uses the
same functions, so the figures it prints mean what `workbench queues` shows.
Counts of the store as it stands (cases, per queue and state, backlog, overdue) are SQL
aggregates; the rest can be asked over a KPI period (`since`, `in_period`: the Operations tab's),
and then only that period's cases and decisions are read.

Definitions: time to first action = case creation to first claim (a human opened it); time to
resolution = creation to decision; an SLA is met when the case is decided by its due time,
missed when decided later or still undecided after it, and pending otherwise. A case closed
with no decision (a merged campaign's, one behind an appeal: `closed_without_decision`) is in
neither, nor in the time to resolution: it is counted apart. The rework rate counts labelling
acts (a campaign decided in one action: one per text), the override rate's rule.

Escalations: a case entering the escalation queue gets a fresh window (`due_at` = escalation time +
its tier's SLA) and keeps its earlier due time in meta `due_before_escalation`. The commitment
made when the case was created is that earlier due time, so `sla` (per tier) and the
`commitment` of `sla_by_queue` (per home queue) count against it: a case escalated after its
SLA lapsed and decided inside the escalation's new window is a miss there. The escalation's own
window is reported apart (`sla_escalation` per tier, `escalation_window` per home queue).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
from sqlalchemy import and_, case as sql_case, func, or_, select

from core.permissions import refusal
from core.plotting import label_text, pyplot, serialised
from core.principals import Actor
from core.schema import Case, Decision, utcnow
from labeling.cases import filter_cases
from labeling.queue_config import QueueConfig
from labeling.rereview import as_acts

from .data import collapse_bulk, first_judgements, taken_back
from .estimates import proportion

WAITING_STATES = ("open", "escalated", "claimed")


def _f(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=float)


def rate(flags: Sequence[bool]) -> Optional[float]:
    """Share of true flags; None when there are none to count."""
    arr = np.asarray(flags, dtype=bool)
    return float(arr.mean()) if arr.size else None


def queue_volume(queues: Sequence[str], states: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per queue: cases per state, `total`, and `backlog` (waiting or claimed, not yet decided)."""
    out: dict[str, dict[str, int]] = {}
    for q, s in zip(queues, states):
        row = out.setdefault(q, {"total": 0, "backlog": 0})
        row[s] = row.get(s, 0) + 1
        row["total"] += 1
        row["backlog"] += int(s in WAITING_STATES)
    return dict(sorted(out.items()))


def sla_compliance(tiers: Sequence[Optional[str]], due: Any, resolved: Any, now: float) -> dict[str, dict[str, Any]]:
    """Per tier: cases, met, missed, pending and `rate` = met / (met + missed) (None if none closed).

    `due` and `resolved` are epoch seconds (NaN = not resolved); `now` decides undecided cases.
    """
    due, resolved = _f(due), _f(resolved)
    done = ~np.isnan(resolved)
    met = done & (resolved <= due)
    missed = (done & (resolved > due)) | (~done & (now > due))
    out: dict[str, dict[str, Any]] = {}
    tiers_arr = np.asarray([t if t is not None else "" for t in tiers], dtype=object)
    for tier in sorted({t for t in tiers_arr if t}):
        m = tiers_arr == tier
        n_met, n_missed = int((met & m).sum()), int((missed & m).sum())
        out[tier] = {"cases": int(m.sum()), "met": n_met, "missed": n_missed,
                     "pending": int(m.sum()) - n_met - n_missed,
                     "rate": (n_met / (n_met + n_missed)) if (n_met + n_missed) else None}
    return out


def commitment_due(due: Any, due_before: Any) -> np.ndarray:
    """The due time first committed to: `due_before` (the due time a case had before it was
    escalated; NaN: never escalated, or it had none) where known, else `due`."""
    due, due_before = _f(due), _f(due_before)
    return np.where(np.isnan(due_before), due, due_before)


def sla_by_queue(home: Sequence[str], escalated: Sequence[bool], due: Any, due_before: Any, resolved: Any,
                 now: float) -> dict[str, dict[str, Any]]:
    """Per home queue (where a case was before any escalation): `commitment` = SLA compliance
    against the due time first committed to, and `escalation_window` = compliance of the
    escalations out of that queue against the escalation's own window (None: no escalation).
    Apart, because a reset window made a lapsed commitment look met."""
    orig = commitment_due(due, due_before)
    esc = np.asarray(escalated, dtype=bool)
    home_arr = np.asarray(list(home), dtype=object)
    out: dict[str, dict[str, Any]] = {}
    for q in sorted({str(h) for h in home_arr}):
        m = home_arr == q
        window = sla_compliance(["q"] * int((m & esc).sum()), _f(due)[m & esc], _f(resolved)[m & esc], now)
        out[q] = {"commitment": sla_compliance(["q"] * int(m.sum()), orig[m], _f(resolved)[m], now).get("q"),
                  "escalation_window": window.get("q")}
    return out


def median_minutes(start: Any, end: Any) -> Optional[float]:
    """Median of (end - start) in minutes over pairs where both are known; None if there are none."""
    start, end = _f(start), _f(end)
    ok = ~np.isnan(start) & ~np.isnan(end)
    return float(np.median(end[ok] - start[ok]) / 60.0) if ok.any() else None


def per_analyst(reviewers: Sequence[str], case_ids: Sequence[Any]) -> dict[str, int]:
    """Distinct cases resolved per analyst, most first."""
    seen: dict[str, set[Any]] = {}
    for r, c in zip(reviewers, case_ids):
        seen.setdefault(r, set()).add(c)
    return dict(sorted(((r, len(c)) for r, c in seen.items()), key=lambda kv: (-kv[1], kv[0])))


def rework_rate(ids: Sequence[int], supersedes: Sequence[Optional[int]], labels: Sequence[str],
                actions: Sequence[str], acts: Optional[Sequence[Any]] = None) -> Optional[float]:
    """Share of original decisions later superseded by one with a different label or action.

    Originals are decisions that supersede nothing; None when there are none. `acts`: the
    labelling act of each decision (`act_keys`), counted once (see `rework_counts`).
    """
    k, n = rework_counts(ids, supersedes, labels, actions, acts)
    return k / n if n else None


def rework_counts(ids: Sequence[int], supersedes: Sequence[Optional[int]], labels: Sequence[str],
                  actions: Sequence[str], acts: Optional[Sequence[Any]] = None) -> tuple[int, int]:
    """(originals later changed, originals): the counts behind `rework_rate`.

    `acts` (default: each decision its own act) groups the decisions into labelling acts: a
    campaign decided in one action wrote one row per member, and counted per row its 300 copies
    of one text were 300 originals (one analyst's reworked decision read as 1/301, not 1/2). An
    act is an original when one of its rows is, and reworked when one of those rows was changed."""
    act_of = dict(zip(ids, acts if acts is not None else ids))
    by_id = {i: (lab, act) for i, lab, act in zip(ids, labels, actions)}
    originals = [i for i, s in zip(ids, supersedes) if s is None]
    if not originals:
        return 0, 0
    changed = set()
    for i, s, lab, act in zip(ids, supersedes, labels, actions):
        if s is not None and s in by_id and by_id[s] != (lab, act):
            changed.add(s)
    # follow chains back to their original decision
    parent = {i: s for i, s in zip(ids, supersedes) if s is not None}
    roots = set()
    for s in changed:
        while s in parent:
            s = parent[s]
        roots.add(s)
    return len({act_of[i] for i in roots & set(originals)}), len({act_of[i] for i in originals})


def act_keys(rows: Sequence[Mapping[str, Any]], hashes: Mapping[Any, str]) -> list[Any]:
    """The labelling act of each decision row, the rule of `data.collapse_bulk`: a "bulk" row is
    (case, label, text hash), one per distinct text of a campaign decision; any other row its id."""
    return [("bulk", r["case_id"], r["label"], hashes.get(r["item_id"], r["item_id"])) if r["kind"] == "bulk"
            else r["id"] for r in rows]


def _text_hashes(conn: Any, rows: Sequence[Mapping[str, Any]]) -> dict[Any, str]:
    """Item id -> text hash of the items of the "bulk" rows (chunked: SQLite's parameter limit)."""
    from core.schema import Item

    I = Item.__table__
    ids = sorted({r["item_id"] for r in rows if r["kind"] == "bulk" and r["item_id"] is not None})
    out: dict[Any, str] = {}
    for i in range(0, len(ids), 900):
        out.update(dict(conn.execute(select(I.c.id, I.c.text_hash).where(I.c.id.in_(ids[i:i + 900]))).all()))
    return out


def appeals_upheld_rate(outcomes: Sequence[Optional[str]]) -> Optional[float]:
    """Share of resolved appeals that were upheld (decision reversed): a false-positive signal."""
    done = [o for o in outcomes if o]
    return (sum(o == "reverse" for o in done) / len(done)) if done else None


def harm_exposure(wait_hours: Any, weights: Any) -> float:
    """Severity-weighted harm exposure: sum of hours each violating item stayed up times its weight."""
    return float(np.sum(_f(wait_hours) * _f(weights)))


# ---------------------------------------------------------------------------------------------
def _naive_utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo is not None else t


def _epoch(values: Iterable[Optional[dt.datetime]]) -> np.ndarray:
    base = dt.datetime(1970, 1, 1)
    return np.array([(v - base).total_seconds() if v is not None else np.nan for v in values], dtype=float)


def _due_before(case: Mapping[str, Any]) -> Optional[dt.datetime]:
    """A case's due time before its escalation (meta `due_before_escalation`), naive UTC; None when
    it was never escalated or had none. A value that is no ISO time raises a one-line error."""
    v = (case["meta"] or {}).get("due_before_escalation")
    if v is None:
        return None
    try:
        t = dt.datetime.fromisoformat(str(v))
    except ValueError:
        raise ValueError(f"case {case['id']}: meta field 'due_before_escalation' is not an ISO time: {v!r}") from None
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo is not None else t


def is_appeal(case: Mapping[str, Any], config: QueueConfig) -> bool:
    """An appeal case wherever it waits: in the appeals queue, filed as one (meta `appeal`), or
    escalated out of that queue (a store escalated before `escalation._check_escalatable` refused
    it), the rule of `labeling.decisions._is_appeal`. Why: counted by queue alone, such an appeal
    fell out of the appeals figures and into the review SLAs, times and escalation rate."""
    meta = case["meta"] if isinstance(case["meta"], dict) else {}
    return case["queue"] == config.appeals_queue or bool(meta.get("appeal")) \
        or meta.get("escalated_from") == config.appeals_queue


def _home(case: Mapping[str, Any], config: QueueConfig) -> str:
    """The queue a case came from: `escalated_from` for a case in the escalation queue."""
    if case["queue"] == config.escalation_queue:
        return str((case["meta"] or {}).get("escalated_from") or case["queue"])
    return str(case["queue"])


def closed_without_decision(case: Mapping[str, Any]) -> bool:
    """Whether a "decided" case was closed with no decision of anyone's: a merged campaign's case
    (meta `closed.without_decision`, `clustering.service`), one closed behind an appeal's outcome
    (`closed_behind_appeal`, `labeling.appeal_holds`), a label-error re-review the scan closed as
    superseded. Why: the closing time read as a decision, so a merge or a scan "met" SLAs nobody
    met and pulled the time to resolution toward the moment it ran; the item's work lies elsewhere."""
    meta = case["meta"] if isinstance(case["meta"], dict) else {}
    closed, review = meta.get("closed"), meta.get("label_error")
    return case["state"] == "decided" and bool(
        (isinstance(closed, dict) and closed.get("without_decision")) or meta.get("closed_behind_appeal")
        or (isinstance(review, dict) and review.get("outcome") == "superseded"))


ANALYST_FIGURES = "analyst_quality"  # the permission per-analyst figures need (leads; configs/roles.yaml)


def in_period(since: dt.datetime) -> Any:
    """Cases of a KPI period: created or decided since `since`, or not decided yet (the work at
    hand, however old). Why: the Operations tab read every case and decision ever stored on each
    refresh; a case decided before the period changes no figure of it and is no longer read."""
    C = Case.__table__
    return or_(C.c.created_at >= since, C.c.resolved_at >= since, C.c.state != "decided")


def _stock(conn: Any, now: dt.datetime, queue: Optional[str], policy: Optional[str],
           surface: Optional[str]) -> tuple[dict[str, dict[str, int]], int, int, int]:
    """(cases per queue and state as `queue_volume`, cases, backlog, overdue) over every case, as
    COUNT ... GROUP BY queue, state: one row per queue and state read, however many cases."""
    C = Case.__table__
    late = and_(C.c.state.in_(WAITING_STATES), C.c.due_at.is_not(None), C.c.due_at < now,
                or_(C.c.calibration_set.is_(None), C.c.calibration_set == ""))  # calibration owes no SLA
    q = filter_cases(select(C.c.queue, C.c.state, func.count().label("n"),
                            func.coalesce(func.sum(sql_case((late, 1), else_=0)), 0).label("late")),
                     queue=queue, policy=policy, surface=surface).group_by(C.c.queue, C.c.state)
    queues: dict[str, dict[str, int]] = {}
    n_cases = n_backlog = n_late = 0
    for r in conn.execute(q).all():
        row = queues.setdefault(str(r.queue), {"total": 0, "backlog": 0})
        n = int(r.n)
        row[r.state] = row.get(r.state, 0) + n
        row["total"] += n
        row["backlog"] += n * int(r.state in WAITING_STATES)
        n_cases, n_late = n_cases + n, n_late + int(r.late or 0)
        n_backlog += n * int(r.state in WAITING_STATES)
    return dict(sorted(queues.items())), n_cases, n_backlog, n_late


def ops_kpis(store: Any, now: Optional[dt.datetime] = None, queue: Optional[str] = None,
             policy: Optional[str] = None, surface: Optional[str] = None,
             *, config: QueueConfig, actor: Optional[Actor] = None,
             since: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Every KPI above, computed from the store; filters apply to cases (and their decisions).

    `cases`, `queues`, `backlog` and `overdue` count every case (SQL aggregates). The rest (SLAs,
    times, decisions, rates, appeals) are over the KPI period from `since` (`in_period`; the
    decisions of its cases), every case when None: only the period's rows are read.

    Per-analyst figures (`resolved_per_analyst`) are for whoever may see analyst quality
    (`analyst_quality`, leads): for `actor` without it, or no actor, they are None and
    `resolved_per_analyst_refused` says why; team totals are everyone's. Every door (UI tab,
    command line) passes its principal here, so the rule is this one place."""
    C, D = Case.__table__, Decision.__table__
    now = _naive_utc(now or utcnow())  # the store keeps naive UTC: an aware time compared with it raised TypeError
    since = _naive_utc(since) if since is not None else None
    q = filter_cases(select(C.c.id, C.c.queue, C.c.state, C.c.severity, C.c.created_at, C.c.due_at,
                            C.c.first_action_at, C.c.resolved_at, C.c.escalation_reason, C.c.calibration_set,
                            C.c.is_audit, C.c.meta, C.c.predicted_label), queue=queue, policy=policy, surface=surface)
    ids = filter_cases(select(C.c.id), queue=queue, policy=policy, surface=surface)
    if since is not None:
        q, ids = q.where(in_period(since)), ids.where(in_period(since))
    with store.read() as conn:
        queues, n_cases, n_backlog, n_overdue = _stock(conn, now, queue, policy, surface)
        cases = conn.execute(q).mappings().all()
        dq = select(D.c.id, D.c.case_id, D.c.item_id, D.c.reviewer, D.c.kind, D.c.label, D.c.action,
                    D.c.supersedes_id, D.c.is_override, D.c.model_label)
        if queue or policy or surface:  # the filtered cases' decisions, asked of the store
            dq = dq.where(D.c.case_id.in_(ids))
        elif since is not None:  # the period's cases' decisions, and those of no case made in it
            dq = dq.where(or_(D.c.case_id.in_(ids), and_(D.c.case_id.is_(None), D.c.created_at >= since)))
        decs = as_acts(conn.execute(dq).mappings())  # a re-review answer is a judgement of its own, not rework
        hashes = _text_hashes(conn, decs)
    acts = collapse_bulk([dict(d) for d in decs], hashes)  # `data.one_per_labelling_act`, hashes read once
    work = [c for c in cases if not c["calibration_set"] and not is_appeal(c, config)]
    unworked = [c for c in work if closed_without_decision(c)]  # left out of SLAs and times, counted apart
    timed = [c for c in work if not closed_without_decision(c)]
    appeals = [c for c in cases if is_appeal(c, config)]
    # calibration copies are practice, and an "undo" row takes a decision back rather than making one:
    # neither it, the decision it took back nor the row it restored (a copy) is a decision of anyone's
    gone = taken_back(decs)
    enforce = [d for d in decs if d["kind"] not in ("calibration", "undo") and d["id"] not in gone]
    acts_enforce = [d for d in acts if d["kind"] not in ("calibration", "undo") and d["id"] not in gone]
    now_s = float(_epoch([now])[0])
    refused = refusal(actor, ANALYST_FIGURES, "per-analyst figures")
    # SLAs against the due time first committed to; escalations also against their own window
    w_due, w_before = _epoch(c["due_at"] for c in timed), _epoch(_due_before(c) for c in timed)
    w_done = _epoch(c["resolved_at"] for c in timed)
    w_esc = np.array([c["queue"] == config.escalation_queue for c in timed], dtype=bool)
    w_tiers = [c["severity"] for c in timed]
    # the commitment by the tier it was made at (an escalation may have raised it, e.g. P2 -> P0)
    w_first = [(c["meta"] or {}).get("severity_before_escalation", c["severity"]) for c in timed]
    # the override rate counts first judgements only, as the evaluation report does (`first_judgements`)
    judged = [bool(d["is_override"]) for d in first_judgements(acts)
              if d["kind"] not in ("calibration", "appeal") and d["model_label"]]
    upheld = [((c["meta"] or {}).get("appeal") or {}).get("outcome") for c in appeals]
    upheld = [o for o in upheld if o]
    # rework per labelling act, the report's rule: a campaign decision is one original per text
    rework = rework_counts([d["id"] for d in enforce], [d["supersedes_id"] for d in enforce],
                           [d["label"] for d in enforce], [d["action"] for d in enforce], act_keys(enforce, hashes))
    # every rate below with its n and 90% Wilson interval (evaluation.estimates)
    intervals = {
        "override_rate": proportion(sum(judged), len(judged)),
        "rework_rate": proportion(*rework),
        "escalation_rate": proportion(sum(c["escalation_reason"] is not None for c in work), len(work)),
        "audit_share": proportion(sum(bool(c["is_audit"]) for c in work), len(work)),
        "appeals_upheld_rate": proportion(sum(o == "reverse" for o in upheld), len(upheld)),
    }
    return {
        "as_of": now.isoformat(timespec="seconds"),
        "filters": {"queue": queue, "policy": policy, "surface": surface},
        "since": since.isoformat(timespec="seconds") if since is not None else None,
        "cases": n_cases,
        "closed_without_decision": len(unworked),
        "queues": queues,
        "backlog": n_backlog,
        "overdue": n_overdue,  # calibration copies carry their case's due time but owe no SLA (`_stock`)
        "sla": sla_compliance(w_first, commitment_due(w_due, w_before), w_done, now_s),
        "sla_escalation": sla_compliance([t for t, e in zip(w_tiers, w_esc) if e], w_due[w_esc], w_done[w_esc], now_s),
        "sla_by_queue": sla_by_queue([_home(c, config) for c in timed], w_esc, w_due, w_before, w_done, now_s),
        "median_minutes_to_first_action": median_minutes(_epoch(c["created_at"] for c in work),
                                                         _epoch(c["first_action_at"] for c in work)),
        "median_minutes_to_resolution": median_minutes(_epoch(c["created_at"] for c in timed),
                                                       _epoch(c["resolved_at"] for c in timed)),
        "resolved_per_analyst": None if refused else per_analyst([d["reviewer"] for d in enforce],
                                                                 [d["case_id"] for d in enforce]),
        "resolved_per_analyst_refused": refused,
        "decisions": len(enforce),
        "labelling_acts": len(acts_enforce),  # a bulk decision counts once per distinct text
        "override_rate": rate(judged),
        "rework_rate": (rework[0] / rework[1]) if rework[1] else None,
        "escalation_rate": rate([c["escalation_reason"] is not None for c in work]),
        "audit_share": rate([bool(c["is_audit"]) for c in work]),
        "appeals": len(appeals),
        "appeals_sla": sla_compliance(["appeal"] * len(appeals), _epoch(c["due_at"] for c in appeals),
                                      _epoch(c["resolved_at"] for c in appeals), now_s).get("appeal"),
        "appeals_upheld_rate": appeals_upheld_rate([((c["meta"] or {}).get("appeal") or {}).get("outcome")
                                                    for c in appeals]),
        "rate_intervals": intervals,
    }


@serialised
def plot_kpis(kpis: Mapping[str, Any], path: Any) -> str:
    """Write a PNG of the backlog per queue and the SLA compliance per tier; returns the path."""
    plt = pyplot()

    queues = kpis["queues"]
    tiers = [t for t, v in kpis["sla"].items() if v["met"] + v["missed"]]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1.6, 1]})
    names = list(queues)  # bars by position, labelled through `label_text` (config names)
    ys = range(len(names))
    a1.barh(ys, [queues[q]["backlog"] for q in names], color="#47a", label="backlog")
    a1.barh(ys, [queues[q]["total"] - queues[q]["backlog"] for q in names],
            left=[queues[q]["backlog"] for q in names], color="#bbb", label="done")
    a1.set_yticks(list(ys), [label_text(q) for q in names])
    # `as_of` is naive UTC: named so, or a reader in New York took 14:00 UTC for 14:00 their time
    a1.set_title(f"Cases per queue (as of {str(kpis['as_of']).replace('T', ' ')[:16]} UTC)"), a1.legend(loc="best")
    a2.bar(range(len(tiers)), [kpis["sla"][t]["rate"] for t in tiers], color="#4a7")
    a2.set_xticks(range(len(tiers)), [label_text(t) for t in tiers])
    a2.axhline(0.95, color="#c44", linestyle="--", linewidth=1)
    a2.set_ylim(0, 1.05), a2.set_title("SLA compliance per tier")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
