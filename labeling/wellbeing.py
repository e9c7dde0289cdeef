"""Well-being on the review screen: who revealed which case (the exposure counter) and each
user's display settings (blur, grayscale).

A reveal is stored once per analyst and case (`reveals`): the case then stays revealed for that
analyst, the audit log gets one event, and reveals of severe tiers within the shift count
against `exposure_budget` (configs/review.yaml), after which the screen offers a break or a
milder queue.

The tier a reveal is stored at is `reveal_tier`, one rule for every door (the Review screen,
`cases show --reveal`, the API's item view with or without a case): the most severe of the
case's tier and what the revealed text's own evidence points to. A case's tier comes from the
model's top label alone, so a text masked for its source label, a decided label, a matched
escalation criterion or a hate score below the top label was counted as not severe.

A reveal of an item without a case (the API's item view) is stored once per reader and item
(`record_caseless_reveal`): found by reader and item id, under a negative `case_id` of the item's
own (`caseless_key`). The key was a 31-bit hash of the id alone, so two items whose keys collided
shared one row and the second item's reveal was never counted. Stored rows are per case (or per
item without one), but `exposure` counts one reader's exposure to one item once: a case-less
reveal of an item that later got a case, revealed again on that case, was counted twice.

A case stays revealed for its reader, so reading it again in a later shift (it came back through
re-review, an appeal, an escalation or the label-error queue; a reveal pressed again) stored
nothing and that shift counted nothing. Every later exposure is kept (`record_exposure`,
`exposures`, migration 0016) beside the first reveal, which is neither rewritten nor audited again,
and each shift counts one reader's exposure to one item once.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING, Any, Mapping, Optional

from sqlalchemy import Connection, case, func, select, union_all, update

from core import audit
from core.hooks import check_permission
from core.labels import current_decisions
from core.predictions import prediction_problem, predictions_of_record
from core.principals import Actor, actor_name
from core.schema import CampaignMember, Exposure, Item, Reveal, UserPreference, utcnow
from core.store import Store, insert_ignore
from core.text import one_line

from .errors import QueueError
from .masking import may_reveal
from .priority import utc_naive
from .review_config import ReviewSettings
from .routing import match_escalation

if TYPE_CHECKING:  # pragma: no cover
    from core.taxonomy import Taxonomy

R = Reveal.__table__
X = Exposure.__table__
U = UserPreference.__table__
PREFERENCE_KEYS = ("blur", "grayscale")
# Members of a campaign its case's packet shows beside the case's item (`shown_members`).
SAMPLE_MEMBERS = 5
# reveals.case_id is NOT NULL and unique per reader: a case-less reveal is stored under a key no
# case id takes (negative) that fits a 32-bit integer column (`caseless_key`).
CASELESS_KEY_SPACE = 2**31 - 1
# Keys tried for one case-less reveal before giving up: each is taken by another item of the same
# reader with odds (reveals / 2**31), so a second is rare and the 64th only a broken store.
CASELESS_PROBES = 64
# Exposures of one case lying at most this far apart share one `exposures` row (a span): any shift
# (`shift_hours`, at least this long) that meets a span then holds one of its exposures, and a
# screen shown again and again writes one row, not one per view.
EXPOSURE_GAP = dt.timedelta(minutes=10)


def record_reveal(conn: Connection, analyst: Actor, case_id: int, item_id: Optional[str],
                  severity: Optional[str], now: dt.datetime) -> bool:
    """Store the reveal (in the caller's transaction) and audit it, once per analyst and case;
    True when this was the first. An insert that skips an existing reveal, so two at once (a
    double click, two tabs) store and audit one and neither fails. A case this analyst revealed
    before is read again: an exposure at `now` (`record_exposure`), counted in this shift."""
    if _first_reveal(conn, analyst, case_id, item_id, severity, now):
        return True
    record_exposure(conn, analyst, case_id, item_id, severity, now)
    return False


def _first_reveal(conn: Connection, analyst: Actor, case_id: int, item_id: Optional[str],
                  severity: Optional[str], now: dt.datetime) -> bool:
    """The reveal row and its audit event, unless this analyst holds one of `case_id`."""
    stmt = insert_ignore(conn.dialect.name, R, ["analyst", "case_id"]).values(
        analyst=actor_name(analyst), case_id=case_id, item_id=item_id, severity=severity,
        created_at=utc_naive(now))
    if conn.execute(stmt.returning(R.c.id)).first() is None:
        return False
    audit.record(conn, analyst, "text.reveal", "item", item_id, {"case_id": case_id, "severity": severity})
    return True


def record_exposure(conn: Connection, analyst: Actor, case_id: int, item_id: Optional[str],
                    severity: Optional[str], now: dt.datetime) -> None:
    """`analyst` was shown case `case_id`'s texts unmasked at `now` after revealing it (in the
    caller's transaction): counted in the shift holding `now` (`exposure`), once per item. Why: a
    case stays revealed, so reading it in a later shift stored nothing and counted nothing. Not
    audited again (the reveal was). The span of this case and tier within `EXPOSURE_GAP` of `now`
    grows to hold `now`, else a new one starts: a shift meets a span only where it holds one of
    its exposures. Two at once may start two spans of one case; they count once."""
    who, now = actor_name(analyst), utc_naive(now)
    tier = X.c.severity.is_(None) if severity is None else X.c.severity == severity
    span = conn.execute(select(X.c.id, X.c.first_at, X.c.last_at)
                        .where(X.c.analyst == who, X.c.case_id == case_id, tier,
                               X.c.first_at <= now + EXPOSURE_GAP, X.c.last_at >= now - EXPOSURE_GAP)
                        .order_by(X.c.id.desc()).limit(1)).first()
    if span is None:
        conn.execute(X.insert().values(analyst=who, case_id=case_id, item_id=item_id, severity=severity,
                                       first_at=now, last_at=now))
    elif span.last_at < now:  # only ever widened: one read at once with an older `now` keeps it
        conn.execute(update(X).where(X.c.id == span.id, X.c.last_at < now).values(last_at=now))
    elif span.first_at > now:
        conn.execute(update(X).where(X.c.id == span.id, X.c.first_at > now).values(first_at=now))


def record_shown(store: Store, viewer: Actor, case: Mapping[str, Any], item_id: Optional[str], now: dt.datetime,
                 *, taxonomy: "Taxonomy", settings: ReviewSettings) -> None:
    """`record_exposure` in a transaction of its own, at `reveal_tier`, for a screen that shows
    `viewer` the case (its row) they revealed before unmasked (`packets.review_packet`): the case
    stays revealed, so such a view in a later shift was exposure no shift counted."""
    with store.begin() as conn:
        tier = reveal_tier(conn, taxonomy, settings, item_id, case)
        record_exposure(conn, viewer, case["id"], item_id, tier, now)


def caseless_key(item_id: str, attempt: int = 0) -> int:
    """The `reveals.case_id` probe `attempt` of a reveal of `item_id`, an item without a case:
    negative (a case id is positive), a hash of the id reduced to 31 bits. Probe 0 is the key
    every case-less reveal was stored under before `record_caseless_reveal` (such rows exist)."""
    data = item_id.encode("utf-8", "surrogatepass") + (b"\x00probe %d" % attempt if attempt else b"")
    return -(1 + int.from_bytes(hashlib.sha256(data).digest()[:8], "big") % CASELESS_KEY_SPACE)


def record_caseless_reveal(conn: Connection, analyst: Actor, item_id: str, severity: Optional[str],
                           now: dt.datetime) -> bool:
    """`record_reveal` for an item without a case, once per reader and item: True when this was
    the first. A reveal is found by reader and item id (a row under any negative key, an old one
    too), else stored under the first of the item's keys (`caseless_key`, probe 0 first) no other
    item of this reader holds: two items whose keys collide each count, and two reveals of one item
    at once follow the same probes and store one."""
    who = actor_name(analyst)
    mine = select(R.c.case_id).where(R.c.analyst == who, R.c.item_id == item_id, R.c.case_id < 0).limit(1)
    found = conn.execute(mine).first()
    if found is not None:  # read again: an exposure of this shift, under the reveal's own key
        record_exposure(conn, analyst, found.case_id, item_id, severity, now)
        return False
    for attempt in range(CASELESS_PROBES):
        key = caseless_key(item_id, attempt)
        if _first_reveal(conn, analyst, key, item_id, severity, now):  # a key of another item: no exposure
            return True
        holder = conn.execute(select(R.c.item_id).where(R.c.analyst == who, R.c.case_id == key)).first()
        if holder is not None and holder.item_id == item_id:  # the same reveal, stored at once beside this one
            return False
    raise QueueError(f"reveal of item {one_line(item_id, 120)!r} by {one_line(who, 60)!r}: no free reveal key "
                     f"after {CASELESS_PROBES} tries (the reveals table may be damaged)")


def shown_members(conn: Connection, campaign_id: int, exclude: Optional[str],
                  n: int = SAMPLE_MEMBERS) -> list[Any]:
    """The members of a campaign its case's packet shows beside the case's item (`exclude`): the
    `n` most similar, by id on ties (id, text, policy_label, linked_by, similarity). One rule for
    `packets._campaign_sample` and `reveal_tier`, since a reveal unmasks exactly these."""
    M, I = CampaignMember.__table__, Item.__table__
    return list(conn.execute(select(I.c.id, I.c.text, I.c.policy_label, M.c.linked_by, M.c.similarity)
                             .join(M, M.c.item_id == I.c.id).where(M.c.campaign_id == campaign_id,
                                                                   I.c.id != (exclude or ""))
                             .order_by(M.c.similarity.desc(), I.c.id).limit(n)).mappings().all())


def reveal_tier(conn: Connection, taxonomy: "Taxonomy", settings: ReviewSettings, item_id: Optional[str],
                case: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """The tier a reveal of `item_id` counts at (`record_reveal`, `exposure`): the most severe of
    `case`'s stored tier (its row; None for an item without a case) and what each revealed text's
    evidence points to, as masking reads it (`masking.is_sensitive`): the model's label and every
    masked policy (`settings.mask_policies`) scored at `mask_min_score` or more, the source policy
    label, the decided label, a matched escalation criterion (`routing.match_escalation`). The
    revealed texts are the item's and, for a campaign case, the members its packet shows
    (`shown_members`): the reveal unmasks them too, so a spam campaign masked for one hate member
    counts as hate. Scores are the prediction of record, else (the item's) those stored on the case
    (`cases.suggestion`); a text no model scored (or whose scores are no probabilities,
    `prediction_problem`) counts at the most severe tier, as masking treats it as sensitive. None
    for a text only ever judged benign, without a case."""
    ranked = sorted(taxonomy.severities, key=taxonomy.sla_minutes)  # most severe first
    tiers = {taxonomy.stored_tier(case.get("severity"))} if case is not None else set()
    I = Item.__table__
    texts = list(conn.execute(select(I.c.id, I.c.text, I.c.policy_label).where(I.c.id == item_id))
                 .mappings().all()) if item_id is not None else []
    if case is not None and case.get("campaign_id") is not None:
        texts += shown_members(conn, case["campaign_id"], case.get("item_id") or item_id)
    if not texts:  # no text revealed beyond what the case says
        return next((t for t in ranked if t in tiers), case.get("severity") if case is not None else None)
    ids = [t["id"] for t in texts]
    preds, decisions = predictions_of_record(conn, ids), current_decisions(conn, ids)
    meta = (case or {}).get("meta")
    meta = meta if isinstance(meta, Mapping) else {}  # a corrupt row: no stored scores, not a failed reveal
    for t in texts:
        own = t["id"] == item_id
        pred = preds.get(t["id"]) or {}
        stored = meta.get("scores") if own else None  # a member has no case of its own here
        scores = pred.get("scores") if pred else stored
        if prediction_problem({"scores": scores}) is not None:  # none, or not numbers (a corrupt row)
            return ranked[0] if ranked else None  # unknown content: as severe as it may be
        decided = (decisions.get(t["id"]) or {}).get("label")
        labels = {pred.get("label") or ((case or {}).get("predicted_label") if own else None), t["policy_label"],
                  decided}
        labels |= {p for p in settings.mask_policies if scores.get(p, 0.0) >= settings.mask_min_score}
        tiers |= {taxonomy.severity_of(lab) for lab in labels if isinstance(lab, str) and lab in taxonomy.policies}
        crit = match_escalation(taxonomy, t["text"] or "", scores)
        if crit is not None:
            tiers.add(crit.severity)
    return next((t for t in ranked if t in tiers), None)


def has_revealed(conn: Connection, analyst: Actor, case_id: int) -> bool:
    """Whether `analyst` revealed case `case_id` and still holds `reveal` (its texts are then
    unmasked for them): a reveal recorded before their role or token lost it unmasks nothing
    (`masking.may_reveal`), else a demoted analyst kept reading every text they once revealed."""
    if not may_reveal(analyst):
        return False
    return conn.execute(select(R.c.id).where(R.c.analyst == actor_name(analyst), R.c.case_id == case_id)
                        .limit(1)).first() is not None


def exposure(store: Store, analyst: Actor, settings: ReviewSettings,
             now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """Severe reveals by `analyst` within the last `shift_hours`, against the budget (`now` in
    any zone: reveals are stored in naive UTC, so an aware time is converted, not read as UTC).

    One reader's exposure to one item's text counts once per shift, whichever door revealed it
    and however often: a first reveal (`reveals`, at its time) and every later exposure of a case
    revealed before (`exposures`, `record_exposure`) count together, once per item (`severe` when
    any of them in the shift was at a severe tier). Why: a case-less reveal through the API
    (`record_caseless_reveal`) and the reveal of the case the item got later are two rows, and
    counting rows charged one text read twice; and a case read again in a later shift counted
    nothing there, its one reveal row lying in an earlier shift. A reveal with no item id counts
    on its own (by its case)."""
    rows = _exposure_counts(store, settings, now, [actor_name(analyst)])
    severe, total = rows.get(actor_name(analyst), (0, 0))
    return {"severe": int(severe), "revealed": int(total), "budget": settings.exposure_budget,
            "over_budget": severe >= settings.exposure_budget, "shift_hours": settings.shift_hours}


def _exposure_counts(store: Store, settings: ReviewSettings, now: Optional[dt.datetime],
                     who: Optional[list[str]] = None) -> dict[str, tuple[int, int]]:
    """(severe, revealed) per reader (`who`, else all) in the shift that ends at `now`: reveals
    and exposures from `now - shift_hours` up to `now`, not after it. Why: a shift asked for at
    an earlier time (the lead's view, a report) counted the next shift's reveals too."""
    now = utc_naive(now) if now is not None else utcnow()
    since, tiers = now - dt.timedelta(hours=settings.shift_hours), list(settings.severe_tiers)

    def seen(t: Any, start: Any, end: Any) -> Any:
        """The table's rows meeting the shift, keyed by item (by case for a row without one)."""
        q = select(t.c.analyst.label("analyst"), t.c.item_id.label("item_id"),
                   case((t.c.item_id.is_(None), t.c.case_id), else_=0).label("case_key"),
                   case((t.c.severity.in_(tiers), 1), else_=0).label("severe")).where(start <= now, end >= since)
        return q if who is None else q.where(t.c.analyst.in_(who))

    rows = union_all(seen(R, R.c.created_at, R.c.created_at), seen(X, X.c.first_at, X.c.last_at)).subquery()
    items = select(rows.c.analyst, func.max(rows.c.severe).label("severe")) \
        .group_by(rows.c.analyst, rows.c.item_id, rows.c.case_key).subquery()
    q = select(items.c.analyst, func.sum(items.c.severe), func.count()).group_by(items.c.analyst)
    with store.read() as conn:
        return {a: (int(s or 0), int(n)) for a, s, n in conn.execute(q).all()}


def team_exposure(store: Store, lead: Actor, settings: ReviewSettings,
                  now: Optional[dt.datetime] = None) -> list[dict[str, Any]]:
    """Every reader's exposure this shift (`exposure`'s counts), most severe first, for a lead
    (`analyst_quality`): who is over budget, never what they read (no item, case or text).
    Why: the budget was shown only to the reader themself, so nobody could send them on a break."""
    check_permission(lead, "analyst_quality", "exposure of every analyst")
    rows = _exposure_counts(store, settings, now)
    out = [{"analyst": a, "severe": s, "revealed": n, "budget": settings.exposure_budget,
            "over_budget": s >= settings.exposure_budget} for a, (s, n) in rows.items()]
    return sorted(out, key=lambda r: (-r["severe"], r["analyst"]))


def preferences(store: Store, user: Actor, settings: ReviewSettings) -> dict[str, bool]:
    """The user's display settings, the config's defaults where they set none."""
    out = {"blur": settings.default_blur, "grayscale": settings.default_grayscale}
    with store.read() as conn:
        row = conn.execute(select(U.c.prefs).where(U.c.user_name == actor_name(user))).scalar()
    # a row that is no object (hand-edited, corrupt) reads as none set, as `set_preferences` reads it
    out.update({k: bool(v) for k, v in (row if isinstance(row, dict) else {}).items() if k in PREFERENCE_KEYS})
    return out


def set_preferences(store: Store, user: Actor, settings: ReviewSettings, **prefs: bool) -> dict[str, bool]:
    """Remember the user's own display settings (any signed-in user: needs `read`)."""
    unknown = [k for k in prefs if k not in PREFERENCE_KEYS]
    if unknown:
        raise QueueError(f"unknown display setting(s) {unknown} (known: {', '.join(PREFERENCE_KEYS)})")
    who = actor_name(user)
    if not who:
        raise QueueError("sign in (or enter your name) to keep display settings")
    check_permission(user, "read", f"preferences of {who}")
    now = utcnow()
    with store.begin() as conn:
        # The row first (an insert that skips an existing one), then read it locked: two saves at
        # once (blur and grayscale ticked together) raised a duplicate key for a new user on
        # PostgreSQL, and for a known one the second write dropped the first's setting.
        conn.execute(insert_ignore(conn.dialect.name, U, ["user_name"]).values(user_name=who, prefs={},
                                                                               updated_at=now))
        q = select(U.c.prefs).where(U.c.user_name == who)
        row = conn.execute(q.with_for_update() if conn.dialect.name == "postgresql" else q).first()
        stored = row.prefs if row is not None and isinstance(row.prefs, dict) else {}
        merged = dict(stored, **{k: bool(v) for k, v in prefs.items()})
        conn.execute(update(U).where(U.c.user_name == who).values(prefs=merged, updated_at=now))
    return preferences(store, user, settings)
