"""A reviewed store for the evaluation tests and the Evaluation tab: four weeks of decisions by
three analysts on two sources, a QA audit with lead re-reviews, a calibration set, corrections.

Deterministic (seeded); every figure the tests check is counted by hand from `PLAN` below.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import insert, select

from core.schema import Case

T0 = dt.datetime(2026, 11, 2, 9, 0)
ANALYSTS = ("ann", "bob", "cy")
LEAD = "lea"
HAM = {"benign": 0.86, "spam": 0.06, "scam": 0.04, "hate": 0.02, "harassment": 0.02}
SPAM = {"benign": 0.10, "spam": 0.80, "scam": 0.06, "hate": 0.02, "harassment": 0.02}
HATE = {"benign": 0.25, "spam": 0.02, "scam": 0.01, "hate": 0.62, "harassment": 0.10}


def _texts(i: int, rng: np.random.Generator) -> tuple[str, dict[str, float], str]:
    """(text, model scores, the human's true label) of item i."""
    kind = i % 4
    if kind == 0:
        return f"win a prize now, call 0906{i:04d}", SPAM, "spam" if rng.random() < 0.85 else "benign"
    if kind == 1 and i % 8 == 1:
        return f"muslim women at the market today {i}", HAM, "benign"  # identity mention, benign
    if kind == 1:
        return f"those muslim people are vermin {i}", HATE, "hate" if rng.random() < 0.7 else "harassment"
    return f"see you at lunch, number {i}", HAM, "benign" if rng.random() < 0.92 else "spam"


def seed_reviews(store, make_scored, taxonomy, queue_config, n: int = 96, weeks: int = 4):
    """Ingest, score and build cases (30% QA audit), then decide every item case over `weeks`
    weeks (overrides grow in the last week), re-review audited items by the lead, answer a
    calibration set by all three analysts and correct two decisions. Returns the plan."""
    from labeling.cases import build_cases
    from labeling.decisions import correct, decide

    rng = np.random.default_rng(7)
    items, scores, truth = {"forum": [], "sms": []}, {"forum": {}, "sms": {}}, {}
    for i in range(n):
        text, sc, label = _texts(i, rng)
        src = "forum" if i % 3 else "sms"
        items[src].append({"id": str(i), "text": text})
        scores[src][str(i)] = sc
        truth[f"{src}:{i}"] = label
    for src in ("forum", "sms"):
        make_scored(store, items[src], scores[src], source=src, build=False)
    cfg = queue_config.model_copy(update={"qa_share": 0.3, "calibration_sets": []})
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    with store.read() as conn:
        cases = conn.execute(select(Case.id, Case.item_id, Case.is_audit, Case.predicted_label)
                             .where(Case.item_id.is_not(None)).order_by(Case.id)).all()
    plan = {"decisions": [], "overrides": 0, "audit_items": [], "rereviews": []}
    for j, c in enumerate(cases):
        who = ANALYSTS[j % 3]
        week = j * weeks // len(cases)
        when = T0 + dt.timedelta(days=7 * week + (j % 5), hours=j % 7)
        label = truth[c.item_id]
        if week == weeks - 1 and c.predicted_label == "benign" and j % 3 == 0:
            label = "spam"  # the last week: analysts overrule benign predictions more often
        action = taxonomy.policies[label].default_action
        why = None if label == c.predicted_label else "not what the model says"
        out = decide(store, taxonomy, c.id, who, label, action=action, rationale=why, now=when, config=cfg)
        plan["decisions"].append({"case": c.id, "item": c.item_id, "who": who, "label": label, "when": when,
                                  "model": c.predicted_label, "audit": c.is_audit, "ids": out["decision_ids"]})
        plan["overrides"] += int(label != c.predicted_label)
    # The lead re-reviews six of ann's decisions blind: agrees on the first four.
    anns = [d for d in plan["decisions"] if d["who"] == "ann"][:6]
    with store.begin() as conn:
        for d in anns:
            cid = conn.execute(insert(Case.__table__).values(
                item_id=d["item"], queue="general", state="open", priority=0.0, is_audit=True, audit_inclusion=0.3,
                created_at=T0, updated_at=T0, predicted_label=d["model"], model_version="test-v1",
                meta={"scores": scores[d["item"].split(":")[0]][d["item"].split(":")[1]]}).returning(Case.__table__.c.id)).scalar_one()
            d["rereview_case"] = cid
    for k, d in enumerate(anns):
        label = d["label"] if k < 4 else ("benign" if d["label"] != "benign" else "spam")
        decide(store, taxonomy, d["rereview_case"], LEAD, label, action=taxonomy.policies[label].default_action,
               rationale="re-review", now=d["when"] + dt.timedelta(days=1), config=cfg)
        plan["rereviews"].append({"item": d["item"], "passed": k < 4, "label": label, "model": d["model"],
                                 "who": d["who"]})
    # A calibration set: 5 items answered by all three analysts; cy disagrees on two.
    cal_items = [d for d in plan["decisions"] if d["who"] == "bob"][:5]
    with store.begin() as conn:
        ids = {}
        for d in cal_items:
            for who in ANALYSTS:
                ids[(d["item"], who)] = conn.execute(insert(Case.__table__).values(
                    item_id=d["item"], queue="calibration", state="open", priority=0.0, is_audit=False,
                    calibration_set="weekly", created_at=T0, updated_at=T0, predicted_label=d["model"],
                    model_version="test-v1", meta={}).returning(Case.__table__.c.id)).scalar_one()
    plan["calibration"] = []
    for k, d in enumerate(cal_items):
        for who in ANALYSTS:
            label = d["label"] if not (who == "cy" and k < 2) else ("benign" if d["label"] != "benign" else "hate")
            decide(store, taxonomy, ids[(d["item"], who)], who, label, action=taxonomy.policies[label].default_action,
                   rationale="calibration", now=d["when"] + dt.timedelta(hours=2), config=cfg)
            plan["calibration"].append({"item": d["item"], "who": who, "label": label, "gold": d["label"]})
    # two of bob's review decisions (not calibration items) are corrected by the lead: rework.
    bobs = [d for d in plan["decisions"] if d["who"] == "bob"][5:7]
    for d in bobs:
        new = "harassment" if d["label"] != "harassment" else "benign"
        correct(store, taxonomy, d["ids"][0], LEAD, new, rationale="wrong label", now=d["when"] + dt.timedelta(days=2))
    plan["corrected"] = [d["ids"][0] for d in bobs]
    plan["truth"] = truth
    return plan
