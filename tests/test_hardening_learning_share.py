"""Hardening of the learning share, cold start and label-error queue (issue 18): each test
reproduces a defect found by an adversarial audit and fails without its fix."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core.config import config_dir
from core.labels import current_labels
from core.schema import Case
from labeling.cases import build_cases
from labeling.claims import claim_case, next_case
from labeling.decisions import correct
from labeling.errors import QueueError
from labeling.label_errors import find_label_errors, label_error_counts
from labeling.learning import apply_learning_share, served_learning, slot_positions
from labeling.queue_config import LearningShare, load_queue_config
from labeling.seeding import check_keyword, read_examples, seed_cases
from test_label_errors import decided_store
from test_queue_support import T0, add_campaign, add_scored
from test_seeding import BagOfWords
from workbench.cli import cli

C = Case.__table__


@pytest.fixture(scope="module")
def base(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})


def _scores(b: float) -> dict[str, float]:
    return {"benign": b, "spam": round(1 - b, 6), "scam": 0.0, "hate": 0.0, "harassment": 0.0}


def _pinned(store, queue: str = "general") -> list[str]:
    with store.read() as conn:
        return sorted(r.item_id for r in conn.execute(select(C.c.item_id, C.c.priority_reason)
                                                      .where(C.c.queue == queue, C.c.state == "open"))
                      if (r.priority_reason or "").startswith("learning:"))


# -- the learning share ---------------------------------------------------------------------------
def test_share_and_slots_are_not_rounded_one_low():
    """100 x 0.29 is 28.999999999999996 in floating point and 7 / 0.28 is 24.999999999999996: a
    plain floor planned 28 learning cases of 100 claims at share 0.29, and put the 7th learning
    case of share 0.28 at claim 24 instead of 25."""
    assert slot_positions(7, 0.28)[-1] == 24
    assert slot_positions(7, 0.07)[-1] == 99
    for share in (0.07, 0.14, 0.28, 0.29, 0.55, 0.57):
        pct = round(share * 100)
        assert slot_positions(40, share) == [(j + 1) * 100 // pct - 1 for j in range(40)], share


def test_pass_plans_the_configured_share_of_the_horizon(sqlite_store, taxonomy, base):
    cfg = base.model_copy(update={"learning": LearningShare(queues={"general": 0.29}, horizon=100,
                                                            min_uncertainty=0.3)})
    add_scored(sqlite_store, taxonomy, [{"id": f"m{i:03d}", "label": "benign", "text": f"text {i}",
                                         "scores": _scores(round(0.55 + 0.001 * i, 4))} for i in range(150)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    out = apply_learning_share(sqlite_store, taxonomy, cfg, "ops", now=T0)
    assert out["general"]["learning"] == 29          # 29% of a 100-claim horizon, not 28
    served = [next_case(sqlite_store, "ann", "general", now=T0, config=cfg) for _ in range(100)]
    assert sum(served_learning(c) for c in served) == 29


def test_a_short_queue_is_served_at_its_share_not_all_as_learning(sqlite_store, taxonomy, base):
    """A pass pinned horizon x share cases (200 x 0.2 = 40) whatever the queue held: 10 waiting
    uncertain cases were all served and marked as learning cases against a configured 20%."""
    cfg = base.model_copy(update={"learning": LearningShare(queues={"general": 0.2}, horizon=200,
                                                            min_uncertainty=0.3)})
    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "benign", "text": f"short queue text {i}",
                                         "scores": _scores(round(0.55 + 0.01 * i, 4))} for i in range(10)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    out = apply_learning_share(sqlite_store, taxonomy, cfg, "ops", now=T0)
    served = [next_case(sqlite_store, "ann", "general", now=T0, config=cfg) for _ in range(10)]
    assert out["general"]["learning"] == 2 and sum(served_learning(c) for c in served) == 2


def test_replan_takes_no_campaign_mate_of_a_learning_case_in_review(any_store, taxonomy, base):
    """The serve sweeper re-plans every few seconds and replaces a claimed learning case; the
    campaign mate that was passed over only because of it must not become the next one, or the
    share serves two (then three...) of one campaign while the first is still in review."""
    cfg = base.model_copy(update={"learning": LearningShare(queues={"general": 0.25}, horizon=8,
                                                            min_uncertainty=0.3)})
    specs = [{"id": f"x{i}", "label": "benign", "text": f"gift card offer variant {i}",
              "scores": _scores(round(0.5 + 0.001 * i, 4))} for i in range(4)]
    specs += [{"id": f"o{i:02d}", "label": "benign", "text": f"other text {i}",
               "scores": _scores(round(0.6 + 0.01 * i, 4))} for i in range(20)]
    add_scored(any_store, taxonomy, specs)
    add_campaign(any_store, [f"x{i}" for i in range(4)])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    apply_learning_share(any_store, taxonomy, cfg, "ops", now=T0)
    first = _pinned(any_store)
    assert [i for i in first if i.startswith("x")] == ["x0"]   # one per campaign, the most uncertain
    with any_store.read() as conn:
        x0 = conn.execute(select(C.c.id).where(C.c.item_id == "x0", C.c.campaign_id.is_(None))).scalar()
    claim_case(any_store, x0, "ann", cfg, now=T0)
    apply_learning_share(any_store, taxonomy, cfg, "ops", now=T0)
    again = _pinned(any_store)
    assert len(again) == 2 and not [i for i in again if i.startswith("x")], again


# -- cold start: hostile examples files -----------------------------------------------------------
@pytest.mark.parametrize("content,why", [
    (b"[" * 200_000 + b"\n", "nested too deeply"),
    (b'{"text": ' + b"[" * 200_000 + b"\n", "nested too deeply"),
    (b'{"text": "x", "n": ' + b"9" * 5000 + b"}\n", "invalid JSON"),
])
def test_hostile_jsonl_line_is_one_line_error(tmp_path, content, why):
    f = tmp_path / "examples.jsonl"
    f.write_bytes(b'{"text": "a fine example"}\n' + content)
    with pytest.raises(QueueError) as exc:
        read_examples(str(f))
    msg = str(exc.value)
    assert msg.startswith(f"{f} line 2: ") and why in msg and "\n" not in msg, msg


def test_lone_surrogate_example_or_keyword_is_refused(tmp_path, sqlite_store, taxonomy, base):
    """JSON's "\\ud800" escape decodes to a lone surrogate, which the tokenizer cannot read: it
    crashed `workbench seed` with a TypeError traceback from deep inside the embedder."""
    f = tmp_path / "examples.jsonl"
    f.write_bytes(b'{"text": "win a prize"}\n{"text": "call now \\ud800 to claim"}\n')
    with pytest.raises(QueueError, match=rf"^{f} line 2, field 'text': .*lone surrogate"):
        read_examples(str(f))
    with pytest.raises(QueueError, match=r"^--keyword 1: .*lone surrogate"):
        check_keyword("gift \ud83d card", "--keyword 1")
    add_scored(sqlite_store, taxonomy, [{"id": "a", "label": "benign", "p": 0.9, "text": "hello"}])
    build_cases(sqlite_store, taxonomy, base, now=T0, progress=False)
    with pytest.raises(QueueError, match=r"^example 1: .*lone surrogate"):
        seed_cases(sqlite_store, taxonomy, base, "eng", policy="spam", examples=["prize \udfff"],
                   embedder=BagOfWords(), now=T0)


def test_keywords_file_error_names_the_line(tmp_path):
    """A refused keyword was named by its ordinal among the kept lines ("keyword 2"), not the line an
    editor shows, when comments or blank lines came first."""
    f = tmp_path / "words.txt"
    f.write_text("# payment words\n\nzelle\n" + "x" * 300 + "\n")
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "seed", "--policy", "spam",
                                   "--keywords", str(f)])
    lines = res.output.strip().splitlines()
    assert res.exit_code != 0 and len(lines) == 1 and "Traceback" not in res.output, res.output
    assert lines[0].startswith(f"Error: {f} line 4: keyword is 300 characters"), lines[0]


# -- the label-error queue ------------------------------------------------------------------------
def test_scan_of_one_distinct_text_says_so_instead_of_crashing(sqlite_store, taxonomy, base):
    """Copies of one text decided both ways leave a single fold group: sklearn raised 'Cannot have
    number of splits n_splits=2 greater than the number of groups: 1' as a traceback."""
    add_scored(sqlite_store, taxonomy, [{"id": f"x{i}", "label": "spam", "p": 0.9, "text": "call now to win a prize"}
                                        for i in range(12)])
    build_cases(sqlite_store, taxonomy, base, now=T0, progress=False)
    from labeling.decisions import decide

    with sqlite_store.read() as conn:
        cases = dict(conn.execute(select(C.c.item_id, C.c.id).where(C.c.item_id.is_not(None))).all())
    for i in range(12):
        decide(sqlite_store, taxonomy, cases[f"x{i}"], "bob", "spam" if i % 3 else "benign", rationale="t",
               config=base, now=T0)
    out = find_label_errors(sqlite_store, taxonomy, base, "eng", BagOfWords(), now=T0)
    assert out["queued"] == 0 and "distinct text" in out["note"] and out["decided"] == 12


def test_superseded_decision_leaves_the_queue_and_counts_as_superseded(any_store, taxonomy, base):
    """bob corrects his own slip while it waits for re-review: the waiting case re-reviews a decision
    that is no longer the label of record. Counts said `pending`, and the next scan queued the newer
    decision beside the stale case, two cases of one item in the lead's queue."""
    decided_store(any_store, taxonomy, base, 20, {"s3": "benign", "c5": "spam"})
    out = find_label_errors(any_store, taxonomy, base, "eng", BagOfWords(), now=T0, max_cases=4)
    assert "s3" in {c["item_id"] for c in out["cases"]}
    old = current_labels(any_store, ["s3"])["s3"]
    correct(any_store, taxonomy, old["id"], "bob", "scam", "my slip", now=T0)
    counts = label_error_counts(any_store, base)
    assert counts["bob"]["superseded"] == 1 and counts["bob"]["pending"] == counts["bob"]["queued"] - 1, counts
    again = find_label_errors(any_store, taxonomy, base, "eng", BagOfWords(), now=T0, max_cases=4)
    assert again["closed_superseded"] == 1
    with any_store.read() as conn:
        rows = conn.execute(select(C.c.item_id, C.c.state, C.c.meta).where(C.c.queue == "label-review")).all()
    stale = [r for r in rows if r.meta["label_error"]["decision_id"] == old["id"]]
    assert len(stale) == 1 and stale[0].state == "decided"
    assert stale[0].meta["label_error"]["outcome"] == "superseded"
    waiting = [r.item_id for r in rows if r.state == "open"]
    assert len(waiting) == len(set(waiting)), waiting               # never two waiting cases of one item
    # The decision the lead now reviews is the label of record; nothing stored was rewritten.
    assert current_labels(any_store, ["s3"])["s3"]["label"] == "scam"
    counts = label_error_counts(any_store, base)
    assert counts["bob"]["superseded"] == 1
    assert sum(r["queued"] for r in counts.values()) == out["queued"] + again["queued"]
    assert json.dumps(counts)  # plain data for `label-errors counts --json`
