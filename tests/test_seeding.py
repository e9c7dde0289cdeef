"""Cold start (issue 18): seeds around a few examples are the neighbours of the examples, with a
uniform QA sample interleaved, pinned at the head of the policy's queue; decided items are left alone."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sqlalchemy import select

from core.config import config_dir
from core.schema import Case, Decision
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.errors import QueueError
from labeling.queue_config import load_queue_config
from labeling.seeding import decided_examples, interleave_uniform, nearest_round_robin, read_examples, seed_cases
from test_queue_support import T0, add_scored

SPAM = [f"WINNER! you have won a free prize {i}, call 0906{i:03d} now to claim your cash" for i in range(10)]
CHAT = [f"are we still meeting for lunch at {i} today? see you at the cafe" for i in range(15)] + \
       [f"thanks mum, I got home fine, the train was late by {i} minutes" for i in range(15)]


class BagOfWords:
    """A deterministic stand-in for the MiniLM embedder: hashed bag of words, unit length."""

    model_id = "bow-test"
    dim = 256

    def encode(self, texts, show_progress=False):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, int(hashlib.md5(w.strip(",.!?").encode()).hexdigest(), 16) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": []})


def _store(store, taxonomy, cfg):
    # A Davidson-like champion: everything looks benign to it (no spam examples ever seen).
    specs = [{"id": f"s{i}", "label": "benign", "p": 0.97, "text": t, "truth": "spam"} for i, t in enumerate(SPAM)]
    specs += [{"id": f"c{i}", "label": "benign", "p": 0.95, "text": t, "truth": "benign"} for i, t in enumerate(CHAT)]
    add_scored(store, taxonomy, specs)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)


def test_round_robin_and_interleave_are_pure_and_fair():
    sims = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7], [0.05, 0.6], [0.0, 0.0]])
    picks = nearest_round_robin(sims, 4, 0.3)
    assert [(r, e) for r, e, _ in picks] == [(0, 0), (2, 1), (1, 0), (3, 1)]
    assert nearest_round_robin(sims, 4, 0.3, groups=["a", "a", "b", "c", "d"])[1][0] == 2
    assert [r for r, _, _ in nearest_round_robin(sims, 10, 0.75)] == [0, 1]
    # Near-copies: rows 0 and 1 are one template (cosine 0.99); with max_similarity 0.9 example 0
    # passes row 1 over and its second pick is the next row unlike both (row 4 has no vector: kept).
    vec = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0], [0.6, 0.8], [np.nan, np.nan]])
    near = np.array([[0.9, 0.1], [0.89, 0.2], [0.1, 0.7], [0.5, 0.6], [0.4, 0.0]])
    assert [r for r, _, _ in nearest_round_robin(near, 5, 0.3, vectors=vec, max_similarity=0.9)] == [0, 2, 3, 4]
    assert [r for r, _, _ in nearest_round_robin(near, 5, 0.3, vectors=vec)] == [0, 2, 1, 3, 4]
    order = interleave_uniform(list("abcdefgh"), ["U", "V"])
    assert sorted(order) == sorted("abcdefghUV")
    assert 0 < order.index("U") < order.index("V") < 9        # spread through, not bunched at either end
    assert [x for x in order if x.islower()] == list("abcdefgh")


def test_seed_finds_the_neighbours_of_the_examples(any_store, taxonomy, cfg):
    _store(any_store, taxonomy, cfg)
    examples = ["You have WON a cash prize! Call 0906 now to claim", "free prize winner, call now"]
    out = seed_cases(any_store, taxonomy, cfg, "eng", policy="spam", examples=examples, embedder=BagOfWords(),
                     neighbours=8, uniform_share=0.25, max_similarity=1.0, now=T0)
    assert out["queue"] == "spam" and out["seeded"] == 8 and out["uniform"] == 2
    seeds = [x["item_id"] for x in out["items"] if x["kind"] == "seed"]
    assert all(i.startswith("s") for i in seeds), seeds            # every seed is a spam neighbour
    assert {x["example"] for x in out["items"] if x["kind"] == "seed"} == {1, 2}
    uniform = [x["item_id"] for x in out["items"] if x["kind"] == "uniform"]
    assert not set(uniform) & set(seeds)
    # The seeds lead the spam queue, explained, with the uniform sample among them as QA audits.
    served = [next_case(any_store, "ann", "spam", now=T0, config=cfg) for _ in range(10)]
    assert [c["item_id"] for c in served] == [x["item_id"] for x in out["items"]]
    assert all(c["priority_reason"].startswith("seed:") for c in served)
    assert all(c["is_audit"] and 0 < c["audit_inclusion"] < 1 for c in served if c["item_id"] in uniform)
    assert next_case(any_store, "ann", "spam", now=T0, config=cfg) is None


def test_seed_passes_over_near_copies_by_the_configured_threshold(sqlite_store, taxonomy, cfg):
    """The shipped seeding.max_similarity: ten copies of one prize template (numbers aside) give one
    seed, not ten, and the other wording still gets its own; no two seeds are near-copies."""
    _store(sqlite_store, taxonomy, cfg)
    other = [f"URGENT your mobile number {i} was awarded a bonus, reply YES to 8007{i:02d} for the bonus" for i in range(6)]
    add_scored(sqlite_store, taxonomy, [{"id": f"o{i}", "label": "benign", "p": 0.96, "text": t, "truth": "spam"}
                                        for i, t in enumerate(other)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    near = cfg.seeding.max_similarity
    assert near is not None and near < 0.9
    examples = ["You have WON a cash prize! Call 0906 now to claim", "awarded a bonus, reply YES"]
    out = seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=examples, embedder=BagOfWords(),
                     neighbours=8, uniform_share=0.0, now=T0)
    seeds = [x["item_id"] for x in out["items"] if x["kind"] == "seed"]
    assert out["max_similarity"] == near and len(seeds) < 8
    assert sum(i.startswith("s") for i in seeds) == 1 and sum(i.startswith("o") for i in seeds) == 1
    texts = {**{f"s{i}": t for i, t in enumerate(SPAM)}, **{f"o{i}": t for i, t in enumerate(other)},
             **{f"c{i}": t for i, t in enumerate(CHAT)}}
    V = BagOfWords().encode([texts[i] for i in seeds])
    assert (V @ V.T)[np.triu_indices(len(seeds), 1)].max(initial=-1) < near
    with pytest.raises(QueueError, match="max_similarity"):
        seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=examples, embedder=BagOfWords(),
                   max_similarity=1.5, now=T0)


def test_seed_leaves_decided_items_and_checks_input(sqlite_store, taxonomy, cfg, tmp_path):
    _store(sqlite_store, taxonomy, cfg)
    from labeling.decisions import decide

    with sqlite_store.read() as conn:
        case_id = conn.execute(select(Case.__table__.c.id).where(Case.__table__.c.item_id == "s0")).scalar()
    decide(sqlite_store, taxonomy, case_id, "ann", "spam", rationale="spam", config=cfg, now=T0)
    out = seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=[SPAM[0]], embedder=BagOfWords(),
                     neighbours=5, uniform_share=0.0, max_similarity=1.0, now=T0)
    assert "s0" not in [x["item_id"] for x in out["items"]]
    with sqlite_store.read() as conn:
        assert conn.execute(select(Decision.__table__.c.id)).all()  # the decision stays as it was
    with pytest.raises(QueueError, match="unknown policy"):
        seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="nope", examples=["x"], embedder=BagOfWords())
    with pytest.raises(QueueError, match="at least one"):
        seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=["  "], embedder=BagOfWords())
    bad = tmp_path / "ex.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": 1}\n', encoding="utf-8")
    with pytest.raises(QueueError, match=r"ex.jsonl line 2: field 'text'"):
        read_examples(str(bad))
    good = tmp_path / "ex.txt"
    good.write_text("# spam examples\nwin a prize\n\ncall now\n", encoding="utf-8")
    assert read_examples(str(good)) == ["win a prize", "call now"]


def test_a_second_round_seeds_around_the_decided_positives(sqlite_store, taxonomy, cfg):
    """Round one found a few spam messages; their decisions are the examples of round two, which
    reaches the spam the engineer's example did not (other wording), never the decided ones."""
    from labeling.decisions import decide

    _store(sqlite_store, taxonomy, cfg)
    other = [f"URGENT your mobile number {i} was awarded a bonus, reply YES to 8007{i:02d} for the bonus" for i in range(6)]
    add_scored(sqlite_store, taxonomy, [{"id": f"o{i}", "label": "benign", "p": 0.96, "text": t, "truth": "spam"}
                                        for i, t in enumerate(other)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    assert decided_examples(sqlite_store, taxonomy, "spam") == []
    with sqlite_store.read() as conn:
        ids = dict(conn.execute(select(Case.__table__.c.item_id, Case.__table__.c.id)
                                .where(Case.__table__.c.item_id.in_(["s0", "o0", "c0"]))).all())
    decide(sqlite_store, taxonomy, ids["s0"], "ann", "spam", rationale="prize spam", config=cfg, now=T0)
    decide(sqlite_store, taxonomy, ids["o0"], "ann", "spam", rationale="bonus spam", config=cfg, now=T0)
    decide(sqlite_store, taxonomy, ids["c0"], "ann", "benign", rationale="chat", config=cfg, now=T0)
    examples = decided_examples(sqlite_store, taxonomy, "spam")
    assert sorted(examples) == sorted([SPAM[0], other[0]])                  # the spam decisions only
    assert decided_examples(sqlite_store, taxonomy, "spam", limit=1) == [other[0]]   # the newest first
    assert decided_examples(sqlite_store, taxonomy, "spam", surface="elsewhere") == []  # out of scope
    out = seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=examples, embedder=BagOfWords(),
                     neighbours=10, uniform_share=0.0, max_similarity=1.0, now=T0)
    seeded = {x["item_id"] for x in out["items"]}
    assert {f"o{i}" for i in range(1, 6)} <= seeded                        # the other wording is reached
    assert not seeded & {"s0", "o0", "c0"} and not any(i.startswith("c") for i in seeded)
    with pytest.raises(QueueError, match="unknown policy"):
        decided_examples(sqlite_store, taxonomy, "nope")


def test_cli_seed_from_decisions(tmp_path, taxonomy, cfg):
    """`workbench seed --from-decisions`: refused (one line) before any decision of the policy;
    after one, the bundled MiniLM seeds around it."""
    import json

    from click.testing import CliRunner

    from core.store import open_store
    from labeling.decisions import decide
    from workbench.cli import cli

    data = tmp_path / "data"
    store = open_store(data)
    _store(store, taxonomy, cfg)
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(data), "seed", "--policy", "spam", "--from-decisions"])
    assert res.exit_code == 2 and "no item is decided as spam yet" in res.output
    with store.read() as conn:
        case_id = conn.execute(select(Case.__table__.c.id).where(Case.__table__.c.item_id == "s0")).scalar()
    decide(store, taxonomy, case_id, "ann", "spam", rationale="prize spam", config=cfg, now=T0)
    store.dispose()
    res = runner.invoke(cli, ["--data-dir", str(data), "seed", "--policy", "spam", "--from-decisions",
                              "--neighbours", "5", "--uniform-share", "0", "--max-similarity", "1", "--json"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # (stderr may carry the embedding model's loading bar)
    assert out["examples"] == 1 and out["seeded"] == 5
    assert all(x["item_id"].startswith("s") and x["item_id"] != "s0" for x in out["items"])  # the other spam
    # With the shipped near-copy threshold the plain output says near-copies were passed over; a
    # threshold out of range is one line, no traceback.
    res = runner.invoke(cli, ["--data-dir", str(data), "seed", "--policy", "spam", "--from-decisions",
                              "--neighbours", "5", "--uniform-share", "0"], catch_exceptions=False)
    assert res.exit_code == 0 and "passed over as near-copies" in res.stdout, res.output
    res = runner.invoke(cli, ["--data-dir", str(data), "seed", "--policy", "spam", "--from-decisions",
                              "--max-similarity", "2"])
    assert res.exit_code != 0 and "max_similarity must be in (-1, 1], not 2.0" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("kwargs,message", [
    ({"neighbours": -3}, "neighbours must be positive, not -3"),
    ({"uniform_share": 1.5}, "uniform_share must be between 0 and 1, not 1.5"),
    ({"max_similarity": 5.0}, r"max_similarity must be in \(-1, 1\], not 5.0")])
def test_a_bad_seeding_setting_is_named_with_its_value(sqlite_store, taxonomy, cfg, kwargs, message):
    _store(sqlite_store, taxonomy, cfg)
    with pytest.raises(QueueError, match=message):
        seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=["win a prize"],
                   embedder=BagOfWords(), **kwargs)


def test_a_newer_model_keeps_the_seeds_pinned_where_they_were(any_store, taxonomy, cfg):
    """A promotion mid-cold-start (the loop promotes after ~80 decisions while seeds still wait):
    re-planning the waiting cases for the new model keeps each seed's queue, pin and record, so
    the seeds are still served first, in their order (before, they went back to risk order and
    to the queue the new prediction routes to)."""
    from sqlalchemy import insert

    from core.schema import Prediction
    from test_queue_support import scores_for

    _store(any_store, taxonomy, cfg)
    examples = ["You have WON a cash prize! Call 0906 now to claim", "free prize winner, call now"]
    out = seed_cases(any_store, taxonomy, cfg, "eng", policy="spam", examples=examples, embedder=BagOfWords(),
                     neighbours=8, uniform_share=0.25, max_similarity=1.0, now=T0)
    C = Case.__table__

    def seeded():
        with any_store.read() as conn:
            return {r.item_id: (r.queue, r.meta["seed"], r.meta["features"]["seed"], r.is_audit) for r in
                    conn.execute(select(C).where(C.c.item_id.in_([x["item_id"] for x in out["items"]])))}

    before = seeded()
    # A newer model scores every item (as a promotion's rescoring does): it calls the chat benign
    # at 0.99 and the spam spam, so its routes and priorities differ from the old model's.
    with any_store.begin() as conn:
        rows = []
        for item_id, in conn.execute(select(Case.__table__.c.item_id)):
            label = "spam" if item_id.startswith("s") else "benign"
            sc = scores_for(taxonomy, label, 0.99)
            rows.append({"item_id": item_id, "model_version": "model-2", "label": label, "score": sc[label],
                         "scores": sc, "uncertainty": 0.01, "taxonomy_version": taxonomy.version, "created_at": T0})
        conn.execute(insert(Prediction.__table__), rows)
    built = build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    assert built["rescored"] >= len(before)
    assert seeded() == before
    served = [next_case(any_store, "ann", "spam", now=T0, config=cfg) for _ in range(len(before))]
    assert [c["item_id"] for c in served] == [x["item_id"] for x in out["items"]]
    assert all(c["priority_reason"].startswith("seed:") and c["model_version"] == "model-2" for c in served)


def test_an_item_claimed_while_the_seeds_are_embedded_is_not_seeded_twice(sqlite_store, taxonomy, cfg):
    """Seeding reads its pool, embeds it (minutes on a big store), then writes. An analyst who
    claims (or decides) one of the pool's cases meanwhile keeps it: the seed passes over the item
    instead of opening a second case for it beside the claimed one."""
    from labeling.claims import claim_case

    _store(sqlite_store, taxonomy, cfg)
    C = Case.__table__
    with sqlite_store.read() as conn:
        target = conn.execute(select(C.c.id).where(C.c.item_id == "s1")).scalar()

    class ClaimingMidway(BagOfWords):
        claimed = False

        def encode(self, texts, show_progress=False):
            if not self.claimed:  # ann claims s1's case while the pool is embedded
                self.claimed = True
                claim_case(sqlite_store, target, "ann", cfg, now=T0)
            return super().encode(texts, show_progress)

    out = seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=[SPAM[1]], embedder=ClaimingMidway(),
                     neighbours=5, uniform_share=0.0, max_similarity=1.0, now=T0)
    assert "s1" not in [x["item_id"] for x in out["items"]] and out["passed_over"] == 1
    with sqlite_store.read() as conn:
        rows = conn.execute(select(C.c.id, C.c.state, C.c.claimed_by).where(C.c.item_id == "s1")).all()
    assert [(r.id, r.state, r.claimed_by) for r in rows] == [(target, "claimed", "ann")]  # one case, still ann's
