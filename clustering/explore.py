"""Reading campaigns for trend analysts: lists, details with members, growth timelines and plots.

Facts that change without re-clustering (growth, the decided label mix, the mean model score)
are computed on read from the label of record and the prediction of record.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from sqlalchemy import or_, select

from core.labels import current_decisions
from core.predictions import predictions_of_record
from core.plotting import pyplot, serialised
from core.schema import utcnow

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

def _live_facts(conn: Any, campaign_id: int, members: Sequence[str], benign: str,
                now: dt.datetime) -> dict[str, Any]:
    """Facts that change without re-clustering: growth, decided label mix, mean model score."""
    rows = _fetch_items(conn, members, [_item_time().label("seen"), _IT.c.policy_label]).values()
    times = [r.seen for r in rows if r.seen is not None]
    mix = facts.label_mix(_latest_decisions(conn, members).values())
    preds = {k: p["scores"] or {} for k, p in predictions_of_record(conn, members).items()}
    means = facts.mean_scores(preds.values())
    sources = {r.policy_label for r in rows if r.policy_label}
    return {
        "growth": facts.growth(times, now),
        "decided": sum(mix.values()), "label_mix": mix,
        "scored": len(preds), "mean_scores": means,
        "mean_violation_score": round(1.0 - means[benign], 4) if benign in means else None,
        # what the masking rule needs to know whether any member is sensitive (labeling.masking)
        "unscored": sum(1 for m in members if not preds.get(m)),
        "max_scores": {p: max(float(s.get(p, 0.0)) for s in preds.values()) for p in {p for s in preds.values() for p in s}},
        "member_labels": sorted(sources | set(mix)),
    }

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
                   now: Optional[dt.datetime] = None) -> list[dict[str, Any]]:
    """Campaigns, biggest (or most recent: sort='last_seen') first, with their live facts.
    `min_size` only filters active campaigns: a merged one has size 0 and would never be listed."""
    check_count(limit, "limit")
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
        for row in conn.execute(q).mappings().all():
            members = _member_ids(conn, row["id"])
            out.append({**_campaign_dict(row), **_exemplar(conn, row["exemplar_item_id"]),
                        **_live_facts(conn, row["id"], members, benign, now)})
    return out

def _campaign_dict(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "status": row["status"], "size": row["size"],
            "first_seen": row["first_seen"], "last_seen": row["last_seen"],
            "exemplar_item_id": row["exemplar_item_id"], "top_terms": row["top_terms"] or [],
            "entities": row["entities"] or {}, "link_reasons": row["link_reasons"] or {},
            "updated_at": row["updated_at"]}

def campaign_detail(store: "Store", campaign_id: int, members_limit: int = 20,
                    taxonomy: Optional["Taxonomy"] = None, now: Optional[dt.datetime] = None) -> dict[str, Any]:
    """One campaign with its facts and its first members (with why each is linked). Read at one
    moment (a merge meanwhile showed an active campaign with another's or no members); the links
    by campaign, not by a list of every shown member's id (over 65,535 failed on PostgreSQL)."""
    check_count(members_limit, "members")
    benign = taxonomy.benign_label if taxonomy else "benign"
    with store.read(snapshot=True) as conn:
        row = _campaign_row(conn, campaign_id)
        members = _member_ids(conn, campaign_id)
        shown = members[:members_limit] if members_limit else members
        wanted = set(shown)
        links = {r.item_id: r for r in conn.execute(select(_MT).where(_MT.c.campaign_id == campaign_id))
                 if r.item_id in wanted}
        items = _fetch_items(conn, shown, [_IT.c.text, _IT.c.source, _IT.c.policy_label, _item_time().label("seen")])
        decided = _latest_decisions(conn, shown)
        scores = {k: p["scores"] for k, p in predictions_of_record(conn, shown).items()}
        detail = {**_campaign_dict(row), **_exemplar(conn, row["exemplar_item_id"]),
                  **_live_facts(conn, campaign_id, members, benign, _utc(now))}
    detail["members"] = [{"item_id": i, "source": items[i].source, "seen": items[i].seen,
                          "linked_by": links[i].linked_by, "similarity": links[i].similarity,
                          "decided_label": decided.get(i), "text": items[i].text,
                          "scores": scores.get(i), "policy_label": items[i].policy_label}
                         for i in shown if i in items and i in links]
    return detail

def campaign_timeline(store: "Store", campaign_id: int, freq: str = "auto",
                      png_path: Optional[str | Path] = None) -> dict[str, Any]:
    """Members per hour or day with the running size; writes a PNG plot when `png_path` is given."""
    if freq not in ("auto", "h", "D"):
        raise CampaignError(f"unknown timeline frequency {freq!r} (auto, h, D)")
    with store.read(snapshot=True) as conn:
        _campaign_row(conn, campaign_id)
        members = _member_ids(conn, campaign_id)
        times = [r.seen for r in _fetch_items(conn, members, [_item_time().label("seen")]).values() if r.seen is not None]
    if freq == "auto":
        span = (max(times) - min(times)) if times else dt.timedelta(0)
        freq = "h" if span <= dt.timedelta(days=7) else "D"
    series = _series(times, freq)
    out: dict[str, Any] = {"campaign_id": campaign_id, "freq": "hour" if freq == "h" else "day",
                           "buckets": [{"start": s, "new": n, "size": c} for s, n, c in series]}
    if png_path:
        out["png"] = str(_plot_timeline(campaign_id, series, freq, Path(png_path)))
    return out


def _series(times: Sequence[dt.datetime], freq: str) -> list[tuple[dt.datetime, int, int]]:
    """`facts.timeline`, also for a member dated in the last hour or day a datetime holds (year
    9999): filling gaps, it stepped one bucket past the last, an OverflowError traceback. Such
    times are counted one bucket earlier and the buckets moved back (whole hours and days)."""
    step = dt.timedelta(hours=1) if freq == "h" else dt.timedelta(days=1)
    if times and max(times) > dt.datetime.max - 2 * step and min(times) >= dt.datetime.min + step:
        return [(s + step, n, c) for s, n, c in facts.timeline([t - step for t in times], freq)]
    return facts.timeline(times, freq)


# The latest time matplotlib's date axis takes: its float day numbers round datetime.max up to
# the year 10000, which it refuses.
_LAST_PLOTTED = dt.datetime(9999, 12, 31, 23, 59, 59)


@serialised
def _plot_timeline(campaign_id: int, series: list[tuple[dt.datetime, int, int]], freq: str, path: Path) -> Path:
    """Bars of new members and the running size, times in UTC (as stored); one legend for both
    axes, above the plot, so it never covers a bar or the line."""
    plt = pyplot()

    path.parent.mkdir(parents=True, exist_ok=True)
    unit = "hour" if freq == "h" else "day"
    fig, ax = plt.subplots(figsize=(8, 3.5))
    handles: list[Any] = []
    if series:
        xs = [s for s, _, _ in series]
        width = (1 / 24 if freq == "h" else 1.0) * 0.8
        handles.append(ax.bar(xs, [n for _, n, _ in series], width=width, color="#d95f02",
                              label=f"new members per {unit}"))
        ax2 = ax.twinx()
        handles += ax2.plot(xs, [c for _, _, c in series], color="#1b9e77", marker=".", label="campaign size")
        ax2.set_ylabel("size")
        ax2.set_ylim(bottom=0)
        step = dt.timedelta(hours=1) if freq == "h" else dt.timedelta(days=1)
        # one bucket alone would fill the plot, ticks in minutes; a member dated year 1 or 9999
        # has no bucket before or after it (that overflowed: a traceback instead of the plot)
        ax.set_xlim(max(xs[0], dt.datetime.min + step) - step, min(xs[-1], _LAST_PLOTTED - step) + step)
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
