"""Label-error scan on small data (a demo run with `--limit` of a few hundred rows): it queued every
decision of a label the model had seen a handful of times, and with a model that learnt nothing,
every decision of the store (240 of 240), flooding the lead's queue and the per-analyst counts."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from core.config import config_dir
from core.schema import Case
from labeling.cases import build_cases
from labeling.decisions import decide
from labeling.label_errors import find_label_errors
from labeling.queue_config import load_queue_config
from test_label_errors import SPAM_WORDS, decided_store
from test_queue_support import T0, add_scored
from test_seeding import BagOfWords

@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})


class Blind(BagOfWords):
    """An embedder that tells no text from another: the out-of-fold model learns nothing."""

    model_id = "blind-test"

    def encode(self, texts, show_progress=False):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1.0
        return out


def _queued(store) -> list[str]:
    with store.read() as conn:
        return conn.execute(select(Case.__table__.c.item_id).where(Case.__table__.c.queue == "label-review")
                            ).scalars().all()


def test_a_model_that_learnt_nothing_queues_a_tenth_not_every_decision(any_store, taxonomy, cfg):
    """240 decisions over 4 labels the model cannot tell apart: each label's probability is about
    1/4, under the 0.5 label quality, so all 240 were queued, and every analyst 'erred' on each."""
    labels = ["benign", "spam", "scam", "harassment"]
    rng = np.random.default_rng(2)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=9)) for _ in range(240)]
    specs = [{"id": f"x{i}", "label": labels[i % 4], "p": 0.6, "text": f"note {w}"} for i, w in enumerate(words)]
    add_scored(any_store, taxonomy, specs)
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        cases = dict(conn.execute(select(Case.__table__.c.item_id, Case.__table__.c.id)).all())
    for n, s in enumerate(specs):
        decide(any_store, taxonomy, cases[s["id"]], ("ann", "bob")[n % 2], s["label"], rationale="t", config=cfg, now=T0)
    out = find_label_errors(any_store, taxonomy, cfg, "eng", Blind(), now=T0)
    assert out["decided"] == 240 and out["queued"] == 24 and len(_queued(any_store)) == 24, out["queued"]
    assert out["candidates"] == 240 and out["cap"] == 24
    assert out["capped"] == 240 - 24 and "216 more likely errors left for a later scan" in out["note"]
    assert "at most 24 (10% of the decisions, at least 10)" in out["note"]
    # the next scan queues the next best-ranked tenth, nothing twice
    again = find_label_errors(any_store, taxonomy, cfg, "eng", Blind(), now=T0)
    assert again["queued"] == 24 and len(set(_queued(any_store))) == 48
    assert again["already_queued"] == 24 and again["capped"] == 240 - 48


def test_a_label_decided_a_handful_of_times_is_not_judged(any_store, taxonomy, cfg):
    """Three scam decisions (worded like spam) beside 40 spam / benign: out of fold, the model saw
    scam twice at most, gave it a low probability everywhere and queued all three right decisions
    first (counted against their analyst, 2 of 3 'flagged'). Now scam is named as not judged; the
    real slips are still found."""
    decided_store(any_store, taxonomy, cfg, 20, {"s3": "benign", "c5": "spam"})
    rng = np.random.default_rng(5)
    scam = [{"id": f"h{i}", "label": "scam", "p": 0.9, "text": " ".join(rng.choice(SPAM_WORDS, size=8)) + f" {i}"}
            for i in range(3)]
    add_scored(any_store, taxonomy, scam)
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        cases = dict(conn.execute(select(Case.__table__.c.item_id, Case.__table__.c.id)
                                  .where(Case.__table__.c.item_id.like("h%"))).all())
    for h in scam:
        decide(any_store, taxonomy, cases[h["id"]], "cy", "scam", rationale="t", config=cfg, now=T0)
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=10)
    queued = set(_queued(any_store))
    assert {"s3", "c5"} <= queued, out["cases"]
    assert not {h["id"] for h in scam} & queued, out["cases"]
    assert out["by_analyst"]["cy"]["flagged"] == 0  # not counted against the analyst either
    assert out["skipped_labels"] == {"scam": {"decisions": 3, "fewest_in_training": 2}}
    assert "labels not judged" in out["note"] and "scam (3 decided)" in out["note"]


def test_fold_support_counts_the_training_sides_of_the_out_of_fold_model():
    from labeling.label_errors import fold_support, queue_cap

    y = np.array([0] * 40 + [1] * 40 + [2] * 3)  # a label of 3: at most 2 on a fold's training side
    assert fold_support(y, 3, folds=5, seed=0).tolist() == [32, 32, 2]
    # the cap: a tenth of the decisions, never under 10; it does not bind at the benchmark's sizes
    assert (queue_cap(40), queue_cap(240), queue_cap(5574), queue_cap(24783)) == (10, 24, 558, 2479)
