"""Hardening of the reads behind one review page view against a campaign of 100,000 members.

The defects: `packets.case_masked` and `notes.sensitive_campaigns` read every member of a
campaign into Python (its item, prediction of record and label of record, 900 at a time) to say
whether one of them is masked, on every page view of every case of the campaign; the context
panel listed every note of a case's campaign. Boundedness is shown by what the store is asked
(statements and values bound), the same for 20 members as for 2,000; the answers are shown to be
the masking rule's (`masking.is_sensitive` over each member, as read before) on both stores.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select

from core.labels import current_decisions
from core.predictions import predictions_of_record
from core.schema import CampaignMember, Decision, Item, ModelVersion, Prediction
from labeling.masking import is_sensitive, mask_text
from labeling.notes import sensitive_campaigns
from labeling.packets import case_masked

from test_queue_support import MODEL, T0, add_campaign, add_scored
from test_queue_support import asked as _asked

BENIGN = {"benign": 0.95, "spam": 0.02, "scam": 0.01, "hate": 0.01, "harassment": 0.01}
HATE = {"benign": 0.1, "spam": 0.05, "scam": 0.05, "hate": 0.75, "harassment": 0.05}


def _items(store, ids, policy_label=None):
    with store.begin() as conn:
        conn.execute(insert(Item.__table__), [
            {"id": i, "source": "test", "surface": "sms", "text": f"text of {i}", "text_hash": f"h-{i}",
             "ingested_at": T0, "created_at": T0, "policy_label": policy_label} for i in ids])


def _pred(store, item_id, scores, model=MODEL):
    with store.begin() as conn:
        conn.execute(insert(Prediction.__table__).values(
            item_id=item_id, model_version=model, label="benign", score=0.5, scores=scores, uncertainty=0.1,
            taxonomy_version="t", created_at=T0))


def _decide(store, item_id, label, supersedes=None, action="no_action"):
    with store.begin() as conn:
        return conn.execute(insert(Decision.__table__).values(
            item_id=item_id, reviewer="ann", kind="review", label=label, action=action,
            taxonomy_version="t", supersedes_id=supersedes, created_at=T0).returning(Decision.id)).scalar_one()


def _python_rule(store, campaign_ids, settings):
    """The campaigns holding a sensitive member as read before: every member, in Python."""
    M, I = CampaignMember.__table__, Item.__table__
    with store.read() as conn:
        rows = conn.execute(select(M.c.campaign_id, I.c.id, I.c.policy_label).join(I, I.c.id == M.c.item_id)
                            .where(M.c.campaign_id.in_(campaign_ids))).all()
        ids = [r.id for r in rows]
        preds, decided = predictions_of_record(conn, ids), current_decisions(conn, ids)
    return {r.campaign_id for r in rows if is_sensitive(settings, (preds.get(r.id) or {}).get("scores"),
                                                         r.policy_label, (decided.get(r.id) or {}).get("label"))}


def test_a_campaigns_masking_asked_of_the_store_is_the_masking_rule(any_store, review_settings):
    """One campaign per kind of member; each answer is `is_sensitive`'s over its members, as before."""
    s = any_store
    cases = {  # member -> sensitive by the rule
        "low": False, "high": True, "edge": True, "ints": True, "unscored": True, "empty": True,
        "null": True, "text": True, "nokey": False, "truth": True, "decided": True, "undone": False,
        "challenger": False, "former": True}
    _items(s, [k for k in cases if k != "truth"])
    _items(s, ["truth"], policy_label="hate")
    for k, scores in {"low": BENIGN, "high": HATE, "edge": dict(BENIGN, hate=0.15), "ints": {"benign": 0, "hate": 1},
                      "empty": {}, "null": dict(BENIGN, hate=None), "text": dict(BENIGN, hate="lots"),
                      "nokey": {"benign": 1.0}, "truth": BENIGN, "decided": BENIGN, "undone": BENIGN}.items():
        _pred(s, k, scores)
    _decide(s, "decided", "hate")
    _decide(s, "undone", "benign", supersedes=_decide(s, "undone", "hate"))
    with s.begin() as conn:  # the champion's low score is of record, not a newer challenger's high one;
        conn.execute(insert(ModelVersion.__table__), [  # a former champion's, not a never-promoted model's
            {"id": v, "kind": "t", "artifact_path": "-", "role": role, "labels": [], "promoted_at": at}
            for v, role, at in (("champ", "champion", T0), ("old", "retired", T0 - dt.timedelta(days=9)),
                                ("chal", "challenger", None))])
    _pred(s, "challenger", BENIGN, "champ")
    _pred(s, "challenger", HATE, "chal")
    _pred(s, "former", HATE, "old")
    _pred(s, "former", BENIGN, "chal")
    if s.is_sqlite:  # kept there as `NaN`, which SQLite's JSON functions refuse (PostgreSQL refuses to store it)
        cases["nan"] = True
        _items(s, ["nan"])
        _pred(s, "nan", dict(BENIGN, hate=float("nan")))
    camps = {k: add_campaign(s, [k]) for k in cases}
    with s.read() as conn:
        got = sensitive_campaigns(conn, list(camps.values()), review_settings)
    expected = {camps[k] for k, hidden in cases.items() if hidden}
    assert _python_rule(s, list(camps.values()), review_settings) == expected  # the table is the rule's
    assert got == expected, sorted(k for k, c in camps.items() if (c in got) != (c in expected))


def _campaign_of(store, taxonomy, n, hate_at=None):
    """A campaign of `n` scored members (one hate-scored at index `hate_at`) and a case row of it."""
    ids = [f"c{n}-{hate_at}-{i:05d}" for i in range(n)]
    add_scored(store, taxonomy, [{"id": i, "label": "spam", "p": 0.9, "scores": HATE if k == hate_at else BENIGN}
                                 for k, i in enumerate(ids)])
    cid = add_campaign(store, ids)
    case = {"id": 1, "item_id": ids[0], "campaign_id": cid, "predicted_label": "spam", "model_version": MODEL,
            "meta": {"scores": BENIGN}}
    return cid, case, {"id": ids[0], "policy_label": None}


def test_a_case_of_a_huge_campaign_is_masked_in_a_bounded_number_of_reads(any_store, taxonomy, review_settings):
    """Was 3 statements per 900 members and every member's id bound (2,000 values for 2,000 members)."""
    s, asked, answers = any_store, {}, {}
    for n, hate_at in ((20, None), (2000, None), (20, 7), (2000, 1500)):
        cid, case, item = _campaign_of(s, taxonomy, n, hate_at)
        with _asked(s) as seen, s.read() as conn:
            answers[(n, hate_at)] = (case_masked(conn, case, item, review_settings),
                                     sensitive_campaigns(conn, [cid], review_settings) == {cid})
        asked[(n, hate_at)] = tuple(seen)
        assert answers[(n, hate_at)] == ((hate_at is not None),) * 2
        assert answers[(n, hate_at)][0] == bool(_python_rule(s, [cid], review_settings))  # as read before
    assert asked[(20, None)] == asked[(2000, None)] and asked[(20, 7)] == asked[(2000, 1500)], asked
    assert asked[(2000, None)][1] < 200, asked  # was every member id bound: 2,000 and more


def _notes(store, campaign_id, n, start=0):
    from core.schema import Note
    with store.begin() as conn:
        conn.execute(insert(Note.__table__), [
            {"entity_type": "campaign", "entity_id": str(campaign_id), "author": "lee", "body": f"vermin wave note {i}",
             "created_at": T0 + dt.timedelta(seconds=i)} for i in range(start, start + n)])


def test_the_context_panel_shows_a_campaigns_newest_notes_and_counts_the_rest(any_store, taxonomy, review_settings,
                                                                             queue_config):
    """Was every note of the campaign, read and sent with each case of its members (3,000 here)."""
    from labeling.cases import build_cases
    from labeling.context import case_context
    from labeling.notes import NOTES_SHOWN
    from workbench.ui.context_panel import notes_html

    from test_queue_support import case_ids, quiet

    s = any_store
    add_scored(s, taxonomy, [{"id": f"{w}{i}", "label": "spam", "p": 0.9, "text": f"cheap watches {w}{i}",
                              "scores": HATE if (w, i) == ("h", 2) else BENIGN} for w in "ph" for i in range(4)])
    camps = {w: add_campaign(s, [f"{w}{i}" for i in range(4)]) for w in "ph"}  # h2 hate-scored: h is masked
    build_cases(s, taxonomy, quiet(queue_config), progress=False)
    cases = case_ids(s, lambda c: next(w for w, cid in camps.items() if cid == c))
    _notes(s, camps["p"], 60)
    _notes(s, camps["h"], 60)
    with _asked(s) as few:
        ctx = case_context(s, taxonomy, cases["p"], "bob", review_settings)
    assert not ctx["masked"] and ctx["campaign_id"] == camps["p"]
    bodies = [n["body"] for n in ctx["notes"]["campaign"]]
    assert bodies == [f"vermin wave note {i}" for i in range(60 - NOTES_SHOWN, 60)]  # the newest, oldest first
    assert ctx["notes_older"] == {"item": 0, "campaign": 60 - NOTES_SHOWN}
    assert f"{60 - NOTES_SHOWN} older notes not shown" in notes_html(ctx) and "vermin wave note 59" in notes_html(ctx)
    hid = case_context(s, taxonomy, cases["h"], "bob", review_settings)  # masked as before: a member is
    assert hid["masked"] and hid["notes_older"]["campaign"] == 60 - NOTES_SHOWN
    assert [n["body"] for n in hid["notes"]["campaign"]] == [mask_text(b) for b in bodies]
    _notes(s, camps["p"], 2940, start=60)
    with _asked(s) as many:
        ctx = case_context(s, taxonomy, cases["p"], "bob", review_settings)
    assert len(ctx["notes"]["campaign"]) == NOTES_SHOWN and ctx["notes_older"]["campaign"] == 3000 - NOTES_SHOWN
    assert ctx["notes"]["campaign"][-1]["body"] == "vermin wave note 2999"
    assert tuple(few) == tuple(many)
    assert f"{3000 - NOTES_SHOWN:,} older notes not shown" in notes_html(ctx)
    assert notes_html(ctx).count("vermin wave note") == NOTES_SHOWN  # the page sends 50, not 3,000


def test_the_review_packets_author_history_counts_in_the_store(any_store, review_settings):
    """Was every item of the author read, and their decisions (every id bound), on each packet."""
    from sqlalchemy import update

    from labeling.packets import author_history

    s, asked, got = any_store, {}, {}
    for author, n in (("few", 20), ("many", 1500)):
        ids = [f"{author}{i:05d}" for i in range(n)]
        _items(s, ids)
        with s.begin() as conn:
            conn.execute(update(Item.__table__).where(Item.__table__.c.id.in_(ids)).values(author_id=author))
        _decide(s, ids[1], "hate")
        _decide(s, ids[2], "benign", supersedes=_decide(s, ids[2], "hate"))
        _decide(s, ids[-1], "spam", action="remove")
        with _asked(s) as seen, s.read() as conn:
            got[author] = author_history(conn, author, ids[0], review_settings)
        asked[author] = tuple(seen)
        with s.read() as conn:  # as counted before: every other item's label of record
            every = current_decisions(conn, ids[1:])
        assert (got[author]["items"], got[author]["decided"]) == (n - 1, len(every)) == (n - 1, 3)
        assert got[author]["violations"] == sum(1 for d in every.values() if d["action"] != "no_action") == 1
        assert len(got[author]["recent"]) == min(n - 1, review_settings.author_history)
    assert asked["few"] == asked["many"], asked


def test_a_campaign_cases_announcement_counts_its_label_mix_in_the_store(any_store, taxonomy, queue_config,
                                                                        monkeypatch):
    """Was every member's id bound and its prediction of record read, to count the model's label mix."""
    from labeling import packets
    from labeling.cases import build_cases

    from test_queue_support import case_ids, quiet

    s, asked, got = any_store, {}, {}
    with s.begin() as conn:  # the test model is the champion: a challenger's newer "benign" is not of record
        conn.execute(insert(ModelVersion.__table__).values(id=MODEL, kind="t", artifact_path="-", role="champion",
                                                           labels=[], promoted_at=T0))
    for n in (20, 2000):
        ids = [f"a{n}-{i:05d}" for i in range(n)]
        add_scored(s, taxonomy, [{"id": i, "label": "scam" if k % 4 == 0 else "spam", "p": 0.9}
                                 for k, i in enumerate(ids[:-2])])
        _items(s, ids[-2:])  # two members the model never scored
        with s.begin() as conn:
            conn.execute(insert(ModelVersion.__table__).values(id=f"chal{n}", kind="t", artifact_path="-",
                                                               role="challenger", labels=[]))
        _pred(s, ids[1], HATE, f"chal{n}")
        add_campaign(s, ids)
        build_cases(s, taxonomy, quiet(queue_config), progress=False)
        case = case_ids(s, lambda c, n=n: f"camp{c}")
        case_id = max(v for k, v in case.items() if k.startswith("camp"))
        with s.read() as conn:  # as counted before: every member's prediction of record, in Python
            labels = [p["label"] for p in predictions_of_record(conn, ids).values()]
        full = packets.bulk_counts(s, case_id, "")
        monkeypatch.setattr(packets, "bulk_counts", lambda *a, **k: full)  # decisions' own reads, not these
        with _asked(s) as seen:
            got[n] = packets.campaign_announcement(s, case_id, None)
        asked[n] = tuple(seen)
        monkeypatch.undo()
        assert got[n]["label_mix"] == {"spam": labels.count("spam"), "scam": labels.count("scam")}
        assert sum(got[n]["label_mix"].values()) == n - 2 and got[n]["unscored"] == 2
        assert list(got[n]["label_mix"]) == ["spam", "scam"]  # the most frequent first
    assert asked[20] == asked[2000], asked
