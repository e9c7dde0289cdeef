"""Reading campaigns for trend analysts: lists, details with members, growth timelines and plots.

Facts that change without re-clustering (growth, the decided label mix, the mean model score)
are computed on read from the label of record and the prediction of record.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Optional, Sequence

from sqlalchemy import func, or_, select

from core.labels import current_decisions, record_decision_ids
from core.predictions import prediction_problem, predictions_of_record, ranked_predictions
from core.plotting import pyplot, serialised
from core.schema import Decision, Prediction, utcnow

from . import facts
from .service import _CT, _IT, _MT, CampaignError, _fetch_items, _item_time

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy


def _campaign_row(conn: Any, campaign_id: int) -> Any:
    row = conn.execute(select(_CT).where(_CT.c.id == campaign_id)).mappings().first()
    if row is None:
        raise CampaignError(f"no campaign {campaign_id}; see `workbench campaigns list`")
    return row

def _member_ids(conn: Any, campaign_id: int) -> list[str]:
    return list(conn.execute(select(_MT.c.item_id).where(_MT.c.campaign_id == campaign_id)
                             .order_by(_MT.c.item_id)).scalars())

def _utc(now: Optional[dt.datetime]) -> dt.datetime:
    """`now` as the store keeps times, naive UTC (an aware one is converted): growth subtracted
    an aware `now` from the stored naive times, a TypeError traceback."""
    if now is None:
        return utcnow()
    return now.astimezone(dt.timezone.utc).replace(tzinfo=None) if now.tzinfo is not None else now

def _latest_decisions(conn: Any, item_ids: Sequence[str]) -> dict[str, str]:
    """Current human label per item: the label of record (`core.labels`)."""
    return {k: d["label"] for k, d in current_decisions(conn, item_ids).items()}

def top_terms_of(stored: Any) -> list[list[Any]]:
    """Stored top terms as [term, weight] pairs, at most `MAX_TERMS`: a plain term (as older rows
    and `ui.render.terms_text` allow) or a term that is no text is read as its text, anything
    else no list at all; `campaigns list` unpacked `term, weight` and failed on a plain term."""
    if not isinstance(stored, (list, tuple)):
        return []
    out = []
    for t in list(stored)[:MAX_TERMS]:
        pair = list(t) if isinstance(t, (list, tuple)) else [t]
        if pair:
            out.append([str(pair[0]), pair[1] if len(pair) > 1 else None])
    return out


# What `term_evidence` reads of a campaign's texts: each distinct text once, none longer than
# TERM_TEXT_CHARS (a longer one is taken to carry every term), at most TERM_TEXTS texts and
# TERM_CHARS characters in all (about 0.1 s of ASCII, 1 s of other text, per campaign listed).
# Past those, every term takes the whole campaign's evidence (any sensitive member masks all).
TERM_TEXTS = 2000
TERM_CHARS = 300_000
TERM_TEXT_CHARS = 5000
MAX_TERMS = 50  # as many as `clustering.config` lets a campaign keep
TERM_MEMBERS = 5000  # the most members `term_evidence` reads for a case view


def _valid_scores(pred: Any) -> Optional[dict[str, float]]:
    """A prediction's scores when they are probabilities (`core.predictions.prediction_problem`),
    else None (the member counts as unscored): a text stored as a score failed the whole list (a
    ValueError), a NaN placed after a lower score was dropped from the highest score per policy."""
    scores = (pred or {}).get("scores") if isinstance(pred, dict) else None
    if isinstance(scores, dict) and scores and all(
            type(v) in (float, int) and 0.0 <= v <= 1.0 for v in scores.values()):  # the common case, fast
        return scores
    return dict(scores) if prediction_problem({"scores": scores}) is None else None


def evidence(ids: Sequence[str], scores: dict[str, dict[str, float]], labels: dict[str, set[str]],
             unknown: int = 0) -> dict[str, Any]:
    """What the masking rule (`labeling.masking.members_sensitive`) reads about members `ids`: how
    many have no usable score (plus `unknown` texts nothing is known about), the highest score per
    policy, and their source and decided labels."""
    got = [scores[i] for i in ids if i in scores]
    policies = sorted({p for s in got for p in s})
    return {"members": len(ids), "unscored": len(ids) - len(got) + unknown,
            "max_scores": {p: max(float(s.get(p, 0.0)) for s in got) for p in policies},
            "member_labels": sorted({lab for i in ids for lab in labels.get(i, ())})}


def _term_evidence(conn: Any, members: Sequence[str], terms: Sequence[str], scores: dict[str, dict[str, float]],
                   labels: dict[str, set[str]], sizes: dict[str, tuple[Any, int]], exclude: Collection[str] = ()
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(per top term, over all the terms) the `evidence` of the members they come from, other than
    `exclude`: those whose text carries the term (`facts.text_terms`, each distinct text read
    once). A term no member carries (terms kept from members that since left) counts one unknown
    member. `sizes`: member -> (text hash, length)."""
    if not terms:
        return [], evidence([], scores, labels)
    groups: dict[Any, list[str]] = {}
    length: dict[Any, int] = {}
    for i in members:
        if i in sizes:
            key = sizes[i][0] or ("id", i)
            groups.setdefault(key, []).append(i)
            length[key] = sizes[i][1]
    keys = list(groups)
    short = [k for k in keys if length[k] <= TERM_TEXT_CHARS]
    if len(keys) > TERM_TEXTS or sum(length[k] for k in short) > TERM_CHARS:
        # too much to read: each term the whole campaign's
        whole = evidence([i for i in members if i not in exclude], scores, labels)
        return [whole for _ in terms], whole
    texts = _fetch_items(conn, [groups[k][0] for k in short], [_IT.c.text])
    words = [facts.text_terms(texts[groups[k][0]].text or "") if groups[k][0] in texts and length[k] <= TERM_TEXT_CHARS
             else None for k in keys]
    carried = [[i for row in rows for i in groups[keys[row]]] for rows in facts.term_carriers(terms, words)]
    unknown = [0 if ids else 1 for ids in carried]
    carried = [[i for i in ids if i not in exclude] for ids in carried]
    every = sorted({i for ids in carried for i in ids})
    return ([evidence(ids, scores, labels, unknown=u) for ids, u in zip(carried, unknown)],
            evidence(every, scores, labels, unknown=sum(unknown)))


def term_evidence(conn: Any, campaign_id: int, exclude: Collection[str] = (),
                  max_members: int = TERM_MEMBERS) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """A campaign's top terms (`top_terms_of`) and, per term, the `evidence` of the members it
    comes from other than `exclude` (for a case view: the texts its reveal unmasks and counts,
    `labeling.wellbeing.shown_members` and the case's item), as `campaign_detail` reads it. A
    campaign of more than `max_members` is not read (a case view is built for every case of its
    members): each term is then of unknown members (one unscored), which masks it."""
    row = _campaign_row(conn, campaign_id)
    terms = top_terms_of(row["top_terms"])
    held = conn.execute(select(func.count()).select_from(  # counted up to the cap: 100,000 ids were read first
        select(_MT.c.item_id).where(_MT.c.campaign_id == campaign_id).limit(max_members + 1).subquery())).scalar()
    if held > max_members:
        return terms, [evidence([], {}, {}, unknown=1) for _ in terms]
    members = _member_ids(conn, campaign_id)
    rows = _fetch_items(conn, members, [_IT.c.policy_label, _IT.c.text_hash, func.length(_IT.c.text).label("chars")])
    decided = _latest_decisions(conn, members)
    scores = {k: s for k, s in ((k, _valid_scores(p)) for k, p in predictions_of_record(conn, members).items())
              if s is not None}
    per_term, _ = _term_evidence(conn, members, [t for t, _ in terms], scores, _labels(rows, decided),
                                 _sizes(rows), set(exclude))
    return terms, per_term


def _labels(rows: dict[str, Any], decided: dict[str, str]) -> dict[str, set[str]]:
    """Member -> its source policy label and decided label (those it has)."""
    out = {i: {r.policy_label} if isinstance(r.policy_label, str) and r.policy_label else set() for i, r in rows.items()}
    for i, lab in decided.items():
        out.setdefault(i, set()).add(lab)
    return out


def _sizes(rows: dict[str, Any]) -> dict[str, tuple[Any, int]]:
    return {i: (r.text_hash, int(r.chars or 0)) for i, r in rows.items()}


def _member_rows(conn: Any, campaign_id: int) -> dict[str, Any]:
    """Member id -> (seen, policy_label, text_hash, chars, linked_by, similarity), by item id, in one
    statement joining the members to their items (a member whose item is gone has `chars` None)."""
    q = (select(_MT.c.item_id, _item_time().label("seen"), _IT.c.policy_label, _IT.c.text_hash,
                func.length(_IT.c.text).label("chars"), _IT.c.id.label("item"), _MT.c.linked_by, _MT.c.similarity)
         .select_from(_MT.outerjoin(_IT, _IT.c.id == _MT.c.item_id))
         .where(_MT.c.campaign_id == campaign_id).order_by(_MT.c.item_id))
    return {r.item_id: r for r in conn.execute(q)}


def _member_decisions(conn: Any, campaign_id: int) -> dict[str, str]:
    """`_latest_decisions` of every member of the campaign in one statement (`core.labels`' rule in
    SQL, `record_decision_ids`), not one per 900 members."""
    rec = record_decision_ids(within=_MT, where=_MT.c.campaign_id == campaign_id)
    d = Decision.__table__
    return {i: lab for i, lab in conn.execute(select(rec.c.item_id, d.c.label).join(d, d.c.id == rec.c.id))}


def _member_scores(conn: Any, campaign_id: int) -> dict[str, dict[str, float]]:
    """Member -> the usable scores (`_valid_scores`) of its prediction of record, in one statement
    (`core.predictions.ranked_predictions`, the rule `predictions_of_record` applies)."""
    p = Prediction.__table__
    ranked = ranked_predictions([p.c.item_id, p.c.scores], within=_MT, where=_MT.c.campaign_id == campaign_id)
    rows = conn.execute(select(ranked.c.item_id, ranked.c.scores).where(ranked.c.n == 1))
    return {k: s for k, s in ((i, _valid_scores({"scores": sc})) for i, sc in rows) if s is not None}


def _live_facts(conn: Any, campaign_id: int, benign: str, now: dt.datetime, top_terms: Any = ()) -> dict[str, Any]:
    return _facts_read(conn, campaign_id, benign, now, top_terms)[0]


def _facts_read(conn: Any, campaign_id: int, benign: str, now: dt.datetime,
                top_terms: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Facts that change without re-clustering: growth, decided label mix, mean model score, and
    what the masking rule needs to know of the members the top terms come from.

    The top terms are computed from every member (up to `service._TERM_SAMPLE`), not from the few
    a view lists, and their masking is decided by the evidence of the members each term comes
    from (`term_evidence`, one per term; `unscored`, `max_scores`, `member_labels` over all of
    them), not by the members shown: a slur carried only by members no view listed was printed
    wherever the listed ones were benign. Terms computed from the listed members only would say
    the same safely, but trend analysts read top terms to learn what a whole wave says, across
    thousands of members, the same in the list (no members listed) as in any page of members;
    with this rule every term still speaks for the whole campaign, and a member's sensitivity
    masks only the terms its text carries (the whole campaign's, past `TERM_TEXTS`).

    Each of the members' rows, decisions and predictions is read in one statement joined to the
    campaign (`_member_rows`, `_member_decisions`, `_member_scores`): reading them by lists of
    member ids took a statement per 500 members, 600 for a wave of 100,000, on every list and
    page. `rows`: member -> its `_member_rows` row, for members whose item is stored."""
    every_row = _member_rows(conn, campaign_id)
    members = list(every_row)
    rows = {i: r for i, r in every_row.items() if r.item is not None}
    times = [r.seen for r in rows.values() if r.seen is not None]
    decided = _member_decisions(conn, campaign_id)
    mix = facts.label_mix(decided.values())
    scores = _member_scores(conn, campaign_id)
    means = facts.mean_scores(scores.values())
    labels = _labels(rows, decided)
    per_term, every = _term_evidence(conn, members, [t for t, _ in top_terms_of(top_terms)], scores,
                                     labels, _sizes(rows))
    return {
        "growth": facts.growth(times, now),
        "decided": sum(mix.values()), "label_mix": mix,
        "scored": len(scores), "mean_scores": means,
        "mean_violation_score": round(1.0 - means[benign], 4) if benign in means else None,
        # what the masking rule reads (labeling.masking): the members the top terms come from
        "term_evidence": per_term,
        "unscored": every["unscored"], "max_scores": every["max_scores"], "member_labels": every["member_labels"],
        # the shared entities (URLs, hosts, e-mail addresses) may come from any member: all of them
        "entity_evidence": evidence(members, scores, labels),
    }, rows, decided


def _exemplar(conn: Any, item_id: Optional[str]) -> dict[str, Any]:
    """The exemplar's text with what the masking rule needs: its scores, source and decided label."""
    row = conn.execute(select(_IT.c.text, _IT.c.policy_label).where(_IT.c.id == item_id)).first() if item_id else None
    pred = predictions_of_record(conn, [item_id]).get(item_id) if row is not None else None
    return {"exemplar_text": row.text if row is not None else None,
            "exemplar_scores": (pred or {}).get("scores"), "exemplar_policy_label": row.policy_label if row else None,
            "exemplar_decided_label": _latest_decisions(conn, [item_id]).get(item_id) if row is not None else None}

CAMPAIGN_STATUSES = ("active", "merged")
"""The statuses `clustering.service` writes; a merged campaign keeps its id with size 0."""
MAX_COUNT = 1_000_000  # the most rows a list, a member list or a search returns at once


def check_count(value: int, what: str, least: int = 0) -> int:
    """`value` when it is a whole number from `least` to MAX_COUNT, else a one-line CampaignError:
    a negative limit silently meant "all" on SQLite (and all but the last few members) and failed
    on PostgreSQL; a huge one overflowed the database driver."""
    if type(value) is not int or not least <= value <= MAX_COUNT:
        raise CampaignError(f"{what} must be a whole number from {least} to {MAX_COUNT:,}, got {value!r}")
    return value


def list_campaigns(store: "Store", limit: int = 20, min_size: int = 2, status: str = "active",
                   sort: str = "size", taxonomy: Optional["Taxonomy"] = None,
                   now: Optional[dt.datetime] = None, *, offset: int = 0) -> list[dict[str, Any]]:
    """Campaigns, biggest (or most recent: sort='last_seen') first, with their live facts, from
    the `offset`th on (pages of a stable order: ties by id). `min_size` only filters active
    campaigns: a merged one has size 0 and would never be listed."""
    check_count(limit, "limit")
    check_count(offset, "offset")
    check_count(min_size, "min size")
    if sort not in ("size", "last_seen", "id"):
        raise CampaignError(f"unknown sort {sort!r} (size, last_seen, id)")
    if status not in (*CAMPAIGN_STATUSES, "all"):
        raise CampaignError(f"unknown status {status!r} ({', '.join(CAMPAIGN_STATUSES)}, all)")
    # a campaign without a time last on both stores (PostgreSQL put NULL first in a descending sort)
    order = {"size": (_CT.c.size.desc(), _CT.c.id), "last_seen": (_CT.c.last_seen.desc().nulls_last(), _CT.c.id),
             "id": (_CT.c.id,)}[sort]
    benign = taxonomy.benign_label if taxonomy else "benign"
    now = _utc(now)
    out = []
    with store.read(snapshot=True) as conn:  # a campaign merged mid-read: its row and members of one moment
        q = select(_CT).where(or_(_CT.c.status != "active", _CT.c.size >= min_size)).order_by(*order)
        if status != "all":
            q = q.where(_CT.c.status == status)
        if limit:
            q = q.limit(limit)
        if offset:
            q = q.offset(offset)
        for row in conn.execute(q).mappings().all():
            out.append({**_campaign_dict(row), **_exemplar(conn, row["exemplar_item_id"]),
                        **_live_facts(conn, row["id"], benign, now, row["top_terms"])})
    return out

def _campaign_dict(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "status": row["status"], "size": row["size"],
            "first_seen": row["first_seen"], "last_seen": row["last_seen"],
            "exemplar_item_id": row["exemplar_item_id"], "top_terms": top_terms_of(row["top_terms"]),
            "entities": row["entities"] or {}, "link_reasons": row["link_reasons"] or {},
            "updated_at": row["updated_at"]}

def campaign_detail(store: "Store", campaign_id: int, members_limit: int = 20,
                    taxonomy: Optional["Taxonomy"] = None, now: Optional[dt.datetime] = None, *,
                    members_offset: int = 0, members_order: str = "id", with_links: bool = False) -> dict[str, Any]:
    """One campaign with its facts and a page of its members (with why each is linked): from
    `members_offset` (moved back to the last page's start when past the end; `members_offset` in
    the answer says where it starts), `members_limit` of them (0 = all), by item id or by when
    they came (`members_order="seen"`, then by id). `with_links` adds `member_links`: every member
    in that order with why it is linked and its decided label, without its text, so a page of a
    campaign of 100,000 members reads 50 texts, not every text (the Campaigns tab read and masked
    them all on each page). Read at one moment (a merge meanwhile showed an active campaign with
    another's or no members); the links by campaign, not by a list of every shown member's id
    (over 65,535 failed on PostgreSQL)."""
    check_count(members_limit, "members")
    check_count(members_offset, "members offset")
    if members_order not in ("id", "seen"):
        raise CampaignError(f"unknown member order {members_order!r} (id, seen)")
    benign = taxonomy.benign_label if taxonomy else "benign"
    with store.read(snapshot=True) as conn:
        row = _campaign_row(conn, campaign_id)
        members = _member_ids(conn, campaign_id)
        live, rows, decided = _facts_read(conn, campaign_id, benign, _utc(now), row["top_terms"])
        links = rows  # each member's linked_by and similarity came with its row
        listed = [i for i in members if i in rows]
        if members_order == "seen":
            listed.sort(key=lambda i: (str(rows[i].seen or ""), i))
        step = max(members_limit, 1)
        start = members_offset if members_offset < len(listed) else max(0, (len(listed) - 1) // step * step)
        shown = listed[start:start + members_limit] if members_limit else listed[start:]
        items = _fetch_items(conn, shown, [_IT.c.text, _IT.c.source, _IT.c.policy_label, _item_time().label("seen")])
        scores = {k: p["scores"] for k, p in predictions_of_record(conn, shown).items()}
        detail = {**_campaign_dict(row), **_exemplar(conn, row["exemplar_item_id"]), **live,
                  "successor": _successor(conn, row)}
    detail["members"] = [{"item_id": i, "source": items[i].source, "seen": items[i].seen,
                          "linked_by": links[i].linked_by, "similarity": links[i].similarity,
                          "decided_label": decided.get(i), "text": items[i].text,
                          "scores": scores.get(i), "policy_label": items[i].policy_label}
                         for i in shown if i in items]
    detail["members_offset"] = start
    if with_links:
        detail["member_links"] = [{"item_id": i, "seen": rows[i].seen, "linked_by": links[i].linked_by,
                                   "similarity": links[i].similarity, "decided_label": decided.get(i)}
                                  for i in listed]
    return detail

def _successor(conn: Any, row: Any) -> Optional[int]:
    """The active campaign a merged campaign's members are in now: its `merged_into`, followed
    while that one was merged too (a chain of runs); None when the chain ends in no campaign or
    loops (a damaged store). An active campaign is its own."""
    seen: set[int] = set()
    while row is not None and row["status"] != "active":
        seen.add(row["id"])
        into = (row["link_reasons"] or {}).get("merged_into") if isinstance(row["link_reasons"], dict) else None
        if type(into) is not int or into in seen or len(seen) > 1000:
            return None
        row = conn.execute(select(_CT.c.id, _CT.c.status, _CT.c.link_reasons).where(_CT.c.id == into)).mappings().first()
    return None if row is None else int(row["id"])


def campaign_successor(store: "Store", campaign_id: int) -> Optional[int]:
    """`_successor` of a campaign by id: where a decision on a merged campaign belongs."""
    with store.read() as conn:
        return _successor(conn, _campaign_row(conn, campaign_id))


def campaign_timeline(store: "Store", campaign_id: int, freq: str = "auto",
                      png_path: Optional[str | Path] = None) -> dict[str, Any]:
    """Members per hour or day with the running size; writes a PNG plot when `png_path` is given."""
    if freq not in ("auto", "h", "D"):
        raise CampaignError(f"unknown timeline frequency {freq!r} (auto, h, D)")
    with store.read(snapshot=True) as conn:
        _campaign_row(conn, campaign_id)
        times, counts = _member_times(conn, campaign_id)
    if freq == "auto":
        span = (max(times) - min(times)) if times else dt.timedelta(0)
        freq = "h" if span <= dt.timedelta(days=7) else "D"
    series = _series(times, freq, counts)
    out: dict[str, Any] = {"campaign_id": campaign_id, "freq": "hour" if freq == "h" else "day",
                           "buckets": [{"start": s, "new": n, "size": c} for s, n, c in series]}
    if png_path:
        out["png"] = str(_plot_timeline(campaign_id, series, freq, Path(png_path)))
    return out


def _member_times(conn: Any, campaign_id: int) -> tuple[list[dt.datetime], list[int]]:
    """(each distinct time a member of the campaign came, how many came then), in one statement
    joining the members to their items: the timeline (drawn on every page of the Campaigns tab)
    read every member id, then their items 500 ids at a time, one statement per 500 members."""
    seen = _item_time()
    rows = conn.execute(select(seen.label("seen"), func.count().label("n"))
                        .select_from(_MT.join(_IT, _IT.c.id == _MT.c.item_id))
                        .where(_MT.c.campaign_id == campaign_id, seen.is_not(None)).group_by(seen)).all()
    return [r.seen for r in rows], [int(r.n) for r in rows]


def _series(times: Sequence[dt.datetime], freq: str,
            counts: Optional[Sequence[int]] = None) -> list[tuple[dt.datetime, int, int]]:
    """`facts.timeline`, also for a member dated in the last hour or day a datetime holds (year
    9999): filling gaps, it stepped one bucket past the last, an OverflowError traceback. Such
    times are counted one bucket earlier and the buckets moved back (whole hours and days)."""
    step = dt.timedelta(hours=1) if freq == "h" else dt.timedelta(days=1)
    if times and max(times) > dt.datetime.max - 2 * step and min(times) >= dt.datetime.min + step:
        return [(s + step, n, c) for s, n, c in facts.timeline([t - step for t in times], freq, counts)]
    return facts.timeline(times, freq, counts)


# The latest time matplotlib's date axis takes: its float day numbers round datetime.max up to
# the year 10000, which it refuses.
_LAST_PLOTTED = dt.datetime(9999, 12, 31, 23, 59, 59)


def _later(when: dt.datetime, by: dt.timedelta) -> dt.datetime:
    """`when + by`, kept at or before `_LAST_PLOTTED` (a bucket in the year 9999 has no room after it)."""
    return min(when, _LAST_PLOTTED - by) + by


@serialised
def _plot_timeline(campaign_id: int, series: list[tuple[dt.datetime, int, int]], freq: str, path: Path) -> Path:
    """Bars of new members and the running size, times in UTC (as stored); one legend for both
    axes, above the plot, so it never covers a bar or the line.

    A bar spans its bin, from its start (`align="edge"`, the bin's width): centred on its start,
    the 13:00 bar reached back to 12:30, as if members came before 13:00. The size's point sits
    mid-bin, above its bar. Both axes count members, so their ticks are whole numbers."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()

    path.parent.mkdir(parents=True, exist_ok=True)
    unit = "hour" if freq == "h" else "day"
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    handles: list[Any] = []
    if series:
        xs = [s for s, _, _ in series]
        step = dt.timedelta(hours=1) if freq == "h" else dt.timedelta(days=1)
        handles.append(ax.bar(xs, [n for _, n, _ in series], width=step / dt.timedelta(days=1), align="edge",
                              color="#d95f02", edgecolor="white", linewidth=0.5, label=f"new members per {unit}"))
        ax2 = ax.twinx()
        handles += ax2.plot([_later(x, step / 2) for x in xs], [c for _, _, c in series], color="#1b9e77",
                            marker=".", label="campaign size")
        ax2.set_ylabel("size")
        ax2.set_ylim(bottom=0)
        ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
        # one bucket alone would fill the plot, ticks in minutes; a member dated year 1 or 9999
        # has no bucket before or after it (that overflowed: a traceback instead of the plot)
        # the last bar ends a bin after its start: one more bin of room after it
        ax.set_xlim(max(xs[0], dt.datetime.min + step) - step, _later(xs[-1], 2 * step))
    ax.set_ylabel("new members")
    ax.set_xlabel(f"{unit} (UTC)")
    ax.set_title(f"Campaign {campaign_id}: growth", pad=22 if handles else 6)
    if handles:
        ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False, fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
