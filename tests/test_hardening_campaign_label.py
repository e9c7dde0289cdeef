"""A campaign case's label follows its members' prediction rule, not a raw mean's arg-max.

Reproduced by an audit: a parcel-fee wave of four members, three predicted scam on their own
(the model's decision weights lift scam over a larger benign probability), was cased as benign
(the mean's arg-max), routed to the general queue, and confirming scam on it was an override.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import select

from core.schema import Case, Decision
from labeling import decisions as DEC
from labeling.campaign_label import campaign_prediction
from labeling.cases import build_cases
from labeling.routing import Candidate, route

from test_queue_support import T0, add_campaign, add_scored

C, D = Case.__table__, Decision.__table__


def _scores(benign: float, scam: float) -> dict[str, float]:
    rest = (1.0 - benign - scam) / 3
    return {"benign": benign, "spam": rest, "scam": scam, "hate": rest, "harassment": rest}


# Three members the model predicted scam (decision weights), one benign; every member's raw
# benign probability is the largest, so the mean's arg-max is benign.
WAVE = [{"id": "parcel-1", "label": "benign", "scores": _scores(0.59, 0.18), "text": "parcel fee 1.99"},
        {"id": "parcel-2", "label": "scam", "scores": _scores(0.64, 0.25), "text": "parcel fee 2.49"},
        {"id": "parcel-3", "label": "scam", "scores": _scores(0.62, 0.26), "text": "parcel fee 1.49"},
        {"id": "parcel-4", "label": "scam", "scores": _scores(0.62, 0.28), "text": "parcel fee 0.99"}]


def _cases(store, campaign_id):
    with store.read() as conn:
        camp = conn.execute(select(C).where(C.c.campaign_id == campaign_id)).mappings().one()
        items = conn.execute(select(C).where(C.c.campaign_id.is_(None), C.c.item_id.like("parcel-%"))
                             ).mappings().all()
    return dict(camp), {r["item_id"]: dict(r) for r in items}


def test_campaign_case_takes_its_members_rule_label_and_queue(any_store, taxonomy, queue_config):
    ids = add_scored(any_store, taxonomy, [dict(s, uncertainty=0.6) for s in WAVE])
    cid = add_campaign(any_store, ids)
    build_cases(any_store, taxonomy, queue_config, now=T0, progress=False)
    camp, items = _cases(any_store, cid)
    assert [items[i]["predicted_label"] for i in ids] == ["benign", "scam", "scam", "scam"]
    mean = {lbl: np.mean([s["scores"][lbl] for s in WAVE]) for lbl in taxonomy.labels}
    assert max(mean, key=mean.get) == "benign"  # the fixture: the raw mean's arg-max differs from the rule
    assert camp["predicted_label"] == "scam"
    # Routed by that label as an item case is: the route a scam campaign takes (campaigns), not general.
    expected = route(queue_config, Candidate(item_id=ids[0], text="", label="scam", score=camp["meta"]["features"]
                                             ["score"], scores={}, campaign_id=cid, extra={"campaign_case": True}),
                     camp["severity"], taxonomy.benign_label)
    assert camp["queue"] == expected == "campaigns"
    assert camp["severity"] == taxonomy.severity_of("scam")
    assert camp["meta"]["features"]["score"] == pytest.approx(np.mean([s["scores"]["scam"] for s in WAVE]), abs=1e-6)


def test_bulk_confirm_of_the_rule_label_is_no_override(any_store, taxonomy, queue_config):
    ids = add_scored(any_store, taxonomy, WAVE)
    cid = add_campaign(any_store, ids)
    build_cases(any_store, taxonomy, queue_config, now=T0, progress=False)
    camp, _ = _cases(any_store, cid)
    # No rationale: confirming the campaign's label is not an override.
    out = DEC.decide(any_store, taxonomy, camp["id"], "lead", "scam", now=T0 + dt.timedelta(minutes=5),
                     config=queue_config)
    assert out["is_override"] is False
    with any_store.read() as conn:
        rows = conn.execute(select(D.c.item_id, D.c.is_override).where(D.c.id.in_(out["decision_ids"]))).all()
    assert {i: o for i, o in rows} == {"parcel-1": True, "parcel-2": False, "parcel-3": False, "parcel-4": False}


def test_rule_ties_go_to_the_more_harmful_label(any_store, taxonomy, queue_config):
    """One member benign, one scam: a tie goes to the more harmful label, the stricter queue."""
    ids = add_scored(any_store, taxonomy, [
        {"id": "parcel-a", "label": "benign", "scores": _scores(0.9, 0.05), "uncertainty": 0.1},
        {"id": "parcel-b", "label": "scam", "scores": _scores(0.5, 0.3), "uncertainty": 0.5}])
    cid = add_campaign(any_store, ids)
    build_cases(any_store, taxonomy, queue_config, now=T0, progress=False)
    camp, _ = _cases(any_store, cid)
    assert (camp["predicted_label"], camp["queue"]) == ("scam", "campaigns")
    assert camp["meta"]["features"]["score"] == pytest.approx(0.175)
    assert camp["meta"]["features"]["uncertainty"] == pytest.approx(0.3)
    pred = campaign_prediction(taxonomy, [{"label": "benign", "scores": {}}, {"label": "scam", "scores": {}}])
    assert pred.votes == {"benign": 1, "scam": 1} and pred.label == "scam"
    with pytest.raises(ValueError):
        campaign_prediction(taxonomy, [])


# --- clustering.explore: the campaign timeline plot ------------------------------------------------

def test_timeline_bars_start_at_their_bins_and_count_in_whole_members(sqlite_store, taxonomy, tmp_path,
                                                                      monkeypatch):
    """A member seen at 13:05 is in the bar from 13:00 to 14:00 (it was drawn 12:36-13:24), and
    the axes tick whole members (a campaign of 3 had ticks 0.25, 0.50, ...)."""
    from matplotlib.dates import date2num
    from sqlalchemy import update

    from clustering import explore
    from core.plotting import pyplot
    from core.schema import Item

    times = [dt.datetime(2026, 12, 7, 13, 5), dt.datetime(2026, 12, 7, 13, 20), dt.datetime(2026, 12, 7, 14, 10)]
    ids = add_scored(sqlite_store, taxonomy, [{"id": f"t{i}", "label": "scam", "p": 0.9} for i in range(3)])
    with sqlite_store.begin() as conn:
        for i, t in zip(ids, times):
            conn.execute(update(Item.__table__).where(Item.__table__.c.id == i).values(created_at=t))
    cid = add_campaign(sqlite_store, ids)
    plt, figures = pyplot(), []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figures.append(fig), close(fig))[-1])
    out = explore.campaign_timeline(sqlite_store, cid, freq="h", png_path=tmp_path / "t.png")
    assert [(b["start"].hour, b["new"]) for b in out["buckets"]] == [(13, 2), (14, 1)]
    (fig,) = figures
    bars_ax, size_ax = fig.axes
    bars = bars_ax.patches
    assert [b.get_x() for b in bars] == pytest.approx([date2num(dt.datetime(2026, 12, 7, h)) for h in (13, 14)],
                                                          rel=0, abs=1e-6)  # ~0.1 s: a day number is ~20,000
    assert [b.get_width() for b in bars] == pytest.approx([1 / 24, 1 / 24])
    assert [b.get_height() for b in bars] == [2, 1]
    for ax in (bars_ax, size_ax):
        lo, hi = ax.get_ylim()
        ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_a_promotion_refresh_relabels_a_waiting_campaign_case_by_the_same_rule(any_store, taxonomy, queue_config):
    """After a promotion (`labeling.rescore`), a waiting campaign case takes its members' new
    labels by the same rule: the refresh once took the raw mean's arg-max again (benign here)."""
    from sqlalchemy import insert

    from core.schema import ModelVersion, Prediction
    from labeling.rescore import rescore_open_cases

    from test_hardening_rescore_escalated import AT, CHAMP, LATER, MODELS

    ids = add_scored(any_store, taxonomy, [dict(s, label="benign", uncertainty=0.6) for s in WAVE])
    cid = add_campaign(any_store, ids)
    build_cases(any_store, taxonomy, queue_config, now=T0, progress=False)
    assert _cases(any_store, cid)[0]["predicted_label"] == "benign"
    with any_store.begin() as conn:  # the new champion reads three members as scam (its decision weights)
        conn.execute(insert(ModelVersion.__table__).values(
            id=CHAMP, kind="test", artifact_path="-", role="champion", labels=taxonomy.labels, created_at=AT,
            promoted_at=AT))
        conn.execute(insert(Prediction.__table__), [
            {"item_id": s["id"], "model_version": CHAMP, "label": s["label"], "score": s["scores"][s["label"]],
             "scores": s["scores"], "uncertainty": 0.6, "taxonomy_version": taxonomy.version, "created_at": AT}
            for s in WAVE])
    rescore_open_cases(any_store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                       progress=False, now=LATER)
    camp = _cases(any_store, cid)[0]
    assert (camp["predicted_label"], camp["model_version"]) == ("scam", CHAMP)
