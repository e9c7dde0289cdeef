"""The two rules of record under attack (`core.predictions`, `core.labels`), checked against a
reference computed here, on SQLite and PostgreSQL.

Defects this guards against: `record_ids` took the newest prediction of any model when no version
held the champion role while `predictions_of_record` still ranked a former champion's first (the
status counts and `items --predicted` disagreed with the item shown); `record_ids` froze the
champion it read into the SELECT, so a listing whose pages ran after a promotion filtered by the
old champion's labels; `champion_version` named a different champion on PostgreSQL (NULL
promoted_at sorts first there) than on SQLite; `current_decisions` ran its "nothing supersedes it"
test once per decision on SQLite (quadratic: 10,000 decisions took 10 s).
"""
from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import insert, select, update

from core.labels import AUTHORITATIVE_KINDS, current_decisions
from core.predictions import champion_version, predictions_of_record, record_ids
from core.schema import Decision, Item, ModelVersion, Prediction

T0 = dt.datetime(2026, 1, 1)
P, MV, D = Prediction.__table__, ModelVersion.__table__, Decision.__table__


def _items(conn, n):
    ids = [f"it:{k:05d}" for k in range(n)]
    conn.execute(insert(Item.__table__), [dict(id=i, source="s", text="t", text_hash="h") for i in ids])
    return ids


def _version(conn, vid, role="challenger", promoted_at=None):
    conn.execute(insert(MV).values(id=vid, kind="test", artifact_path="-", role=role, labels=["a", "b"],
                                   promoted_at=promoted_at))


def _predict(conn, item_id, version, label="a"):
    conn.execute(insert(P).values(item_id=item_id, model_version=version, label=label, score=0.9,
                                  scores={"a": 0.9, "b": 0.1}, uncertainty=0.1, taxonomy_version="1"))


def _reference(conn):
    """item id -> model version of record, as the module doc says, in plain Python."""
    versions = conn.execute(select(MV.c.id, MV.c.role, MV.c.promoted_at)).all()
    champs = [(p is not None, p or T0, v) for v, role, p in versions if role == "champion"]
    champ = max(champs)[2] if champs else None
    rank = {v: 0 if v == champ else (1 if p is not None else 2) for v, _, p in versions}
    best = {}
    for pid, item_id, version in conn.execute(select(P.c.id, P.c.item_id, P.c.model_version)):
        key = (-rank.get(version, 2), pid)
        if item_id not in best or key > best[item_id][0]:
            best[item_id] = (key, version)
    return {i: v for i, (_, v) in best.items()}


def _both_readers(conn, ids, query=None):
    by_python = {i: p["model_version"] for i, p in predictions_of_record(conn, ids).items()}
    by_sql = dict(conn.execute(select(P.c.item_id, P.c.model_version)
                               .where(P.c.id.in_(query if query is not None else record_ids(conn)))).all())
    return by_python, by_sql


def test_both_readers_agree_with_the_reference_without_a_champion(any_store):
    """No version holds the role (a hand-edited or imported registry): a former champion's
    prediction, retired or not, still outranks a newer shadow's and an unknown version's."""
    with any_store.begin() as conn:
        ids = _items(conn, 5)
        _version(conn, "old", "challenger", T0)
        _version(conn, "gone", "retired", T0 + dt.timedelta(days=1))
        _version(conn, "shadow")
        _predict(conn, ids[0], "old"), _predict(conn, ids[0], "shadow")
        _predict(conn, ids[1], "gone"), _predict(conn, ids[1], "old"), _predict(conn, ids[1], "ghost")
        _predict(conn, ids[2], "ghost"), _predict(conn, ids[2], "shadow")  # never a champion: the newest
        _predict(conn, ids[3], "shadow")
    with any_store.read() as conn:
        assert champion_version(conn) is None
        ref = _reference(conn)
        by_python, by_sql = _both_readers(conn, ids)
    assert ref == {ids[0]: "old", ids[1]: "old", ids[2]: "shadow", ids[3]: "shadow"}
    assert by_python == ref and by_sql == ref


def test_a_record_query_built_before_a_promotion_answers_for_the_new_champion(any_store):
    """`items --predicted` builds the SELECT in one transaction and pages through it in others."""
    with any_store.begin() as conn:
        ids = _items(conn, 3)
        _version(conn, "c1", "champion", T0)
        _version(conn, "c2")
        for i in ids:
            _predict(conn, i, "c1", "a"), _predict(conn, i, "c2", "b")
    with any_store.read() as conn:
        query = record_ids(conn)
    with any_store.begin() as conn:  # `models promote c2` between the two reads
        conn.execute(update(MV).where(MV.c.id == "c1").values(role="challenger"))
        conn.execute(update(MV).where(MV.c.id == "c2").values(role="champion", promoted_at=T0 + dt.timedelta(days=1)))
    with any_store.read() as conn:
        by_python, by_sql = _both_readers(conn, ids, query)
        assert by_python == _reference(conn) == by_sql == {i: "c2" for i in ids}


def test_the_champion_is_the_same_on_sqlite_and_postgresql(any_store):
    """Two rows holding the role (a legacy row promoted before the time was kept, a hand edit):
    the most recently promoted one, NULL last, then the larger id; both readers follow it."""
    with any_store.begin() as conn:
        ids = _items(conn, 2)
        _version(conn, "c2", "champion", T0)
        _version(conn, "c3", "champion", None)
        for v in ("c2", "c3"):
            _predict(conn, ids[0], v)
    with any_store.read() as conn:
        assert champion_version(conn) == "c2"
        assert _both_readers(conn, ids) == ({ids[0]: "c2"},) * 2
    with any_store.begin() as conn:
        _version(conn, "c4", "champion", T0)  # the same moment as c2
        _predict(conn, ids[1], "c2"), _predict(conn, ids[1], "c4")
    with any_store.read() as conn:
        assert champion_version(conn) == "c4"
        assert _both_readers(conn, ids) == ({ids[0]: "c2", ids[1]: "c4"},) * 2 == (_reference(conn),) * 2


def _decisions(store, n_items, seed=7):
    """Random supersession chains (corrections, undos, calibration copies, equal and skewed
    timestamps); returns the reference label of record per item."""
    rnd, rows = random.Random(seed), []
    with store.begin() as conn:
        ids = _items(conn, n_items)
    for item_id in ids:
        prev = None
        for _ in range(rnd.randint(1, 4)):
            rows.append(dict(id=len(rows) + 1, item_id=item_id, reviewer="r", label=rnd.choice("ab"), action="x",
                             kind=rnd.choice(AUTHORITATIVE_KINDS + ("calibration", "undo")), taxonomy_version="1",
                             supersedes_id=prev if prev is not None and rnd.random() < 0.7 else None,
                             created_at=T0 + dt.timedelta(seconds=rnd.choice([0, 0, 5, -5, 10**6]))))
            prev = rows[-1]["id"]
    with store.begin() as conn:
        conn.execute(insert(D), rows)
    superseded = {r["supersedes_id"] for r in rows}
    ref = {}
    for r in rows:
        if r["kind"] in AUTHORITATIVE_KINDS and r["id"] not in superseded:
            if r["item_id"] not in ref or r["id"] > ref[r["item_id"]]["id"]:
                ref[r["item_id"]] = r
    return ids, {i: r["id"] for i, r in ref.items()}


def _vm_steps(conn, fn):
    """SQLite virtual-machine instructions `fn` ran, in thousands: a count, not a clock."""
    raw, steps = conn.connection.driver_connection, [0]

    def tick():
        steps[0] += 1
        return 0
    raw.set_progress_handler(tick, 1000)
    try:
        out = fn()
    finally:
        raw.set_progress_handler(None, 1000)
    return out, steps[0]


def test_current_decisions_is_right_and_grows_linearly_on_sqlite(sqlite_store, tmp_path):
    from core.store import open_store

    work = {}
    for n, store in ((1500, sqlite_store), (3000, open_store(tmp_path / "double"))):
        ids, ref = _decisions(store, n)
        with store.read() as conn:
            every, steps = _vm_steps(conn, lambda: current_decisions(conn))
            some = current_decisions(conn, ids[::3] + [None])
        assert {i: d["id"] for i, d in every.items()} == ref
        assert {i: d["id"] for i, d in some.items()} == {i: ref[i] for i in ids[::3] if i in ref}
        work[n] = steps
        if store is not sqlite_store:
            store.dispose()
    assert work[3000] < 3 * work[1500], work  # twice the decisions, about twice the work (it was 4x)
