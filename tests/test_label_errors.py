"""Label quality (issue 18): confident learning finds deliberately flipped decisions, queues them for a
lead with the reason, a confirmed error becomes a superseding correction, per-analyst counts add up."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from core.config import config_dir
from core.labels import current_labels
from core.schema import Case
from labeling.cases import build_cases
from labeling.decisions import decide
from labeling.errors import QueueError
from labeling.label_errors import (find_label_errors, label_error_counts, out_of_fold_probs, rank_label_errors,
                                   resolve_label_error)
from labeling.queue_config import load_queue_config
from test_queue_support import T0, add_scored
from test_seeding import BagOfWords

SPAM_WORDS = "win prize cash claim call now free offer txt reply stop urgent award bonus".split()
CHAT_WORDS = "lunch home mum train late see you tonight thanks dinner love meeting work later".split()


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})


def _texts(rng, words, n):
    return [" ".join(rng.choice(words, size=8)) + f" {i}" for i in range(n)]


def test_ranking_puts_flipped_labels_first():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, (100, 5)) + 3, rng.normal(0, 1, (100, 5)) - 3])
    y = np.array([0] * 100 + [1] * 100)
    flipped = rng.choice(200, 10, replace=False)
    y[flipped] = 1 - y[flipped]
    probs = out_of_fold_probs(X, y, 2, folds=5, seed=0)
    assert probs.shape == (200, 2) and np.allclose(probs.sum(axis=1), 1)
    order, flagged, quality = rank_label_errors(y, probs)
    assert set(order[:10].tolist()) == set(flipped.tolist())
    assert flagged[flipped].sum() >= 8 and flagged.sum() <= 20


def test_queue_finds_flipped_decisions_and_a_lead_corrects_them(any_store, taxonomy, cfg):
    rng = np.random.default_rng(7)
    spam, chat = _texts(rng, SPAM_WORDS, 40), _texts(rng, CHAT_WORDS, 40)
    specs = [{"id": f"s{i}", "label": "spam", "p": 0.9, "text": t} for i, t in enumerate(spam)]
    specs += [{"id": f"c{i}", "label": "benign", "p": 0.7, "text": t} for i, t in enumerate(chat)]
    add_scored(any_store, taxonomy, specs)
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    flipped = {"s3", "s17", "c5", "c30"}  # bob's slips
    with any_store.read() as conn:
        cases = dict(conn.execute(select(Case.__table__.c.item_id, Case.__table__.c.id)).all())
    for n, s in enumerate(specs):
        true = "spam" if s["id"].startswith("s") else "benign"
        label = ({"spam": "benign", "benign": "spam"}[true]) if s["id"] in flipped else true
        who = "bob" if s["id"] in flipped or n % 2 else "ann"
        decide(any_store, taxonomy, cases[s["id"]], who, label, rationale="test", config=cfg, now=T0)
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=6)
    assert out["decided"] == 80 and out["queued"] <= 6
    queued = [c["item_id"] for c in out["cases"]]
    assert flipped <= set(queued), queued
    first = out["cases"][0]
    assert first["given_label"] != first["model_label"] and first["confidence"] > 0.5
    assert out["by_analyst"]["bob"]["flagged"] >= 4 and out["by_analyst"]["ann"]["flagged"] <= 2
    # The re-review case shows the reason; running again queues nothing twice.
    with any_store.read() as conn:
        rows = conn.execute(select(Case.__table__).where(Case.__table__.c.queue == "label-review")).mappings().all()
    assert len(rows) == out["queued"]
    assert all(r["priority_reason"].startswith("label error? given ") for r in rows)
    again = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=6)
    assert not set(c["item_id"] for c in again["cases"]) & set(queued)
    # A lead corrects one (a superseding decision) and confirms another that was right after all.
    by_item = {r["item_id"]: r["id"] for r in rows}
    res = resolve_label_error(any_store, taxonomy, cfg, by_item["s3"], "lena", "spam", "a prize scam", now=T0)
    assert res["outcome"] == "corrected" and res["correction_id"]
    assert current_labels(any_store, ["s3"])["s3"]["label"] == "spam"
    assert current_labels(any_store, ["s3"])["s3"]["supersedes_id"] == res["decision_id"]
    right = next(i for i in queued if i not in flipped) if set(queued) - flipped else None
    if right:
        given = current_labels(any_store, [right])[right]["label"]
        assert resolve_label_error(any_store, taxonomy, cfg, by_item[right], "lena", given, "fine")["outcome"] == "confirmed"
    with pytest.raises(QueueError):
        resolve_label_error(any_store, taxonomy, cfg, by_item["s3"], "lena", "spam", "again", now=T0)
    counts = label_error_counts(any_store, cfg)
    assert counts["bob"]["corrected"] == 1 and counts["bob"]["queued"] >= 4
    assert sum(r["queued"] for r in counts.values()) == out["queued"] + again["queued"]
