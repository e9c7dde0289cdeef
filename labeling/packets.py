"""Packets: everything an analyst needs to decide one case (review), and the escalation hand-off.

One service for the Gradio UI, the CLI and the tests: the UI renders these dicts and holds no
logic of its own. Offensive text is masked server-side (not just blurred in the browser), and
revealing it is an audited action, as T&S wellness practice asks.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any, Mapping, Optional

from sqlalchemy import and_, case as when_, func, or_, select

from clustering.config import CampaignSettings
from clustering.explore import term_evidence
from clustering.search import similar_items
from clustering.service import CampaignError
from core import audit
from core.json_text import inert_json as _inert_json
from core.hooks import check_permission
from core.labels import current_decisions, record_decision_ids
from core.predictions import predictions_of_record
from core.permissions import refusal
from core.principals import Actor, actor_name
from core.schema import AuditEvent, Campaign, CampaignMember, Case, Decision, Item, utcnow
from core.store import Store
from core.taxonomy import Taxonomy

from .cases import case_view, suggestion
from .decisions import bulk_counts
from .errors import QueueError
from .escalation import check_request, escalate, escalation_history
from .notes import record_predictions, sensitive_campaigns
from .masking import (OWN_FLAG, is_sensitive, mask_appeal, mask_case_reasons, mask_fields, mask_packet, mask_text,
                      should_mask)
from .masking import TERMS_FLAG, mask_terms, terms_sensitive
from .priority import ESCALATED_AT, utc_naive
from .queue_config import QueueConfig
from .review_config import ReviewSettings
from .reviewer_names import name_reviewers, store_namer
from .routing import patterns_match
from .wellbeing import has_revealed, record_reveal, record_shown, reveal_tier, shown_members

# Case fields the analyst never sees: QA-audit and calibration draws are blind.
BLIND_FIELDS = ("is_audit", "calibration_set")


def is_blind(case: Mapping[str, Any]) -> bool:
    """True for a case reviewed blind (a QA-audit draw, a lead's re-review, a calibration copy):
    its reviewer sees no decision on the item, other reviewers' copies included, and not that it
    is a draw, so they are neither anchored nor told what the others chose."""
    return bool(case.get("is_audit") or case.get("calibration_set"))


def blind_view(view: dict[str, Any]) -> dict[str, Any]:
    """`view` (a case view or packet) as its reviewer may see it: a blind case loses its draw
    flags and the item's decisions; any other case is returned unchanged."""
    if not is_blind(view.get("case") if isinstance(view.get("case"), Mapping) else view):
        return view
    out = {k: v for k, v in view.items() if k not in BLIND_FIELDS}
    out["decisions"] = []
    if isinstance(out.get("case"), Mapping):
        out["case"] = {k: v for k, v in out["case"].items() if k not in BLIND_FIELDS}
    return out


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.datetime) else v


def _item_campaign(conn: Any, item_id: str) -> Optional[dict[str, Any]]:
    """The campaign an item belongs to, with why it was linked, or None."""
    M, CP = CampaignMember.__table__, Campaign.__table__
    row = conn.execute(select(CP.c.id, CP.c.size, CP.c.entities, CP.c.top_terms, CP.c.first_seen, CP.c.last_seen,
                              CP.c.status, M.c.linked_by, M.c.similarity)
                       .join(M, M.c.campaign_id == CP.c.id).where(M.c.item_id == item_id)).mappings().first()
    if row is None:
        return None
    out = {k: _iso(v) for k, v in row.items()}
    out["members"] = row["size"]
    return out


def author_totals(conn: Any, cond: Any) -> tuple[int, int, int]:
    """(items, decided, enforced against) over every item matching `cond`, counted in the store:
    an author's items were all read, and their decisions, so one with 100,000 items made each
    case's context panel (`context.author_context`) and review packet (`author_history`) read
    them all. Decided is `current_decisions`' rule in SQL (`core.labels.record_decision_ids`)."""
    I, D = Item.__table__, Decision.__table__
    items = int(conn.execute(select(func.count()).select_from(I).where(cond)).scalar() or 0)
    latest = record_decision_ids(within=I, on=I.c.id == D.c.item_id, where=cond, name="latest")
    enforced = when_((or_(D.c.action.is_(None), D.c.action != "no_action"), 1), else_=0)
    decided, violations = conn.execute(select(func.count(), func.coalesce(func.sum(enforced), 0))
                                       .select_from(latest.join(D, D.c.id == latest.c.id))).one()
    return items, int(decided or 0), int(violations or 0)


def author_history(conn: Any, author_id: Optional[str], exclude_item: Optional[str],
                   settings: ReviewSettings) -> dict[str, Any]:
    """The author's other items, newest first, with their prediction and current human label.
    Texts are raw, each row flagged with its own sensitivity: `masking.mask_packet` masks them."""
    limit = settings.author_history
    if not author_id or limit <= 0:
        return {"author_id": author_id, "items": 0, "violations": 0, "recent": []}
    I = Item.__table__
    cond = I.c.author_id == author_id
    if exclude_item:
        cond = and_(cond, I.c.id != exclude_item)
    rows = conn.execute(select(I.c.id, I.c.text, I.c.created_at, I.c.policy_label).where(cond)
                        .order_by(I.c.created_at.desc(), I.c.id.desc()).limit(limit)).mappings().all()
    ids = [r["id"] for r in rows]
    preds = predictions_of_record(conn, ids)
    decided = current_decisions(conn, ids)  # the totals are counted in the store: every item was read
    recent = [{"item_id": r["id"], "created_at": _iso(r["created_at"]), "text": r["text"],
               OWN_FLAG: is_sensitive(settings, (preds.get(r["id"]) or {}).get("scores"), r["policy_label"],
                                      (decided.get(r["id"]) or {}).get("label")),
               "predicted": (preds.get(r["id"]) or {}).get("label"),
               "decided": (decided.get(r["id"]) or {}).get("label"),
               "action": (decided.get(r["id"]) or {}).get("action")} for r in rows]
    items, n_decided, violations = author_totals(conn, cond)
    return {"author_id": author_id, "items": items, "decided": n_decided, "violations": violations, "recent": recent}


def similar_decisions(store: Store, item_id: str, text_hash: str, settings: ReviewSettings,
                      campaign_settings: CampaignSettings) -> list[dict[str, Any]]:
    """Past human decisions on this text or its nearest neighbours (needs `workbench cluster`).
    Texts are raw, each row flagged with its own sensitivity: `masking.mask_packet` masks them."""
    k = settings.similar_k
    if k <= 0:
        return []
    I = Item.__table__
    neighbours: dict[str, float] = {}
    with store.read() as conn:
        for (other,) in conn.execute(select(I.c.id).where(I.c.text_hash == text_hash, I.c.id != item_id).limit(50)):
            neighbours[other] = 1.0
    try:
        for hit in similar_items(store, item_id, campaign_settings, k=k * 4):
            neighbours.setdefault(hit["item_id"], float(hit["similarity"]))
    except (CampaignError, FileNotFoundError):
        pass  # no index built yet (or the item is not in it): only fewer hints
    if not neighbours:
        return []
    with store.read() as conn:
        decided = current_decisions(conn, list(neighbours))
        items = {r.id: r for r in conn.execute(select(I.c.id, I.c.text, I.c.policy_label)
                                                .where(I.c.id.in_(list(decided))))} if decided else {}
        preds = predictions_of_record(conn, list(decided))
    rows = [{"item_id": i, "similarity": round(neighbours[i], 3), "label": d["label"], "action": d["action"],
             "reviewer": d["reviewer"], "rationale": d["rationale"], "decided_at": _iso(d["created_at"]),
             "text": items[i].text if i in items else "",
             OWN_FLAG: i not in items or is_sensitive(settings, (preds.get(i) or {}).get("scores"),
                                                      items[i].policy_label, d["label"])}
            for i, d in decided.items()]
    rows.sort(key=lambda r: -r["similarity"])
    return rows[:k]


def _campaign_sample(conn: Any, campaign_id: int, exclude: Optional[str], settings: ReviewSettings
                     ) -> list[dict[str, Any]]:
    """A few members of a campaign besides its exemplar (raw texts, flagged for `mask_packet`):
    `wellbeing.shown_members`, the ones a reveal of the case unmasks and counts (`reveal_tier`)."""
    rows = shown_members(conn, campaign_id, exclude)
    preds = predictions_of_record(conn, [r["id"] for r in rows])
    decided = current_decisions(conn, [r["id"] for r in rows])
    return [{"item_id": r["id"], "text": r["text"], "linked_by": r["linked_by"], "similarity": r["similarity"],
             OWN_FLAG: is_sensitive(settings, (preds.get(r["id"]) or {}).get("scores"), r["policy_label"],
                                    (decided.get(r["id"]) or {}).get("label"))}
            for r in rows]


def _campaign_terms(conn: Any, campaign: dict[str, Any], item_id: Optional[str],
                    settings: ReviewSettings) -> dict[str, Any]:
    """`campaign` with its top terms flagged for `mask_packet` (`TERMS_FLAG`), each by the members
    it comes from other than the texts this case shows and a reveal of it counts (the item, the
    sample): a term carried by hate members the case does not show stays masked, revealed or not
    (an item case of a plain spam member printed a slur from its campaign's other members)."""
    shown = {item_id, *(m["item_id"] for m in campaign.get("sample") or [])} - {None}
    try:
        terms, per_term = term_evidence(conn, int(campaign["id"]), exclude=shown)
    except CampaignError:  # its row is gone: nothing known of its members
        return dict(campaign, **{TERMS_FLAG: [True] * len(campaign.get("top_terms") or [])})
    return dict(campaign, top_terms=terms, **{TERMS_FLAG: terms_sensitive(settings, per_term)})


def case_masked(conn: Any, case_row: Any, item: Any, settings: ReviewSettings) -> bool:
    """Whether a case's own texts are masked until revealed: the suggestion's scores, the item's
    source label or its decided label (as search, the author history and the appeals list mask
    it) say so; for a campaign case also any member by its own rule (its scores, source and
    decided label), since the exemplar on screen, the sample and the top terms come from its
    members, and a member masked on its own case must not show here on the mean."""
    if item is None:
        return False
    decided = (current_decisions(conn, [item["id"]]).get(item["id"]) or {}).get("label")
    if should_mask(settings, (suggestion(conn, case_row) or {}).get("scores") or {}, item["policy_label"]) \
            or decided in settings.mask_policies:
        return True
    if case_row["campaign_id"] is None:
        return False
    # asked of the store, one row at most: every member was read (100,000 for one scam wave)
    return bool(sensitive_campaigns(conn, [case_row["campaign_id"]], settings))


def campaign_announcement(store: Store, case_id: int, viewer: Optional[Actor],
                          now: Optional[dt.datetime] = None, *,
                          config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """What a decision on a campaign case touches, said before any key is pressed: members, the
    model's label mix over them, how many a human already decided, how many others hold, and
    how many items the decision would label. `config`: the queue config `decide` gets, so a
    member whose own case waits in the appeals queue is left out here as there (None: only an
    appeal packet leaves one out, for a caller that has no config)."""
    with store.read() as conn:
        campaign_id = conn.execute(select(Case.campaign_id).where(Case.id == case_id)).scalar()
        if campaign_id is None:
            return {}
        # counted in the store: every member's prediction of record was read (100,000 rows)
        record = record_predictions(CampaignMember.campaign_id == campaign_id)
        counts = conn.execute(select(record.c.label, func.count()).where(record.c.n == 1)
                              .group_by(record.c.label)).all()
    mix = {label: int(n) for label, n in sorted(counts, key=lambda r: (-int(r[1]), str(r[0])))}
    preview = bulk_counts(store, case_id, viewer or "", now=now, config=config)  # in the store, as the mix is
    held = preview["held_by_others"]
    return {"campaign_id": campaign_id, "members": preview["members"],
            "label_mix": mix, "unscored": preview["members"] - sum(mix.values()),
            "already_decided": preview["already_decided"],
            "already_decided_labels": preview["already_decided_labels"], "held_by_others": held,
            "will_decide": preview["will_decide"]}


def review_packet(store: Store, taxonomy: Taxonomy, case_id: int, settings: ReviewSettings,
                  campaign_settings: CampaignSettings, now: Optional[dt.datetime] = None,
                  viewer: Optional[Actor] = None, *, config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """Case, item, model suggestion, campaign, author, similar decisions, choices: everything
    the screen shows, passed through `masking.mask_packet` (masked unless `viewer` revealed
    this case). QA-audit and calibration flags are left out (blind review), and so are, for a
    `viewer` who is no lead, the peers' calibration answers on the item (`_viewer_cut`); a campaign case
    carries `campaign_case`, what deciding it would touch, counted with `config` (the queue
    config `decide` gets: pass it, or an appeals-queue member is announced as one it decides).

    The suggestion is `cases.suggestion`, the same one a decision is judged against.
    """
    now = utc_naive(now) if now is not None else utcnow()  # the store's naive UTC: an aware `now` raised
    with store.read() as conn:
        view = case_view(conn, case_id, raw_text=True)
        item_id = view.get("item_id")
        item = conn.execute(select(Item.__table__).where(Item.id == item_id)).mappings().first() if item_id else None
        case_row = conn.execute(select(Case.__table__).where(Case.id == case_id)).mappings().first()
        pred = suggestion(conn, case_row)
        author = author_history(conn, item["author_id"] if item else None, item_id, settings)
        campaign = view.get("campaign") or (_item_campaign(conn, item_id) if item_id else None)
        if campaign and case_row["campaign_id"] is not None:
            campaign = dict(campaign, sample=_campaign_sample(conn, case_row["campaign_id"], item_id, settings))
        if campaign and campaign.get("id") is not None:  # top terms from members the packet does not show
            campaign = _campaign_terms(conn, campaign, item_id, settings)
        revealed = viewer is not None and has_revealed(conn, viewer, case_id)
        masked = case_masked(conn, case_row, item, settings)
        namer = store_namer(store, conn, viewer) if viewer is not None else (lambda name: name)  # peers: a lead's
    if revealed and masked:  # shown unmasked again, maybe in a later shift: counted in this one
        record_shown(store, viewer, case_row, item_id, now, taxonomy=taxonomy, settings=settings)
    suggested = (pred or {}).get("label") or view.get("predicted_label") or taxonomy.benign_label
    due = view.get("due_at")
    due_dt = dt.datetime.fromisoformat(due) if isinstance(due, str) else due
    meta = view["meta"] if isinstance(view.get("meta"), dict) else {}
    packet: dict[str, Any] = {
        "case": {**{k: view.get(k) for k in ("id", "queue", "state", "priority", "priority_reason", "severity",
                                             "due_at", "escalation_reason", "claimed_by", "lease_expires_at",
                                             "campaign_id", "item_id", "created_at")},
                 # an escalated case's SLA window starts here (`priority.sla_start`); created_at stays the case's
                 "escalated_at": (meta.get("features") or {}).get(ESCALATED_AT) if view.get("escalation_reason")
                 else None,
                 # every escalation, oldest first: a second one replaced the reason above, not these
                 "escalations": escalation_history(view)},
        "minutes_left": None if due_dt is None else round((due_dt - now).total_seconds() / 60, 1),
        "item": None if item is None else {
            "id": item["id"], "source": item["source"], "surface": item["surface"],
            "author_id": item["author_id"], "created_at": _iso(item["created_at"]),
            "source_label": item["source_label"], "metadata": item["metadata"], "text": item["text"]},
        "masked": masked,
        "prediction": pred,
        "campaign": campaign,
        "campaign_case": campaign_announcement(store, case_id, viewer, now, config=config)
        if case_row["campaign_id"] is not None else None,
        "decisions": [] if is_blind(case_row) else name_reviewers(
            [{k: v for k, v in d.items() if k not in ("kind",)}
             for d in (_viewer_cut(view, viewer) if viewer is not None else view).get("decisions", [])], namer),
        "author": author,
        # blind: a decided copy of the same text (similarity 1.0) would be the answer
        "similar_decisions": name_reviewers(similar_decisions(store, item_id, item["text_hash"], settings,
                                                              campaign_settings), namer)
        if item and not is_blind(case_row) else [],
        "suggested_label": suggested,
        "choices": {name: {"actions": pol.actions, "default_action": pol.default_action,
                           "policy_ref": pol.policy_ref, "severity": pol.severity}
                    for name, pol in taxonomy.policies.items()},
    }
    if meta.get("appeal"):
        packet["appeal"] = meta["appeal"]
    if isinstance(meta.get("label_error"), dict):  # a re-review case: the decision under review and why
        packet["label_review"] = {k: meta["label_error"].get(k) for k in
                                  ("decision_id", "given_label", "reviewer", "model_label", "confidence", "quality",
                        "alternative", "alternative_confidence")}
    out = mask_packet(packet, revealed)
    if out.get("masked") and not out.get("revealed"):  # each reason may quote the text, as the one above
        out["case"] = dict(out["case"], escalations=mask_fields(out["case"]["escalations"], ("reason",), True))
        if isinstance(out.get("appeal"), dict):
            out["appeal"] = _masked_appeal(out["appeal"])
    return out


def _masked_appeal(appeal: dict[str, Any]) -> dict[str, Any]:
    """An appeal's packet masked (`masking.mask_appeal`), with its evidence too: the decided case's
    escalation reason and priority reason (which repeats that reason's head) quote the text as
    often as the reason an analyst gave, and were shown raw on a masked appeal."""
    out = mask_appeal(appeal)
    if isinstance(out.get("evidence"), dict):
        out["evidence"] = mask_case_reasons(out["evidence"])
    return out


def _author_ref(key: bytes, author_id: Optional[str]) -> Optional[str]:
    """A stable reference to an author that is not the id itself (packets leave the tool): keyed
    with the store's secret (`key`, the audit key, under a label of its own). A plain hash of the
    id was undone by hashing the candidates: an SMS sender's phone number, a handle in a user list."""
    if not author_id:
        return None
    return "author-" + hmac.new(key, b"escalation author ref\x00" + author_id.encode("utf-8", "surrogatepass"),
                                hashlib.sha256).hexdigest()[:16]


def _write_private(folder: Path, name: str, text: str) -> Path:
    """Write a new file readable by its owner only (0600), never over an existing one."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def sees_blind_history(viewer: Optional[Actor]) -> bool:
    """Whether `viewer` may see a blind case's history and other analysts' calibration answers:
    leads (`analyst_quality`), as the API's decision feed rules. Nobody named sees none."""
    return refusal(viewer, "analyst_quality") is None


def _viewer_cut(view: dict[str, Any], viewer: Actor) -> dict[str, Any]:
    """`view` as `viewer` may see it: a blind case (`is_blind`) through `blind_view`, and on any
    case the other analysts' calibration answers left out, unless `viewer` is a lead. Why: `cases
    show` on a calibration copy (or on an ordinary case of its item) printed the peers' answers
    the analyst was about to give blind."""
    if sees_blind_history(viewer):
        return view
    view = blind_view(view)
    me = actor_name(viewer)
    if isinstance(view.get("decisions"), list):
        view = dict(view, decisions=[d for d in view["decisions"] if not (
            isinstance(d, Mapping) and d.get("kind") == "calibration" and d.get("reviewer") != me)])
    return view


def show_case(store: Store, case_id: int, settings: ReviewSettings, reveal_by: Optional[Actor] = None,
              blind: bool = False, taxonomy: Optional[Taxonomy] = None,
              viewer: Optional[Actor] = None) -> dict[str, Any]:
    """A case for display (`cases show`, `next`): masked by the rule of the review screen
    (`case_masked`) unless `reveal_by` names who reveals it (then the reveal is audited): the item
    text, and what people wrote about it (rationales, the escalation's and the appeal's reasons).
    `blind`: the reviewer's own view (`next`), through `blind_view`; a lead sees it whole. A
    `viewer` (the command line's principal) gets the blind rule of the review screen unless a lead
    (`_viewer_cut`). A reveal needs `taxonomy` (`reveal_text`'s tier rule): without it one is
    refused, never counted at the case's tier alone."""
    if reveal_by and taxonomy is None:
        raise QueueError(f"case {case_id}: a reveal needs the taxonomy to count it at its tier (taxonomy=...)")
    with store.read() as conn:
        view = case_view(conn, case_id, raw_text=True)
        case_row = conn.execute(select(Case.__table__).where(Case.id == case_id)).mappings().first()
        row = conn.execute(select(Item.__table__).where(Item.id == view.get("item_id"))).mappings().first() \
            if view.get("item_id") else None
        masked = case_masked(conn, case_row, row, settings)
        camp = view.get("campaign")
        if isinstance(camp, dict) and camp.get("id") is not None:  # the members a reveal counts: item and sample
            sample = [{"item_id": r["id"]} for r in shown_members(conn, int(camp["id"]), view.get("item_id"))]
            terms = _campaign_terms(conn, dict(camp, sample=sample), view.get("item_id"), settings)
            flags = terms.pop(TERMS_FLAG)
            view["campaign"] = dict(camp, top_terms=[mask_terms([t])[0] if flag else t
                                                     for t, flag in zip(terms["top_terms"], flags)])
    item = view.get("item")
    if item and reveal_by:
        item["text"] = reveal_text(store, case_id, reveal_by, taxonomy=taxonomy, settings=settings)
        masked = False
    view["masked"] = masked
    if masked:
        view = mask_case_reasons(view)
        view["item"] = dict(item, text=mask_text(item["text"])) if item else item
        view["decisions"] = mask_fields(view.get("decisions") or [], ("rationale",), True)
        if isinstance(view.get("meta"), dict):
            view["meta"] = _mask_meta(view["meta"])
        if isinstance(view.get("campaign"), dict):  # its top terms come from every member, as on the screen
            view["campaign"] = dict(view["campaign"], top_terms=mask_terms(view["campaign"].get("top_terms")))
    view = blind_view(view) if blind else view
    return _viewer_cut(view, viewer) if viewer is not None else view


def _mask_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A case's meta with the reasons people wrote masked: the appeal's, the escalation's (kept as
    a priority feature) and those of the members' escalations it covers."""
    out = dict(meta)
    if isinstance(out.get("appeal"), dict):
        out["appeal"] = _masked_appeal(out["appeal"])
    if isinstance(out.get("features"), dict) and isinstance(out["features"].get("escalation"), str):
        out["features"] = dict(out["features"], escalation=mask_text(out["features"]["escalation"]))
    if isinstance(out.get("escalations"), list):  # the case's own escalations, oldest first
        out["escalations"] = [mask_fields([e], ("reason",), True)[0] if isinstance(e, dict) else e
                              for e in out["escalations"]]
    if isinstance(out.get("item_escalations"), list):
        out["item_escalations"] = [mask_fields([e], ("reason",), True)[0] if isinstance(e, dict) else e
                                   for e in out["item_escalations"]]
    return out


def reveal_text(store: Store, case_id: int, analyst: Actor, now: Optional[dt.datetime] = None, *,
                taxonomy: Taxonomy, settings: ReviewSettings) -> str:
    """The unmasked text of a case's item. Needs `reveal`. The case then stays revealed for this
    analyst (`review_packet(viewer=...)` unmasks its texts), the reveal is audited once, and it
    counts toward the analyst's exposure (`wellbeing.exposure`) at `wellbeing.reveal_tier` (the
    case's tier or its text's evidence, the more severe). `taxonomy` and `settings` have no
    default: without them the case's tier alone was stored, and a caller that forgot them
    undercounted severe exposure."""
    check_permission(analyst, "reveal", f"case {case_id}")
    with store.begin() as conn:
        row = conn.execute(select(Item.text, Item.id).join(Case.__table__, Case.item_id == Item.id)
                           .where(Case.id == case_id)).first()
        if row is None:
            raise QueueError(f"case {case_id} has no item text to reveal")
        case = conn.execute(select(Case.__table__).where(Case.id == case_id)).mappings().first()
        tier = reveal_tier(conn, taxonomy, settings, row.id, case)
        record_reveal(conn, analyst, case_id, row.id, tier, now or utcnow())
    return row.text


# What people wrote in an audit payload (a note, a rationale, an appeal's or escalation's reason):
# as sensitive as the text it is about, so masked with it.
TIMELINE_TEXT = ("body", "rationale", "reason")


def _timeline(events: list[Any], hide: bool) -> list[dict[str, Any]]:
    """The audit events of a case and its item; while `hide`, what people wrote in them is masked."""
    return [{"ts": _iso(e["ts"]), "actor": e["actor"], "action": e["action"],
             "payload": mask_fields([e["payload"]], TIMELINE_TEXT, hide)[0] if isinstance(e["payload"], dict)
             else e["payload"]} for e in events]


# Other items' texts in an escalation packet (the author's other items, similar decisions,
# campaign members) are context, cut to this many characters: ingest sets no length on a text and
# the author history alone may list 500, so one prolific author's packet ran to many megabytes.
# The case's own text is the evidence and stays whole.
CONTEXT_CHARS = 2000


def _clipped(rows: Any, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """Copies of `rows` with each of `fields` cut to `CONTEXT_CHARS`, saying how much was left out."""
    def clip(v: Any) -> Any:
        if not isinstance(v, str) or len(v) <= CONTEXT_CHARS:
            return v
        return f"{v[:CONTEXT_CHARS]}... ({len(v) - CONTEXT_CHARS:,} more characters)"
    return [{k: clip(v) if k in fields else v for k, v in r.items()} if isinstance(r, dict) else r
            for r in rows or []]


def escalation_packet(store: Store, taxonomy: Taxonomy, case_id: int, settings: ReviewSettings,
                      campaign_settings: CampaignSettings, reason: str = "",
                      severity: Optional[str] = None, *, config: Optional[QueueConfig] = None) -> dict[str, Any]:
    """Summary, evidence, timeline, linked campaign and a recommended next step, for a hand-off.
    Masked like the review screen (no viewer: never revealed), the reason and the timeline's notes,
    rationales and reasons included: the filed packet leaves the tool. `config` as in `review_packet`."""
    packet = review_packet(store, taxonomy, case_id, settings, campaign_settings, config=config)
    item, pred, case = packet["item"] or {}, packet["prediction"] or {}, packet["case"]
    with store.read() as conn:
        raw_text = conn.execute(select(Item.text).where(Item.id == item.get("id"))).scalar() if item else None
        A = AuditEvent.__table__
        cond = or_(and_(A.c.entity_type == "case", A.c.entity_id == str(case_id)),
                   and_(A.c.entity_type == "item", A.c.entity_id == str(item.get("id"))))
        # the newest events, oldest first: the oldest N left out what happened last (notes, an undo)
        events = conn.execute(select(A.c.ts, A.c.actor, A.c.action, A.c.payload).where(cond)
                              .order_by(A.c.id.desc()).limit(settings.timeline_events)).mappings().all()[::-1]
        total = conn.execute(select(func.count()).select_from(A).where(cond)).scalar() or 0
        key = store.audit_key.get(conn)  # with `conn`: never a new key file beside a chain signed elsewhere
    label = pred.get("label") or packet["suggested_label"]
    matched = [c for c in taxonomy.escalation if raw_text and patterns_match(c, raw_text)]
    tier = severity or case.get("severity") or (taxonomy.severity_of(label) if label in taxonomy.policies else None)
    policy = taxonomy.policies.get(label)
    if matched and any(c.severity == "P0" for c in matched) and policy and "refer_law_enforcement" in policy.actions:
        step = "refer_law_enforcement"
    else:
        step = policy.default_action if policy else "no_action"
    campaign = packet.get("campaign")
    if campaign and campaign.get("sample"):
        campaign = dict(campaign, sample=_clipped(campaign["sample"], ("text",)))
    parts = [f"Case {case_id} ({case.get('queue')}, {tier or 'no tier'}): model says {label}"
             + (f" at {pred['score']:.2f}" if pred.get("score") is not None else "")]
    if campaign:
        parts.append(f"campaign {campaign.get('id')} with {campaign.get('members')} members")
    if packet["author"]["violations"]:
        parts.append(f"author has {packet['author']['violations']} earlier violations")
    if matched:
        parts.append("matches " + ", ".join(c.id for c in matched))
    summary = "; ".join(parts) + "."
    return {
        "case_id": case_id, "summary": summary, "reason": mask_text(reason) if packet["masked"] else reason,
        "masked": packet["masked"],  # the text as the review screen shows it; reveal with `cases show --reveal`
        "evidence": {"item": {**{k: v for k, v in item.items() if k != "author_id"},
                              "author_ref": _author_ref(key, item.get("author_id"))}, "model": pred,
                     "escalation_criteria": [{"id": c.id, "description": c.description, "severity": c.severity}
                                             for c in matched],
                     "entities": (campaign or {}).get("entities"),
                     "similar_decisions": _clipped(packet["similar_decisions"], ("text", "rationale"))},
        "timeline": _timeline(list(events), bool(packet["masked"])),
        "timeline_left_out": max(int(total) - len(events), 0),  # older events, in the audit log
        "campaign": campaign,
        "author": {**{k: v for k, v in packet["author"].items() if k != "author_id"},
                   "recent": _clipped(packet["author"].get("recent"), ("text",)),
                   "author_ref": _author_ref(key, packet["author"].get("author_id"))},
        "recommended_next_step": {"action": step, "severity": tier,
                                  "policy_ref": policy.policy_ref if policy else None,
                                  "sla_minutes": taxonomy.sla_minutes(tier) if tier in taxonomy.severities else None},
    }


def escalate_with_packet(store: Store, taxonomy: Taxonomy, case_id: int, analyst: Actor, reason: str,
                         config: QueueConfig, settings: ReviewSettings, campaign_settings: CampaignSettings,
                         severity: Optional[str] = None, *, holder_only: bool = False) -> dict[str, Any]:
    """Escalate the case and file its packet (JSON in the data dir, path in the audit log). Needs `escalate`.

    One packet per open escalation: a retry, a double submit, or escalating again a case that
    waits in (or was claimed from) the escalation queue returns the packet already filed for it
    (`filed` False); a new escalation after that one ended (the case went back to its queue,
    covered by its campaign's case) files a new one. The check and the filing hold the case's
    lock (PostgreSQL; SQLite's write lock), so two sessions escalating at once file one.
    `holder_only` as in `escalation.escalate`: a case no longer held is refused and files nothing."""
    check_request(taxonomy, reason, severity)  # refused before the packet is built, as `escalate` would
    check_permission(analyst, "escalate", f"case {case_id}")
    packet = escalation_packet(store, taxonomy, case_id, settings, campaign_settings, reason, severity=severity,
                               config=config)
    view = escalate(store, taxonomy, case_id, analyst, reason, config, severity=severity, holder_only=holder_only)
    folder = store.data_dir / "packets"  # made by `_write_private`: a failure there is reported, not raised
    with store.begin() as conn:
        row = conn.execute(select(Case.__table__).where(Case.id == case_id).with_for_update()
                           if conn.dialect.name == "postgresql" else select(Case.__table__).where(Case.id == case_id)
                           ).mappings().one()
        key = _escalation_key(conn, int(view["id"]))
        meta = dict(row["meta"] or {})
        filed = meta.get("escalation_packet") if isinstance(meta.get("escalation_packet"), dict) else None
        if filed and filed.get("key") == key and _readable_packet(folder, filed.get("path")) is not None:
            return {"case": view, "packet": _readable_packet(folder, filed["path"]), "packet_path": filed["path"],
                    "filed": False}
        try:
            path = _write_private(folder, f"case-{case_id}-{utcnow():%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}.json",
                                  inert_json(packet))
        except OSError as exc:  # the escalation stands: a retry files the packet (none is recorded)
            raise QueueError(f"case {case_id} is escalated, but its packet could not be written under {folder} "
                             f"({exc.strerror or exc}): fix that and escalate it again to file it") from None
        meta["escalation_packet"] = {"key": key, "path": str(path)}
        conn.execute(Case.__table__.update().where(Case.id == case_id).values(meta=meta, updated_at=utcnow()))
        audit.record(conn, analyst, "escalation.packet", "case", case_id,
                     {"path": str(path), "summary": packet["summary"],
                      "next_step": packet["recommended_next_step"]})
    return {"case": view, "packet": packet, "packet_path": str(path), "filed": True}


def inert_json(data: Any) -> str:
    """`data` as indented JSON with every character a terminal would obey or hide escaped
    (`core.json_text.inert_json`, the one rule for files and the command line)."""
    return _inert_json(data, indent=2)


def _escalation_key(conn: Any, holder_id: int) -> str:
    """Which open escalation a case is in: the case holding it in the escalation queue (itself, or
    its campaign's case when folded) and when that escalation opened."""
    holder = conn.execute(select(Case.__table__).where(Case.id == holder_id)).mappings().one()
    opened = (holder["meta"] or {}).get("escalation_opened_at") or _iso(holder["created_at"])
    return f"case {holder_id} escalated {opened}"


def _readable_packet(folder: Path, path: Any) -> Optional[dict[str, Any]]:
    """The packet filed at `path` (inside the packets folder), or None when it is gone or unreadable."""
    if not isinstance(path, str):
        return None
    p = Path(path)
    try:
        if p.resolve().parent != folder.resolve():
            return None
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
