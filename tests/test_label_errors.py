"""Label quality (issue 18): confident learning finds deliberately flipped decisions, queues them for a
lead with the reason, a confirmed error becomes a superseding correction, per-analyst counts add up."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import insert, select

from core.config import config_dir
from core.hooks import PermissionDenied
from core.labels import current_labels
from core.principals import Principal
from core.schema import Case, Decision, utcnow
from labeling.cases import build_cases
from labeling.decisions import decide
from labeling.errors import DecisionError, QueueError
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


def decided_store(store, taxonomy, cfg, n_each: int, flips: dict, flipped_by: str = "bob", others: str = "ann",
                  seed: int = 3) -> list[dict]:
    """`n_each` spam-worded and chat-worded items scored, their cases built and decided: the ids
    in `flips` with the label given there by `flipped_by` (the slips), the rest rightly by `others`."""
    rng = np.random.default_rng(seed)
    specs = [{"id": f"s{i}", "label": "spam", "p": 0.9, "text": t} for i, t in enumerate(_texts(rng, SPAM_WORDS, n_each))]
    specs += [{"id": f"c{i}", "label": "benign", "p": 0.7, "text": t}
              for i, t in enumerate(_texts(rng, CHAT_WORDS, n_each))]
    add_scored(store, taxonomy, specs)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    with store.read() as conn:
        cases = dict(conn.execute(select(Case.__table__.c.item_id, Case.__table__.c.id)).all())
    for s in specs:
        decide(store, taxonomy, cases[s["id"]], flipped_by if s["id"] in flips else others,
               flips.get(s["id"], s["label"]), rationale="test", config=cfg, now=T0)
    return specs


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
    assert again["already_queued"] == out["queued"] and out["already_queued"] == 0  # said, not silently skipped
    assert out["flagged"] <= out["candidates"] and out["queued"] == min(6, out["candidates"])
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


def test_deciding_a_label_review_case_corrects_or_confirms(any_store, taxonomy, cfg, roles):
    """The Review screen and `workbench decide` use `decide`: on a re-review case it must do what
    `label-errors resolve` does, not record a second, unrelated decision of record."""
    flipped = {"s3": "benign", "c5": "spam"}  # bob's slips
    decided_store(any_store, taxonomy, cfg, 20, flipped)
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=4)
    with any_store.read() as conn:
        review = dict(conn.execute(select(Case.__table__.c.item_id, Case.__table__.c.id)
                                   .where(Case.__table__.c.queue == "label-review")).all())
    assert set(flipped) <= set(review), out["cases"]
    before = current_labels(any_store, ["s3", "c5"])
    lena, bob = Principal("lena", "lead"), Principal("bob", "lead")
    with pytest.raises(PermissionDenied, match="qa_review"):  # an analyst may not re-review
        decide(any_store, taxonomy, review["s3"], Principal("ann", "analyst"), "spam", rationale="x", config=cfg)
    with pytest.raises(DecisionError, match="separation of duties"):  # nor the analyst under review
        decide(any_store, taxonomy, review["s3"], bob, "spam", rationale="mine", config=cfg)
    with pytest.raises(DecisionError, match="rationale"):
        decide(any_store, taxonomy, review["s3"], lena, "spam", config=cfg)
    # a different label: a correction superseding bob's decision, on the reviewed item
    view = decide(any_store, taxonomy, review["s3"], lena, "spam", rationale="a prize scam", config=cfg)
    res = view["label_review"]
    assert view["kind"] == "label_review" and res["outcome"] == "corrected"
    assert res["decision_id"] == before["s3"]["id"] and view["decision_ids"] == [res["correction_id"]]
    now_s3 = current_labels(any_store, ["s3"])["s3"]
    assert (now_s3["id"], now_s3["label"], now_s3["reviewer"]) == (res["correction_id"], "spam", "lena")
    assert now_s3["supersedes_id"] == before["s3"]["id"]
    # the same label: a confirmation, no new decision
    view = decide(any_store, taxonomy, review["c5"], lena, "spam", rationale="reads as spam to me", config=cfg)
    assert view["label_review"]["outcome"] == "confirmed" and view["decision_ids"] == []
    assert current_labels(any_store, ["c5"])["c5"]["id"] == before["c5"]["id"]
    with any_store.read() as conn:
        rows = conn.execute(select(Decision.__table__.c.item_id, Decision.__table__.c.case_id)
                            .where(Decision.__table__.c.item_id.in_(["s3", "c5"]))).all()
        metas = dict(conn.execute(select(Case.__table__.c.id, Case.__table__.c.meta)
                                  .where(Case.__table__.c.id.in_([review["s3"], review["c5"]]))).all())
    assert sorted(r.item_id for r in rows) == ["c5", "s3", "s3"]  # bob's two, lena's one correction
    assert not {r.case_id for r in rows} & {review["s3"], review["c5"]}  # nothing decided "on" the review case
    assert metas[review["s3"]]["label_error"]["outcome"] == "corrected"
    assert metas[review["c5"]]["label_error"]["resolved_by"] == "lena"
    with pytest.raises(QueueError):  # decided once
        decide(any_store, taxonomy, review["c5"], lena, "benign", rationale="again", config=cfg)
    counts = label_error_counts(any_store, cfg)
    assert counts["bob"]["corrected"] == 1 and counts["bob"]["confirmed"] == 1


class _MeetingEmbedder(BagOfWords):
    """Each scan's first encode waits for the other's: both have read what was already queued
    before either writes, the race a lead's second click or cron beside the UI makes."""

    def __init__(self, parties: int):
        self.barrier = threading.Barrier(parties, timeout=60)
        self.local = threading.local()

    def encode(self, texts, show_progress=False):
        if not getattr(self.local, "met", False):
            self.local.met = True
            self.barrier.wait()
        return super().encode(texts, show_progress)


def test_concurrent_scans_queue_each_decision_once(any_store, taxonomy, cfg):
    decided_store(any_store, taxonomy, cfg, 30, {"s2": "benign", "s9": "benign", "c4": "spam", "c21": "spam"},
                  others="bob")
    embedder, outs, errors = _MeetingEmbedder(2), [], []

    def scan() -> None:
        try:
            outs.append(find_label_errors(any_store, taxonomy, cfg, "eng", embedder, now=T0, max_cases=5))
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(outs) == 2
    with any_store.read() as conn:
        metas = conn.execute(select(Case.__table__.c.meta).where(Case.__table__.c.queue == "label-review")).scalars().all()
    queued = [m["label_error"]["decision_id"] for m in metas]
    assert queued and len(queued) == len(set(queued))  # each decision once
    assert sum(o["queued"] for o in outs) == len(queued)  # each scan reports what it queued itself
    assert sum(o["already_queued"] for o in outs) == min(o["queued"] + o["already_queued"] for o in outs)
    assert sorted(c["decision_id"] for o in outs for c in o["cases"]) == sorted(queued)


def test_a_negative_max_cases_is_refused_and_zero_only_ranks(sqlite_store, taxonomy, cfg):
    decided_store(sqlite_store, taxonomy, cfg, 20, {"s3": "benign"})
    with pytest.raises(QueueError, match="max_cases must be 0 .* not -1"):
        find_label_errors(sqlite_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=-1)
    out = find_label_errors(sqlite_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=0)
    assert out["queued"] == 0 and out["flagged"] >= 1 and out["decided"] == 40


def test_a_decision_superseded_since_the_scan_closes_its_re_review_case(any_store, taxonomy, cfg):
    """Corrected by its analyst after the scan queued it: the lead's verdict closes the case as
    superseded (the later decision stands) instead of refusing, which left it served on every `n`."""
    from labeling.claims import next_case
    from labeling.decisions import correct

    decided_store(any_store, taxonomy, cfg, 20, {"s3": "benign"})
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=1)
    assert [c["item_id"] for c in out["cases"]] == ["s3"]
    old = out["cases"][0]["decision_id"]
    fixed = correct(any_store, taxonomy, old, "bob", "spam", "my slip")  # bob fixes it himself
    lena = Principal("lena", "lead")
    case = next_case(any_store, lena, "label-review", now=T0, config=cfg)
    view = decide(any_store, taxonomy, case["id"], lena, "spam", rationale="already fixed", config=cfg)
    review = view["label_review"]
    assert review["outcome"] == "superseded" and review["superseded_by"] == fixed["decision_id"]
    assert view["decision_ids"] == []  # no new decision: bob's correction stands
    assert current_labels(any_store, ["s3"])["s3"]["id"] == fixed["decision_id"]
    assert next_case(any_store, lena, "label-review", now=T0, config=cfg) is None  # not served again
    assert label_error_counts(any_store, cfg)["bob"] == {"queued": 1, "corrected": 0, "confirmed": 0,
                                                        "superseded": 1, "pending": 0}


def test_a_wrong_campaign_decision_is_one_judgement_and_reaches_the_lead(sqlite_store, taxonomy, cfg):
    """A lead decides a spam wave benign in bulk. Counted per member, its template variants sat in
    each other's training folds and vouched for the wrong label, so most of the wave escaped."""
    decided_store(sqlite_store, taxonomy, cfg, 40, {})
    rng = np.random.default_rng(11)
    templates = [" ".join(rng.choice(SPAM_WORDS, size=8)) for _ in range(4)]
    wave = [{"id": f"w{t}-{k}", "label": "spam", "p": 0.9, "text": f"{templates[t]} call 0800{k}{t}12345 ref {k}"}
            for t in range(4) for k in range(6)]
    add_scored(sqlite_store, taxonomy, wave)
    with sqlite_store.begin() as conn:
        conn.execute(insert(Decision.__table__), [
            {"item_id": w["id"], "label": "benign", "action": "none", "kind": "bulk", "reviewer": "lena",
             "campaign_id": 7, "taxonomy_version": "t", "created_at": utcnow()} for w in wave])
    out = find_label_errors(sqlite_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=20)
    assert out["decided"] == 80 + 4  # the wave counts once per template
    queued = [c for c in out["cases"] if c["item_id"].startswith("w")]
    assert len(queued) == 4 and {c["model_label"] for c in queued} == {"spam"}
    with sqlite_store.read() as conn:
        why = conn.execute(select(Case.__table__.c.priority_reason)
                           .where(Case.__table__.c.item_id == queued[0]["item_id"],
                                  Case.__table__.c.queue == "label-review")).scalar_one()
    assert why.endswith("a campaign decision of 24 items: correct the campaign")
