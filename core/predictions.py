"""The prediction of record: which of an item's predictions counts, in one place.

An item may be scored by several model versions (a challenger scored beside the champion, a
retired model's old rows). The rule every reader follows (queues, review packets, bulk
decisions, campaign facts, item listings, status), in order of precedence:

1. the champion's newest prediction of the item;
2. where the champion never scored it, the newest prediction of a version that was champion
   once (a former champion, retired or not): what the team relied on when the item was scored;
3. only where no champion ever scored it, the newest prediction of any model, so that nothing
   scored is left out.

So a challenger's scores never displace a champion's, present or past, as what an analyst is
shown or judged against until it is promoted; "newest" is the largest prediction id.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional, Sequence

from sqlalchemy import Connection, Select, Subquery, case, func, select

from .schema import ModelVersion, Prediction

P = Prediction.__table__
_MV = ModelVersion.__table__
_CHUNK = 900  # stay under SQLite's bound-parameter limit
_SLACK = 1e-6  # float rounding past 0 or 1 (scores are stored to 6 places) is still a probability


def _bad_probability(v: Any) -> Optional[str]:
    """Why `v` is not a probability (a finite number in [0, 1]), or None when it is one."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"is {type(v).__name__} {str(v)[:40]!r}, not a number"
    if not math.isfinite(v):
        return f"is {v}"
    if not -_SLACK <= v <= 1.0 + _SLACK:
        return f"is {v:g}, outside [0, 1]"
    return None


def prediction_problem(row: Mapping[str, Any]) -> Optional[str]:
    """Why a prediction row (`score`, `scores`, `uncertainty`) cannot be stored or planned, or None.

    The one rule for a prediction's numbers, kept here beside the prediction of record: every
    per-policy score, the top score and the uncertainty are finite numbers in [0, 1]. A NaN or
    an infinity from a broken model stored as NULL (SQLite) or was refused with the whole batch
    (PostgreSQL's JSON has no NaN), and later made a case's priority NaN. `models.scoring` refuses
    such a row before it is written; case building skips a stored one (written before this rule)
    with this reason, so one bad row never stops a batch. The answer names the field, e.g.
    "scores['benign'] is nan"."""
    scores = row.get("scores")
    if not isinstance(scores, Mapping) or not scores:
        return "scores is missing (a prediction has one score per policy)"
    for label, v in scores.items():
        bad = _bad_probability(v)
        if bad:
            return f"scores[{str(label)[:60]!r}] {bad}"
    for name in ("score", "uncertainty"):
        if row.get(name) is not None:
            bad = _bad_probability(row[name])
            if bad:
                return f"{name} {bad}"
    return None


def champion_query() -> Select[Any]:
    """The champion as a SELECT: the role's most recently promoted row. One promoted before the
    time was recorded (NULL) comes last on both stores (PostgreSQL sorts NULL first when
    descending, SQLite last), and the id breaks a tie, so two rows holding the role (a legacy or
    hand-edited registry) name the same champion on SQLite and PostgreSQL."""
    return (select(_MV.c.id).where(_MV.c.role == "champion")
            .order_by(_MV.c.promoted_at.desc().nulls_last(), _MV.c.id.desc()).limit(1))


def champion_version(conn: Connection) -> Optional[str]:
    """The id of the champion model version (the most recently promoted one), or None."""
    return conn.execute(champion_query()).scalar()


def _versions(conn: Connection) -> dict[str, int]:
    """model version id -> its precedence rank (0 champion, 1 former champion, 2 any other)."""
    champ = champion_version(conn)
    return {v: 0 if v == champ else (1 if promoted is not None else 2)
            for v, promoted in conn.execute(select(_MV.c.id, _MV.c.promoted_at))}


def record_ids(conn: Connection) -> Select[Any]:
    """A SELECT of the prediction id of record of every scored item (one id per item).

    The champion is a subquery of the SELECT, not a value read now: the SELECT may run later
    (a listing's pages, another transaction), and a promotion in between must not leave it
    ranking the old champion first while `predictions_of_record` ranks the new one. With no
    champion, a former champion's prediction still outranks a never-promoted model's, as there."""
    ordered = ranked_predictions([P.c.id])
    return select(ordered.c.id).where(ordered.c.n == 1)


def ranked_predictions(columns: Sequence[Any], *, within: Any = None, where: Any = None,
                       name: str = "ranked") -> Subquery:
    """A subquery of `columns` of predictions and `n`, 1 on each item's prediction of record (the
    champion's, then a former champion's, then any model's; newest first): the ranking rule in SQL,
    as `predictions_of_record` applies it in Python. `within` (a table with `item_id`, joined) and
    `where` rank only the predictions a caller needs, e.g. one campaign's members, where the
    whole table would rank every prediction in the store."""
    champ = champion_query().scalar_subquery()
    rank = case((_MV.c.id == champ, 0), (_MV.c.promoted_at.is_not(None), 1), else_=2)
    source = P if within is None else P.join(within, within.c.item_id == P.c.item_id)
    q = (select(*columns, func.row_number().over(partition_by=P.c.item_id,
                                                 order_by=(rank, P.c.id.desc())).label("n"))
         .select_from(source.outerjoin(_MV, _MV.c.id == P.c.model_version)))
    return (q if where is None else q.where(where)).subquery(name)


def predictions_of_record(conn: Connection, item_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """item id -> its prediction of record (the row as a dict); unscored items are absent."""
    ranks = _versions(conn)
    ids = list(dict.fromkeys(i for i in item_ids if i is not None))
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(select(P).where(P.c.item_id.in_(ids[start:start + _CHUNK])).order_by(P.c.id))
        for r in rows.mappings():
            prev = out.get(r["item_id"])
            # Rows come oldest first: a newer row wins unless its version ranks below the kept one's.
            if prev is None or ranks.get(r["model_version"], 2) <= ranks.get(prev["model_version"], 2):
                out[r["item_id"]] = dict(r)
    return out
