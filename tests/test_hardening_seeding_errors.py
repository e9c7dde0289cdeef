"""Hardening of cold-start seeding and the label-error scan: a campaign's follow-up bulk decisions
count once, a lead's label-review verdict is not queued for re-review again, a huge `--neighbours`
is not a memory error, and a CSV or JSON examples file is read or refused, never taken line by line."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import insert, select

from core.config import config_dir
from core.schema import Case, Decision, utcnow
from labeling.cases import build_cases
from labeling.decisions import decide
from labeling.errors import QueueError
from labeling.label_errors import find_label_errors
from labeling.queue_config import load_queue_config
from labeling.seeding import nearest_round_robin, read_examples, seed_cases
from test_label_errors import SPAM_WORDS, decided_store
from test_queue_support import T0, add_campaign, add_scored
from test_seeding import CHAT, SPAM, BagOfWords

C = Case.__table__
D = Decision.__table__


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})


# -- the label-error scan -------------------------------------------------------------------------
def test_a_campaigns_follow_up_bulk_decision_counts_each_template_once(any_store, taxonomy, cfg):
    """Members that joined a campaign after its bulk decision get a follow-up campaign decision on
    a case of their own. Keyed by case, the scan counted the wave's templates once per case and put
    the copies in different folds, where they vouched for each other (training keys by campaign)."""
    decided_store(any_store, taxonomy, cfg, 40, {})
    rng = np.random.default_rng(11)
    templates = [" ".join(rng.choice(SPAM_WORDS, size=8)) for _ in range(4)]
    wave = [{"id": f"w{t}-{k}", "label": "spam", "p": 0.9, "text": f"{templates[t]} call 0800{k}{t}12345 ref {k}"}
            for t in range(4) for k in range(6)]
    add_scored(any_store, taxonomy, wave)
    camp = add_campaign(any_store, [w["id"] for w in wave])
    with any_store.begin() as conn:
        first, follow_up = (conn.execute(insert(C).values(
            campaign_id=camp, queue="general", state="decided", priority=0.0, created_at=T0, updated_at=T0)
            .returning(C.c.id)).scalar_one() for _ in range(2))
        conn.execute(insert(D), [
            {"item_id": w["id"], "label": "benign", "action": "none", "kind": "bulk", "reviewer": "lena",
             "campaign_id": camp, "case_id": first if int(w["id"].split("-")[1]) < 4 else follow_up,
             "taxonomy_version": "t", "created_at": utcnow()} for w in wave])
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=20)
    assert out["decided"] == 80 + 4  # one per template of the campaign, not one per template and case
    queued = [c for c in out["cases"] if c["item_id"].startswith("w")]
    assert len(queued) == 4
    with any_store.read() as conn:
        why = conn.execute(select(C.c.priority_reason).where(C.c.item_id == queued[0]["item_id"],
                                                             C.c.queue == "label-review")).scalar_one()
    assert why.endswith("a campaign decision of 24 items: correct the campaign")


def test_a_leads_label_review_correction_is_not_queued_again(any_store, taxonomy, cfg):
    """A lead re-reviewed bob's decision and corrected its action but kept the label the model
    disputes: the correction is the lead's verdict on exactly that question, and the next scan
    served it to the leads again as a new label error ("given spam by lena")."""
    decided_store(any_store, taxonomy, cfg, 20, {"c5": "spam"})
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=1)
    assert [c["item_id"] for c in out["cases"]] == ["c5"]
    with any_store.read() as conn:
        case_id = conn.execute(select(C.c.id).where(C.c.queue == "label-review")).scalar_one()
    view = decide(any_store, taxonomy, case_id, "lena", "spam", action="label", rationale="promotion, label it",
                  config=cfg)
    assert view["label_review"]["outcome"] == "corrected"
    again = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=20)
    assert "c5" not in {c["item_id"] for c in again["cases"]}
    with any_store.read() as conn:
        assert conn.execute(select(C.c.id).where(C.c.queue == "label-review", C.c.item_id == "c5")).all() \
            == [(case_id,)]


# -- seeding ------------------------------------------------------------------------------------
def test_a_huge_neighbours_count_seeds_every_match_instead_of_a_memory_error():
    """`--neighbours 100000000` ("as many as there are") allocated one vector per requested seed
    before a single one was taken: 143 GiB, a MemoryError traceback."""
    sims = np.array([[0.9], [0.8], [0.1]])
    vecs = np.eye(3, 384, dtype=np.float32)  # MiniLM width
    picks = nearest_round_robin(sims, 100_000_000, 0.3, vectors=vecs, max_similarity=0.9)
    assert [r for r, _, _ in picks] == [0, 1]


def test_seed_cases_with_a_huge_neighbours_count(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "benign", "p": 0.9, "text": t}
                                        for i, t in enumerate(SPAM)]
               + [{"id": f"c{i}", "label": "benign", "p": 0.9, "text": t} for i, t in enumerate(CHAT)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    out = seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=[SPAM[0]], embedder=BagOfWords(),
                     neighbours=10 ** 9, uniform_share=0.0, now=T0)
    assert 0 < out["seeded"] <= len(SPAM + CHAT)


def test_a_csv_examples_file_is_read_by_its_text_column(tmp_path):
    """A spreadsheet export was read one line per example: the header `text,label` became an
    example, and every row kept its quotes and its label column."""
    p = tmp_path / "examples.csv"
    p.write_text('text,label\n"WINNER, call 0906 now",spam\nfree prize txt CLAIM,spam\n\n', encoding="utf-8")
    assert read_examples(str(p)) == ["WINNER, call 0906 now", "free prize txt CLAIM"]
    t = tmp_path / "examples.tsv"
    t.write_text("id\ttext\n1\tfree cash, reply now\n", encoding="utf-8-sig")
    assert read_examples(str(t)) == ["free cash, reply now"]


def test_a_csv_examples_file_without_a_text_column_names_the_columns(tmp_path):
    p = tmp_path / "examples.csv"
    p.write_text("message,label\nwin cash,spam\n", encoding="utf-8")
    with pytest.raises(QueueError, match=r"examples\.csv line 1: no 'text' column \(columns: message, label\)"):
        read_examples(str(p))
    e = tmp_path / "empty.csv"
    e.write_text("text,label\n,spam\n", encoding="utf-8")
    with pytest.raises(QueueError, match=r"empty\.csv: no examples"):
        read_examples(str(e))


def test_a_json_array_examples_file_is_refused_in_one_line(tmp_path):
    """A `.json` array was read line by line: `[` and `{"text": ...},` became example texts."""
    p = tmp_path / "examples.json"
    p.write_text('[\n  {"text": "win a prize"},\n  {"text": "call now"}\n]\n', encoding="utf-8")
    with pytest.raises(QueueError, match=r"examples\.json: .*JSONL"):
        read_examples(str(p))


def test_a_campaign_decided_wrongly_item_by_item_is_held_out_whole(any_store, taxonomy, cfg):
    """Out-of-fold means out of the campaign: folds were grouped by exact text, so a wave's
    variants (another callback number each) sat in each other's training folds and vouched for
    the wrong label an analyst gave each of them, one by one (training groups by campaign)."""
    decided_store(any_store, taxonomy, cfg, 40, {})
    rng = np.random.default_rng(11)
    templates = [" ".join(rng.choice(SPAM_WORDS, size=8)) for _ in range(3)]
    wave = [{"id": f"w{t}-{k}", "label": "spam", "p": 0.9, "text": f"{templates[t]} call 0800{k}{t}12345 ref {k}"}
            for t in range(3) for k in range(8)]
    add_scored(any_store, taxonomy, wave)
    add_campaign(any_store, [w["id"] for w in wave])
    with any_store.begin() as conn:
        conn.execute(insert(D), [
            {"item_id": w["id"], "label": "benign", "action": "no_action", "kind": "review", "reviewer": "bob",
             "taxonomy_version": "t", "created_at": utcnow()} for w in wave])
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=0)
    assert out["decided"] == 80 + 24
    assert out["by_analyst"]["bob"]["flagged"] >= 20, out["by_analyst"]


# -- blind re-review draws ----------------------------------------------------------------------
def test_an_escalated_re_review_is_not_drawn_again(any_store, taxonomy, cfg, roles):
    """A lead escalated a blind re-review case (it moves to the escalation queue): the next draw
    took its item again, a second re-review of one decision while the first still waits."""
    from core.principals import Principal
    from labeling.escalation import escalate
    from labeling.rereview import draw_rereviews

    add_scored(any_store, taxonomy, [{"id": f"s{i}", "label": "scam", "p": 0.9} for i in range(4)])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    with any_store.read() as conn:
        cases = dict(conn.execute(select(C.c.item_id, C.c.id).where(C.c.campaign_id.is_(None))).all())
    for i in range(4):
        decide(any_store, taxonomy, cases[f"s{i}"], "ann", "scam", rationale="first look", config=cfg)
    lead = Principal("lena", "lead")
    first = draw_rereviews(any_store, cfg, lead, 4)
    assert first["drawn"] == 4
    escalate(any_store, taxonomy, first["case_ids"][0], lead, "need legal's view", cfg)
    again = draw_rereviews(any_store, cfg, lead, 4)
    assert (again["drawn"], again["candidates"]) == (0, 0)
