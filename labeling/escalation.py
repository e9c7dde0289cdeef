"""Escalation: a case moved to the escalation queue by an analyst, or by the SLA sweep.

`sweep` is the periodic upkeep (cron or the UI's timer): lapsed leases back to the queue,
cases whose SLA is about to lapse escalated, priorities refreshed (urgency grows with time).

The escalation queue holds an item once: a campaign case covers its members (deciding it
decides them), so when a campaign's case is in the escalation queue its members' own cases
are not escalated beside it. They wait in their own queues marked `covered_by` (`fold_covered`),
and an analyst escalating such a member adds the reason to the campaign's escalated case. Either
way the campaign's case takes the member's tier and due time where stricter; so does it when the
sweep finds a covered member's own SLA lapsing (`_raise_for_covered`): the member is not escalated
beside it, and its SLA would otherwise lapse unwatched.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Optional

import numpy as np
from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from core import audit
from core.hooks import check_permission
from core.principals import SYSTEM, Actor, actor_name
from core.schema import CampaignMember, Case
from core.store import Store
from core.taxonomy import Taxonomy
from core.text import free_text_error

from .cases import _lock_builds, case_view, inactive_campaign, of_live_campaign, unchanged
from .claims import _now, check_actionable, check_holder, lease_clock, lock_case, reclaim_expired
from .errors import QueueError
from .priority import ESCALATED_AT, PRIORITY_EPSILON, score_features, sla_lapsing, tier_weight
from .queue_config import QueueConfig

C = Case.__table__
CM = CampaignMember.__table__
LIVE = ("open", "escalated", "claimed")

def escalate(store: Store, taxonomy: Taxonomy, case_id: int, actor: Actor, reason: str, config: QueueConfig,
             severity: Optional[str] = None, now: Optional[dt.datetime] = None, *,
             holder_only: bool = False) -> dict[str, Any]:
    """Move a waiting or claimed case to the escalation queue with the reason recorded.

    `holder_only` (the Review screen): only a case `actor` still holds on a live lease, checked
    under the case's lock (`claims.check_holder`), so a hold lost meanwhile is never escalated."""
    check_request(taxonomy, reason, severity)
    asked, now = now, _now(now)
    check_permission(actor, "escalate", f"case {case_id}")
    actor = actor_name(actor)
    with store.begin() as conn:
        case = lock_case(conn, case_id)
        clock = lease_clock(conn, asked)  # leases on the store's clock (labeling.claims)
        if holder_only:
            check_holder(conn, case, actor, clock)
        _check_escalatable(case, config)
        if (status := inactive_campaign(conn, case["campaign_id"])) is not None:
            # nothing claims, sweeps or decides it (`of_live_campaign`): escalated, it waited unseen
            raise QueueError(f"case {case_id} is of campaign {case['campaign_id']}, which is {status}: its members "
                             f"joined another campaign, escalate that campaign's case instead")
        check_actionable(case, actor, clock)
        cover = _escalated_campaign_case(conn, config, case)
        if cover is not None:  # its campaign is already escalated: one entry per item
            tier, due = _escalated_tier(taxonomy, config, case, severity, now)
            if _already_folded(case, cover, actor, reason.strip(), tier):  # a retry: nothing new to add
                return dict(case_view(conn, cover["id"], with_history=False), folded_from=case_id, retried=True)
            _cover(conn, config, case, cover, now)
            _take_stricter(conn, taxonomy, config, cover["id"], [{"case_id": case_id, "by": actor,
                           "reason": reason.strip(), "severity": tier, "due_at": due}], actor, now)
            audit.record(conn, actor, "case.escalate", "case", case_id,
                         {"from_queue": case["queue"], "reason": reason.strip(), "severity": severity,
                          "folded_into": cover["id"]})
            view = case_view(conn, cover["id"], with_history=False)
            view["folded_from"] = case_id
            return view
        if _same_open_escalation(taxonomy, config, case, actor, reason.strip(), severity, now):
            return dict(case_view(conn, case_id, with_history=False), retried=True)  # a double submit or retry
        _move_to_escalation(conn, taxonomy, config, case, reason.strip(), now, severity, by=actor)
        audit.record(conn, actor, "case.escalate", "case", case_id,
                     {"from_queue": case["queue"], "reason": reason.strip(), "severity": severity})
        if case["campaign_id"] is not None:
            fold_covered(conn, taxonomy, config, now, [case_id])
        return case_view(conn, case_id, with_history=False)


def check_request(taxonomy: Taxonomy, reason: Optional[str], severity: Optional[str]) -> None:
    """Refuse, in one line, a reason or severity no escalation may carry (blank, over the free-text
    rule of `core.text`, an unknown tier): checked before any work, so `packets.escalate_with_packet`
    builds no packet for a request `escalate` would refuse."""
    for name, value in (("an escalation's reason", reason), ("a severity", severity)):
        if value is not None and not isinstance(value, str):  # a list from a hostile caller: no TypeError
            raise QueueError(f"{name} must be text, not {type(value).__name__}")
    if not reason or not reason.strip():
        raise QueueError("escalating needs a reason")
    if (bad := free_text_error(reason, "an escalation's reason")) is not None:
        raise QueueError(bad)
    if severity is not None and severity not in taxonomy.severities:
        raise QueueError(f"unknown severity {severity!r} (known: {', '.join(taxonomy.severities)})")


def _same_open_escalation(taxonomy: Taxonomy, config: QueueConfig, case: Mapping[str, Any], actor: str,
                          reason: str, severity: Optional[str], now: dt.datetime) -> bool:
    """True when escalating would repeat the open escalation as it stands (a double submit, a
    retry of the action): waiting in the escalation queue, by the same person, for the same
    reason, at no stricter tier. It is then left as it is: no second audit event, no new packet
    (`packets.escalate_with_packet`), its SLA clock not restarted."""
    if case["queue"] != config.escalation_queue or case["state"] != "escalated":
        return False
    if (case["meta"] or {}).get("escalated_by") != actor or case["escalation_reason"] != reason:
        return False
    return _escalated_tier(taxonomy, config, case, severity, now) == (case["severity"], case["due_at"])


def _already_folded(case: Mapping[str, Any], cover: Mapping[str, Any], actor: str, reason: str,
                    tier: Optional[str]) -> bool:
    """True when this member's escalation is already listed on its campaign's case, word for word."""
    if (case["meta"] or {}).get("covered_by") != cover["id"]:
        return False
    entry = {"case_id": case["id"], "by": actor, "reason": reason, "severity": tier}
    return any(e == entry for e in (cover["meta"] or {}).get("item_escalations", []))


def _check_escalatable(case: Mapping[str, Any], config: QueueConfig) -> None:
    """An appeal or a label-error re-review is settled only by its own path (`resolve_appeal`, the
    re-review's decision), with their permissions and separation of duties: escalated, it would be
    decided as an ordinary escalation case, by anyone, even whoever made the decision in question."""
    meta = case["meta"] or {}
    if case["queue"] == config.appeals_queue or meta.get("appeal"):
        raise QueueError(f"case {case['id']} is an appeal: resolve it (Appeals tab, or `workbench appeals "
                         f"resolve`) instead of escalating it")
    if meta.get("label_error"):
        raise QueueError(f"case {case['id']} re-reviews decision {meta['label_error'].get('decision_id')}: "
                         f"decide it as that re-review instead of escalating it")


def _escalated_campaign_case(conn: Connection, config: QueueConfig, case: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """The live campaign case in the escalation queue that covers this item case, if any."""
    if case["campaign_id"] is not None or not case["item_id"]:
        return None
    camp = conn.execute(select(CM.c.campaign_id).where(CM.c.item_id == case["item_id"])).scalar()
    if camp is None:
        return None
    row = conn.execute(select(C).where(C.c.campaign_id == camp, C.c.queue == config.escalation_queue,
                                       C.c.state.in_(LIVE)).order_by(C.c.id).limit(1)).mappings().first()
    return dict(row) if row else None


def _cover(conn: Connection, config: QueueConfig, case: Mapping[str, Any], cover: Mapping[str, Any],
           now: dt.datetime) -> bool:
    """Send an item case back to the queue it came from, marked as covered by its campaign's case;
    False when another writer changed it since it was read (e.g. a lead claimed it meanwhile)."""
    meta = dict(case["meta"] or {})
    home = meta.get("escalated_from") if case["queue"] == config.escalation_queue else case["queue"]
    home = home if home in config.queues and home != config.escalation_queue else config.default_queue
    meta["covered_by"] = cover["id"]
    return bool(conn.execute(update(C).where(unchanged(case["id"], case["state"], case["updated_at"])).values(
        queue=home, state="open", claimed_by=None, lease_expires_at=None, meta=meta, updated_at=now)).rowcount)


def fold_covered(conn: Connection, taxonomy: Taxonomy, config: QueueConfig, now: dt.datetime,
                 campaign_case_ids: Optional[list[int]] = None) -> int:
    """Members' own cases waiting in the escalation queue beside their campaign's escalated case
    go back to their queues, covered by it (a held one stays with its holder), and it takes their
    tier and due time where stricter (`_take_stricter`); the count moved."""
    q = select(C.c.id, C.c.campaign_id).where(C.c.queue == config.escalation_queue, C.c.state.in_(LIVE),
                                              C.c.campaign_id.is_not(None))
    if campaign_case_ids is not None:
        q = q.where(C.c.id.in_(campaign_case_ids))
    moved = 0
    for cover_id, camp in conn.execute(q).all():
        members = select(CM.c.item_id).where(CM.c.campaign_id == camp)
        dupes = conn.execute(select(C).where(C.c.item_id.in_(members), C.c.campaign_id.is_(None),
                                             C.c.queue == config.escalation_queue, C.c.state == "escalated")
                             ).mappings().all()
        dupes = [d for d in dupes if _cover(conn, config, d, {"id": cover_id}, now)]
        if dupes:
            audit.record(conn, SYSTEM["sweeper"], "case.fold", "case", cover_id,
                         {"covered": [d["id"] for d in dupes][:200], "count": len(dupes)})
            _take_stricter(conn, taxonomy, config, cover_id, [
                {"case_id": d["id"], "by": (d["meta"] or {}).get("escalated_by"), "reason": d["escalation_reason"],
                 "severity": d["severity"], "due_at": d["due_at"]} for d in dupes], SYSTEM["sweeper"], now)
        moved += len(dupes)
    return moved


def _stricter_tier(taxonomy: Taxonomy, tier: Optional[str], other: Optional[str]) -> Optional[str]:
    """Of two tiers (either may be None), the one with the shorter SLA."""
    if other and (tier is None or taxonomy.sla_minutes(other) < taxonomy.sla_minutes(tier)):
        return other
    return tier


def _escalated_tier(taxonomy: Taxonomy, config: QueueConfig, case: Mapping[str, Any], severity: Optional[str],
                    now: dt.datetime) -> tuple[Optional[str], Optional[dt.datetime]]:
    """The tier and due time escalating `case` (at `severity`, if given) sets: the stricter tier,
    due within its SLA from now. The escalation queue's window is its own: a case entering it
    gets the tier's SLA from now (its due time before is kept in meta `due_before_escalation`);
    one re-escalated there keeps its due time unless the new tier's is sooner."""
    tier = _stricter_tier(taxonomy, case["severity"], severity)
    due = case["due_at"]
    if tier:
        tier_due = now + dt.timedelta(minutes=taxonomy.sla_minutes(tier))
        due = min(due, tier_due) if due and case["queue"] == config.escalation_queue else tier_due
    return tier, due


def _take_stricter(conn: Connection, taxonomy: Taxonomy, config: QueueConfig, cover_id: int,
                   covered: list[dict[str, Any]], actor: Actor, now: dt.datetime) -> None:
    """The covering case takes the covered escalations' tier and due time where stricter, since the
    sweep no longer escalates a covered case (a P0 member under a P1 campaign keeps its 30 minutes),
    and lists them in `item_escalations`. `covered`: case_id, by, reason, severity, due_at each."""
    cover = lock_case(conn, cover_id)  # read again, locked on PostgreSQL: its meta gains entries
    tier, due = cover["severity"], cover["due_at"]
    for c in covered:
        tier = _stricter_tier(taxonomy, tier, c["severity"])
        due = min(due, c["due_at"]) if due and c["due_at"] else due or c["due_at"]
    meta = dict(cover["meta"] or {})
    meta["item_escalations"] = [*meta.get("item_escalations", []), *(
        {k: c[k] for k in ("case_id", "by", "reason", "severity")} for c in covered)][-50:]
    values: dict[str, Any] = {"meta": meta, "updated_at": now}
    if (tier, due) != (cover["severity"], cover["due_at"]):
        features = dict(meta.get("features") or {}, severity=tier)
        features["risk"] = max(float(features.get("risk", 0.0)), tier_weight(taxonomy, tier))
        priority, why, terms = score_features(taxonomy, features, config, cover["created_at"], due, now)
        meta.update(features=features, terms=terms)
        values.update(severity=tier, due_at=due, priority=priority, priority_reason=why)
        audit.record(conn, actor, "case.raise", "case", cover_id,
                     {"severity": [cover["severity"], tier], "due_at": [_iso(cover["due_at"]), _iso(due)],
                      "from_cases": [c["case_id"] for c in covered][:200]})
    conn.execute(update(C).where(C.c.id == cover_id).values(**values))


def _iso(t: Optional[dt.datetime]) -> Optional[str]:
    return t.isoformat() if t else None


def _move_to_escalation(conn: Connection, taxonomy: Taxonomy, config: QueueConfig, case: Mapping[str, Any],
                        reason: str, now: dt.datetime, severity: Optional[str] = None, human: bool = True,
                        by: Optional[str] = None) -> bool:
    """Move `case` (a row as read) to the escalation queue; False when another writer changed it
    since (a compare-and-swap on state and `updated_at`: claims do not take the builds' lock, so
    on PostgreSQL the sweep must not escalate, and unclaim, a case an analyst has just claimed)."""
    tier, due = _escalated_tier(taxonomy, config, case, severity, now)
    meta = dict(case["meta"] or {})
    features = dict(meta.get("features") or {}, severity=tier, escalation=escalation_tag(reason))
    features["risk"] = max(float(features.get("risk", 0.0)), tier_weight(taxonomy, tier))
    if case["queue"] != config.escalation_queue or due != case["due_at"]:
        features[ESCALATED_AT] = now.isoformat()  # the SLA clock of this escalation's window starts now
    # Append-only: a second escalation (a lead raising it, the case escalated again after it went
    # back to its queue) replaced the column's reason, and the first was lost from what a lead reads.
    meta["escalations"] = [*escalation_history(case), {"by": by, "reason": reason, "severity": tier,
                                                       "at": now.isoformat()}]
    meta.update(features=features, escalated_by=by)
    if case["queue"] != config.escalation_queue:  # re-escalated (e.g. raised to P0): it keeps its home queue
        meta["escalated_from"] = case["queue"]
        meta["escalation_opened_at"] = now.isoformat()  # one open escalation: one packet (`packets`)
        meta["due_before_escalation"] = _iso(case["due_at"])
        meta["severity_before_escalation"] = case["severity"]  # the tier that commitment was made at
    priority, why, terms = score_features(taxonomy, features, config, case["created_at"], due, now)
    meta["terms"] = terms
    return bool(conn.execute(update(C).where(unchanged(case["id"], case["state"], case["updated_at"])).values(
        queue=config.escalation_queue, state="escalated", claimed_by=None, lease_expires_at=None,
        escalation_reason=reason, severity=tier, due_at=due, priority=priority, priority_reason=why,
        first_action_at=func.coalesce(C.c.first_action_at, now) if human else C.c.first_action_at,
        meta=meta, updated_at=now)).rowcount)


def escalation_history(case: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every escalation of `case`, oldest first: `meta.escalations` as appended by each one, or for a
    case escalated before that list was kept (or by an escalation criterion when it was built) its
    one reason on record, from the `escalation_reason` column."""
    meta = case.get("meta") if isinstance(case.get("meta"), dict) else {}
    kept = meta.get("escalations")
    if isinstance(kept, list):
        return [dict(e) for e in kept if isinstance(e, dict)]
    if case.get("escalation_reason") is None:
        return []
    at = (meta.get("features") or {}).get(ESCALATED_AT) if isinstance(meta.get("features"), dict) else None
    return [{"by": meta.get("escalated_by"), "reason": case["escalation_reason"],
             "severity": case.get("severity"),
             "at": meta.get("escalation_opened_at") or at}]


def escalation_tag(reason: str) -> str:
    """The head of a reason (up to its first ':', 60 characters) that a case's priority reason repeats
    after `ESCALATED`. Without a ';': `masking.mask_case_reasons` masks that head up to the first
    "; ", so a reason's own "; " left its tail, which may quote a masked text, unmasked."""
    return reason.split(":")[0].replace(";", ",")[:60]


def sweep(store: Store, taxonomy: Taxonomy, config: QueueConfig,
          now: Optional[dt.datetime] = None, progress: bool = False, chunk_size: int = 5000,
          requested_by: Optional[Actor] = None) -> dict[str, int]:
    """Periodic upkeep: lapsed leases back to the queue, SLA-lapsing cases escalated, priorities refreshed
    (neither for the case of a campaign no longer active: merged, its members are another's).

    Priorities carry an SLA-urgency term, so they are recomputed here from the features stored
    with each case; run it every few minutes (cron, or the UI's timer). It acts as the reserved
    system principal `sweeper`; a person who starts it (`requested_by`) needs `sweep`.
    """
    from tqdm import tqdm

    if requested_by is not None:
        check_permission(requested_by, "sweep", "queues")
    asked, now = now, _now(now)
    out = {"leases_expired": 0, "sla_escalated": 0, "reprioritised": 0, "folded": 0}
    # A merged campaign's case has no members left to decide: it is neither escalated nor re-ranked.
    live_campaign = of_live_campaign()
    waiting = and_(or_(and_(C.c.state == "open", C.c.queue != config.escalation_queue),
                       C.c.state == "escalated"), live_campaign)
    with store.begin() as conn:
        _lock_builds(conn)
        while True:
            got = reclaim_expired(conn, config, asked)
            out["leases_expired"] += len(got)
            if len(got) < 500:
                break
        # SLA about to lapse -> escalation queue.
        tiers = config.sla_escalation.tiers
        if tiers:
            horizon = max(taxonomy.sla_minutes(t) for t in tiers) * config.sla_escalation.remaining_fraction
            rows = conn.execute(select(C).where(
                C.c.state == "open", C.c.severity.in_(tiers), C.c.due_at <= now + dt.timedelta(minutes=horizon),
                live_campaign,
                C.c.queue.notin_([config.escalation_queue, config.appeals_queue, config.calibration_queue])
            )).mappings().all()
            if rows:
                left = np.array([(r["due_at"] - now).total_seconds() / 60 for r in rows])
                sla = np.array([taxonomy.sla_minutes(r["severity"]) for r in rows])
                mask = sla_lapsing(left, sla, np.ones(len(rows), bool), config.sla_escalation.remaining_fraction)
                covered = _covered_items(conn, config, [r["item_id"] for r in rows if r["campaign_id"] is None])
                lapsing_covered = []
                for r, hit, m in zip(rows, mask, left):
                    if hit and r["campaign_id"] is None and r["item_id"] in covered:
                        lapsing_covered.append(r)  # its campaign's case is in the escalation queue already
                        continue
                    if hit:
                        why = (f"sla: {max(m, 0):.0f} of {taxonomy.sla_minutes(r['severity'])} minutes left "
                               f"on the {r['severity']} SLA" if m > 0 else f"sla: {r['severity']} SLA lapsed")
                        if not _move_to_escalation(conn, taxonomy, config, r, why, now, human=False,
                                                   by=actor_name(SYSTEM["sweeper"])):
                            continue  # claimed (or otherwise changed) since it was read: left as it is
                        audit.record(conn, SYSTEM["sweeper"], "case.escalate", "case", r["id"],
                                     {"from_queue": r["queue"], "reason": why})
                        out["sla_escalated"] += 1
                _raise_for_covered(conn, taxonomy, config, lapsing_covered, now)
        out["folded"] = fold_covered(conn, taxonomy, config, now)
        if out["sla_escalated"] or out["leases_expired"] or out["folded"]:
            audit.record(conn, SYSTEM["sweeper"], "cases.sweep", "queue", None,
                         dict(out, **({"requested_by": actor_name(requested_by)} if requested_by is not None else {})))
        total = conn.execute(select(func.count()).select_from(C).where(waiting)).scalar() or 0
    # Refresh priorities (urgency grows with time), one short write transaction per chunk so
    # claims interleave; a claim taken meanwhile simply drops out of the `waiting` filter.
    bar = tqdm(total=total, desc="refreshing priorities", unit="case", disable=not progress, leave=False)
    last_id = 0
    # A pin written since the read (a seed, the learning plan) changes `updated_at`: it is kept.
    stmt = (update(C).where(C.c.id == bindparam("cid"), C.c.updated_at == bindparam("read_at"), waiting)
            .values(priority=bindparam("p"), priority_reason=bindparam("why")))
    while True:
        with store.begin() as conn:
            rows = conn.execute(select(C.c.id, C.c.created_at, C.c.due_at, C.c.meta, C.c.priority, C.c.updated_at)
                                .where(waiting, C.c.id > last_id).order_by(C.c.id).limit(chunk_size)).all()
            if not rows:
                break
            last_id = rows[-1].id
            changes = []
            for r in rows:
                feats = (r.meta or {}).get("features")
                if not feats:
                    continue
                p, why, _ = score_features(taxonomy, feats, config, r.created_at, r.due_at, now)
                if abs(p - (r.priority or 0.0)) > PRIORITY_EPSILON:
                    changes.append({"cid": r.id, "p": p, "why": why, "read_at": r.updated_at})
            if changes:
                out["reprioritised"] += conn.execute(stmt, changes).rowcount
        bar.update(len(rows))
    bar.close()
    return out


def _raise_for_covered(conn: Connection, taxonomy: Taxonomy, config: QueueConfig,
                       members: list[Mapping[str, Any]], now: dt.datetime) -> None:
    """A covered member whose own SLA is lapsing stays in its queue, but its campaign's escalated
    case takes its tier and due time where stricter (`_take_stricter`, listed as "sla: covered
    member"): skipped, a P1 member due in 4 hours under a campaign case due in 3 days lapsed
    unwatched. Only a member that makes the case stricter is taken, so a second sweep (and a
    campaign past the 50 listed entries) adds nothing again."""
    by_cover: dict[int, list[dict[str, Any]]] = {}
    covers: dict[int, dict[str, Any]] = {}
    for r in members:
        cover = _escalated_campaign_case(conn, config, r)
        if cover is None:
            continue
        cover = covers.setdefault(cover["id"], cover)
        if not _stricter_than(taxonomy, r["severity"], r["due_at"], cover["severity"], cover["due_at"]):
            continue
        by_cover.setdefault(cover["id"], []).append({"case_id": r["id"], "by": None, "reason": "sla: covered member",
                                                     "severity": r["severity"], "due_at": r["due_at"]})
    for cover_id, entries in by_cover.items():
        _take_stricter(conn, taxonomy, config, cover_id, entries, SYSTEM["sweeper"], now)


def _stricter_than(taxonomy: Taxonomy, tier: Optional[str], due: Optional[dt.datetime],
                   than_tier: Optional[str], than_due: Optional[dt.datetime]) -> bool:
    """True when (tier, due) would raise a case at (than_tier, than_due): a shorter SLA, or sooner due."""
    if _stricter_tier(taxonomy, than_tier, tier) != than_tier:
        return True
    return due is not None and (than_due is None or due < than_due)


def _covered_items(conn: Connection, config: QueueConfig, item_ids: list[Optional[str]]) -> set[str]:
    """Of `item_ids`, those whose campaign has a live case in the escalation queue."""
    ids = [i for i in item_ids if i]
    out: set[str] = set()
    esc = select(C.c.campaign_id).where(C.c.queue == config.escalation_queue, C.c.state.in_(LIVE),
                                        C.c.campaign_id.is_not(None))
    for start in range(0, len(ids), 900):
        out |= set(conn.execute(select(CM.c.item_id).where(CM.c.item_id.in_(ids[start:start + 900]),
                                                          CM.c.campaign_id.in_(esc))).scalars())
    return out
