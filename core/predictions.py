"""The prediction of record: which of an item's predictions counts, in one place.

An item may be scored by several model versions (a challenger scored beside the champion, a
retired model's old rows). The rule every reader follows (queues, review packets, bulk
decisions, campaign facts, item listings, status): the champion's newest prediction of the
item; where the champion never scored it, the newest prediction of any model, so that nothing
scored is left out. A challenger's scores never become what an analyst is shown or judged
against until it is promoted.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from sqlalchemy import Connection, Select, exists, func, select

from .schema import ModelVersion, Prediction

P = Prediction.__table__
_MV = ModelVersion.__table__
_CHUNK = 900  # stay under SQLite's bound-parameter limit


def champion_version(conn: Connection) -> Optional[str]:
    """The id of the champion model version (the most recently promoted one), or None."""
    return conn.execute(select(_MV.c.id).where(_MV.c.role == "champion")
                        .order_by(_MV.c.promoted_at.desc()).limit(1)).scalar()


def record_ids(conn: Connection) -> Select[Any]:
    """A SELECT of the prediction id of record of every scored item (one id per item)."""
    newest = select(func.max(P.c.id)).group_by(P.c.item_id)
    champ = champion_version(conn)
    if champ is None:
        return newest
    other = P.alias("p_champ")
    by_champ = select(func.max(P.c.id)).where(P.c.model_version == champ).group_by(P.c.item_id)
    rest = (select(func.max(P.c.id))
            .where(~exists(select(1).where(other.c.item_id == P.c.item_id, other.c.model_version == champ)))
            .group_by(P.c.item_id))
    return by_champ.union_all(rest)


def predictions_of_record(conn: Connection, item_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """item id -> its prediction of record (the row as a dict); unscored items are absent."""
    champ = champion_version(conn)
    ids = list(dict.fromkeys(i for i in item_ids if i is not None))
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(select(P).where(P.c.item_id.in_(ids[start:start + _CHUNK])).order_by(P.c.id))
        for r in rows.mappings():
            prev = out.get(r["item_id"])
            # Rows come oldest first: a newer row wins unless it would displace the champion's.
            if prev is None or r["model_version"] == champ or prev["model_version"] != champ:
                out[r["item_id"]] = dict(r)
    return out
