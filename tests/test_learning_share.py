"""The learning share (issue 18): a configured share of a queue's claims goes to uncertain, diverse
cases, marked `learning`, the rest in risk order; the sweep keeps the plan; a re-plan unpins."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from core.config import config_dir
from core.schema import Case
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.escalation import sweep
from labeling.learning import (apply_learning_share, entropy_uncertainty, interleave_priorities,
                               margin_uncertainty, select_learning, served_learning, slot_positions)
from labeling.queue_config import LearningShare, load_queue_config
from models.embeddings import EmbeddingCache
from core.text import text_hash
from test_queue_support import T0, add_campaign, add_scored

EMB = "test-emb"
N_CLUSTERS = 12


def share_config(taxonomy):
    """The bundled queues with a learning share of 0.25 on `general` (no calibration copies)."""
    base = load_queue_config(config_dir(), taxonomy=taxonomy)
    return base.model_copy(update={"calibration_sets": [], "learning": LearningShare(
        queues={"general": 0.25}, horizon=40, min_uncertainty=0.5, max_similarity=0.95)})


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return share_config(taxonomy)


def _scores(b: float) -> dict[str, float]:
    return {"benign": b, "spam": round(1 - b, 6), "scam": 0.0, "hate": 0.0, "harassment": 0.0}


def _fill(store, taxonomy, cfg) -> dict[str, dict]:
    """48 items in the general queue: 12 embedding clusters of 4; two items of each cluster uncertain
    (benign 0.55 / 0.6: margin uncertainty 0.9 / 0.8), two sure (0.8 / 0.85: 0.4 / 0.3)."""
    rng = np.random.default_rng(0)
    centres = np.linalg.qr(rng.normal(size=(64, N_CLUSTERS)))[0].T  # orthonormal cluster centres
    specs, vecs, info = [], {}, {}
    for i in range(48):
        cluster, level = i % N_CLUSTERS, i // N_CLUSTERS
        b = round((0.55, 0.6, 0.8, 0.85)[level] + 0.002 * cluster, 6)  # no two risk priorities tie
        text = f"message {i} of cluster {cluster}"
        v = centres[cluster] + 0.01 * rng.normal(size=64)  # cosine ~0.99 within a cluster
        vecs[text_hash(text)] = (v / np.linalg.norm(v)).astype(np.float32)
        specs.append({"id": f"m{i}", "label": "benign", "scores": _scores(b), "text": text})
        info[f"m{i}"] = {"cluster": cluster, "uncertainty": float(margin_uncertainty([list(_scores(b).values())])[0])}
    add_scored(store, taxonomy, specs)
    EmbeddingCache(store, EMB).put(vecs)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    return info


def test_uncertainty_measures():
    assert margin_uncertainty([[0.5, 0.5, 0.0]])[0] == pytest.approx(1.0)
    assert margin_uncertainty([[1.0, 0.0, 0.0]])[0] == pytest.approx(0.0)
    assert entropy_uncertainty([[0.25, 0.25, 0.25, 0.25]])[0] == pytest.approx(1.0)
    assert entropy_uncertainty([[1.0, 0.0, 0.0, 0.0]])[0] == pytest.approx(0.0)


def test_select_learning_takes_uncertain_rows_one_per_group_and_cluster():
    unc = np.array([0.95, 0.9, 0.85, 0.8, 0.2, 0.7])
    emb = np.array([[1, 0], [1, 0.01], [0, 1], [0.7, 0.7], [-1, 0], [np.nan, np.nan]], dtype=float)
    emb[:5] /= np.linalg.norm(emb[:5], axis=1, keepdims=True)
    groups = [("campaign", 1), None, ("campaign", 1), None, None, None]
    got = select_learning(unc, 10, emb, groups, min_uncertainty=0.5, max_similarity=0.95)
    assert got[0] == 0                      # the most uncertain first
    assert 1 not in got                     # within 0.95 cosine of row 0: same embedding cluster
    assert 2 not in got                     # same campaign as row 0
    assert 4 not in got                     # not uncertain enough
    assert set(got) == {0, 3, 5}            # row 5 has no vector: kept apart by its groups only


def test_interleave_places_the_share_evenly():
    risk = list(np.linspace(10, 1, 60))
    for share in (0.1, 0.25, 0.5, 0.8):
        k = int(40 * share)
        learn = interleave_priorities(risk, k, share)
        merged = sorted([(p, "r") for p in risk] + [(p, "l") for p in learn], key=lambda t: -t[0])
        pos = [i for i, (_, kind) in enumerate(merged) if kind == "l"]
        assert pos == slot_positions(k, share)
    # Past the end of the risk order the rest follow it, still in pick order.
    learn = interleave_priorities(risk[:3], 4, 0.5)
    assert learn[2] < risk[2] and learn[3] < learn[2]


def test_claims_serve_the_configured_share_of_uncertain_diverse_cases(any_store, taxonomy, cfg):
    info = _fill(any_store, taxonomy, cfg)
    out = apply_learning_share(any_store, taxonomy, cfg, "ops", now=T0, embedding_model=EMB)
    assert out["general"]["learning"] == 10          # 25% of the 40-claim horizon
    served = []
    for _ in range(40):
        c = next_case(any_store, "ann", "general", now=T0, config=cfg)
        served.append(c)
    learning = [c for c in served if served_learning(c)]
    assert len(learning) == 10
    assert [i for i, c in enumerate(served) if served_learning(c)] == [3, 7, 11, 15, 19, 23, 27, 31, 35, 39]
    for c in learning:
        assert c["priority_reason"].startswith("learning:")
        assert info[c["item_id"]]["uncertainty"] >= 0.5
        assert c["meta"]["learning"]["uncertainty"] >= 0.5
    clusters = [info[c["item_id"]]["cluster"] for c in learning]
    assert len(set(clusters)) == len(clusters)       # one per embedding cluster
    # The rest is served in risk order (priority never rises between two risk cases).
    risk = [c["priority"] for c in served if not served_learning(c)]
    assert all(a >= b - 1e-12 for a, b in zip(risk, risk[1:]))
    # Decided, each case says why it was served: the evaluation slices the model's quality by it.
    from evaluation.data import decision_rows
    from labeling.decisions import decide

    for c in served:
        decide(any_store, taxonomy, c["id"], "ann", "benign", config=cfg, now=T0)
    why = {r["item_id"]: r["served"] for r in decision_rows(any_store, taxonomy)}
    assert {why[c["item_id"]] for c in learning} == {"learning share"}
    assert {why[c["item_id"]] for c in served if not served_learning(c)} <= {"risk order", "uniform sample"}


def _pin_seeds(store, taxonomy, cfg, seeds: list[str]) -> None:
    """Pin `seeds` at the head of their queue as `labeling.seeding` does, in the given order."""
    from sqlalchemy import func, update

    from labeling.priority import score_features

    with store.begin() as conn:
        top = float(conn.execute(select(func.max(Case.priority))).scalar()) + 1.0
        for pos, item in enumerate(seeds):
            row = conn.execute(select(Case.id, Case.meta, Case.created_at, Case.due_at)
                               .where(Case.item_id == item)).one()
            meta = dict(row.meta)
            pin = top + 1.0 - (pos + 1) / (len(seeds) + 1)
            meta["features"] = dict(meta["features"], seed={"priority": pin, "why": "similar"})
            p, why, _ = score_features(taxonomy, meta["features"], cfg, row.created_at, row.due_at, T0)
            conn.execute(update(Case).where(Case.id == row.id).values(meta=meta, priority=p, priority_reason=why))


def test_seeds_stay_at_the_head_and_the_share_interleaves_after_them(sqlite_store, taxonomy, cfg):
    """A cold start's seed pins (labeling.seeding) are served first; the learning share takes its
    configured positions among the claims after them, never ahead of a seed."""
    _fill(sqlite_store, taxonomy, cfg)
    seeds = ["m44", "m45", "m46"]  # sure cases, low in risk order
    _pin_seeds(sqlite_store, taxonomy, cfg, seeds)
    out = apply_learning_share(sqlite_store, taxonomy, cfg, "ops", now=T0, embedding_model=EMB)
    assert out["general"]["learning"] == 10
    served = [next_case(sqlite_store, "ann", "general", now=T0, config=cfg) for _ in range(43)]
    assert [c["item_id"] for c in served[:3]] == seeds
    after = [i for i, c in enumerate(served[3:]) if served_learning(c)]
    assert after == slot_positions(10, 0.25) == [3, 7, 11, 15, 19, 23, 27, 31, 35, 39]
    # each learning case's explanation names the claim it was planned for, counting the seeds
    for pos in after:
        assert f"claim {3 + pos + 1} " in served[3 + pos]["priority_reason"], served[3 + pos]["priority_reason"]


@pytest.mark.parametrize("share,among,k_seed", [(0.5, 0.5, 7), (0.25, 0.5, 2), (0.25, 0.2, 1)])
def test_among_seeds_interleaves_learning_cases_with_the_seeds(any_store, taxonomy, cfg, share, among, k_seed):
    """With `among_seeds` (capped by the queue's share) that share of the claims while seeds wait
    are learning cases between them, seeds in their order; the rest of the learning share follows
    the seeds at the queue's share, as without it."""
    _fill(any_store, taxonomy, cfg)
    seeds = ["m44", "m45", "m46", "m47", "m40", "m41", "m42", "m43"]  # sure cases, low in risk order
    _pin_seeds(any_store, taxonomy, cfg, seeds)
    mixed = cfg.model_copy(update={"learning": cfg.learning.model_copy(
        update={"among_seeds": among, "queues": {"general": share}})})
    out = apply_learning_share(any_store, taxonomy, mixed, "ops", now=T0, embedding_model=EMB)
    n_learn = out["general"]["learning"]
    assert n_learn == min(int(40 * share), N_CLUSTERS)
    assert (out["general"]["seeds"], out["general"]["among_seeds"]) == (len(seeds), k_seed)
    served = [next_case(any_store, "ann", "general", now=T0, config=mixed) for _ in range(48)]
    head = len(seeds) + k_seed
    assert [c["item_id"] for c in served[:head] if not served_learning(c)] == seeds
    among_pos = [i for i, c in enumerate(served[:head]) if served_learning(c)]
    assert among_pos == slot_positions(k_seed, min(among, share))
    after = [i for i, c in enumerate(served[head:]) if served_learning(c)]
    assert after == slot_positions(n_learn - k_seed, share)
    for i in among_pos:
        reason = served[i]["priority_reason"]
        assert "among its cold-start seeds" in reason and f"claim {i + 1} " in reason, reason
    for pos in after:
        reason = served[head + pos]["priority_reason"]
        assert "among" not in reason and f"claim {head + pos + 1} " in reason, reason
    # The pick's first (most uncertain, most diverse) are the ones among the seeds.
    ranks = [c["meta"]["learning"]["rank"] for c in served if served_learning(c)]
    assert ranks == sorted(ranks)


def _champion(store, trained_at) -> None:
    """A champion row in the registry, trained at `trained_at` (no artefact: only its date is read)."""
    from sqlalchemy import insert

    from core.schema import ModelVersion

    with store.begin() as conn:
        conn.execute(insert(ModelVersion.__table__).values(
            id="champ-1", kind="hybrid", artifact_path="models/champ-1", role="champion", labels=["benign", "spam"],
            created_at=trained_at, promoted_at=trained_at))


def test_seeds_of_a_new_surface_take_among_seeds_new_surface(any_store, taxonomy, cfg):
    """Seeds from a source the champion learnt from fewer than `new_surface_below` labelled items
    of get `among_seeds_new_surface` of the claims while they wait, and say so; once the champion
    has learnt from that source, `among_seeds` applies again."""
    import datetime as dt

    from sqlalchemy import update

    from core.schema import Item

    _fill(any_store, taxonomy, cfg)
    seeds = ["m44", "m45", "m46", "m47", "m40", "m41", "m42", "m43"]
    _pin_seeds(any_store, taxonomy, cfg, seeds)
    mixed = cfg.model_copy(update={"learning": cfg.learning.model_copy(update={
        "among_seeds": 0.25, "among_seeds_new_surface": 0.5, "new_surface_below": 20, "queues": {"general": 0.5}})})
    out = apply_learning_share(any_store, taxonomy, mixed, "ops", now=T0, embedding_model=EMB)["general"]
    assert (out["among_seeds"], out["new_surface"]) == (7, "test")  # no champion: nothing learnt from it
    with any_store.read() as conn:
        reasons = [r.priority_reason for r in conn.execute(select(Case.priority_reason)).all()]
    assert sum("among its cold-start seeds (source test is new to the model)" in r for r in reasons) == 7
    # 30 source labels, but the champion was trained before they came: still new.
    with any_store.begin() as conn:
        conn.execute(update(Item).where(Item.id.in_([f"m{i}" for i in range(30)]))
                     .values(policy_label="benign", ingested_at=T0 + dt.timedelta(hours=2)))
    _champion(any_store, T0 + dt.timedelta(hours=1))
    again = apply_learning_share(any_store, taxonomy, mixed, "ops", now=T0, embedding_model=EMB)["general"]
    assert (again["among_seeds"], again["new_surface"]) == (7, "test")
    with any_store.begin() as conn:
        conn.execute(update(Item).values(ingested_at=T0))
    known = apply_learning_share(any_store, taxonomy, mixed, "ops", now=T0, embedding_model=EMB)["general"]
    assert (known["among_seeds"], known["new_surface"]) == (2, None)
    # Unset, the new surface's share falls back to among_seeds.
    plain = mixed.model_copy(update={"learning": mixed.learning.model_copy(update={"among_seeds_new_surface": None})})
    with any_store.begin() as conn:
        conn.execute(update(Item).values(policy_label=None))
    assert apply_learning_share(any_store, taxonomy, plain, "ops", now=T0, embedding_model=EMB)["general"][
        "among_seeds"] == 2


def test_sources_new_to_champion_counts_what_it_learnt_before_training(sqlite_store, taxonomy):
    """Source labels ingested and decisions made before the champion was trained count; later
    ones do not; `new_surface_below` 0 turns the rule off."""
    import datetime as dt

    from sqlalchemy import insert, update

    from core.schema import Decision, Item
    from labeling.learning import sources_new_to_champion

    add_scored(sqlite_store, taxonomy, [{"id": f"a{i}", "label": "benign", "p": 0.9, "source": "sms"} for i in range(6)]
               + [{"id": f"b{i}", "label": "benign", "p": 0.9, "source": "forum", "truth": "benign"} for i in range(3)])
    with sqlite_store.read() as conn:
        assert sources_new_to_champion(conn, ["sms", "forum"], 3) == {"sms", "forum"}  # no champion
        assert sources_new_to_champion(conn, ["sms", "forum"], 0) == set()
    _champion(sqlite_store, T0 + dt.timedelta(hours=1))
    with sqlite_store.begin() as conn:
        conn.execute(insert(Decision.__table__), [
            {"item_id": f"a{i}", "reviewer": "ann", "label": "spam", "action": "remove", "taxonomy_version": "t",
             "created_at": T0 + dt.timedelta(minutes=10 if i < 2 else 120)} for i in range(6)])
    with sqlite_store.read() as conn:
        assert sources_new_to_champion(conn, ["sms", "forum"], 3) == {"sms"}  # 2 decisions before, 4 after
    with sqlite_store.begin() as conn:
        conn.execute(update(Item).where(Item.id == "a5").values(policy_label="spam"))
    with sqlite_store.read() as conn:
        assert sources_new_to_champion(conn, ["sms"], 3) == set()


def test_one_learning_case_per_campaign(sqlite_store, taxonomy, cfg):
    _fill(sqlite_store, taxonomy, cfg)
    add_campaign(sqlite_store, [f"m{i}" for i in range(0, 48, 1) if i % N_CLUSTERS < 6])  # clusters 0-5: one campaign
    apply_learning_share(sqlite_store, taxonomy, cfg, "ops", now=T0, embedding_model=EMB)
    with sqlite_store.read() as conn:
        rows = conn.execute(select(Case.__table__).where(Case.__table__.c.queue == "general")).mappings().all()
    camp = [r for r in rows if (r["meta"] or {}).get("learning", {}).get("campaign_id") is not None]
    assert len(camp) == 1
    assert sum(1 for r in rows if (r["meta"] or {}).get("learning")) == 7   # 1 campaign + clusters 6-11


def test_sweep_keeps_the_plan_and_a_replan_unpins(sqlite_store, taxonomy, cfg):
    _fill(sqlite_store, taxonomy, cfg)
    apply_learning_share(sqlite_store, taxonomy, cfg, "ops", now=T0, embedding_model=EMB)
    C = Case.__table__

    def pinned():
        with sqlite_store.read() as conn:
            return {r.id: r.priority for r in conn.execute(select(C.c.id, C.c.priority, C.c.priority_reason))
                    if (r.priority_reason or "").startswith("learning:")}

    before = pinned()
    sweep(sqlite_store, taxonomy, cfg, now=T0)
    assert pinned() == before
    off = cfg.model_copy(update={"learning": LearningShare(queues={"general": 0.0})})
    out = apply_learning_share(sqlite_store, taxonomy, off, "ops", now=T0, embedding_model=EMB)
    assert out["general"]["unpinned"] == len(before) and not pinned()


def test_cli_cases_build_plans_the_learning_share(tmp_path, taxonomy):
    """`cases build` runs the pass with the shipped config (general at 0.2); `learning` re-plans;
    `label-errors counts` answers on a store without re-review cases."""
    import json

    from click.testing import CliRunner

    from core.store import open_store
    from workbench.cli import cli

    data = tmp_path / "data"
    store = open_store(data)
    add_scored(store, taxonomy, [{"id": f"g{i}", "label": "benign", "scores": _scores(0.52 + 0.01 * i),
                                  "text": f"hello number {i}"} for i in range(30)])
    store.dispose()
    runner = CliRunner()

    def run(*args):
        res = runner.invoke(cli, ["--data-dir", str(data), *args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    built = run("cases", "build", "--json")
    assert built["learning"]["general"]["learning"] >= 1
    listed = runner.invoke(cli, ["--data-dir", str(data), "cases", "list", "--queue", "general", "--json"]).output
    assert any(str(c["priority_reason"]).startswith("learning:") for c in json.loads(listed))
    again = run("learning", "--queue", "general", "--json")
    assert again["general"]["learning"] == built["learning"]["general"]["learning"]
    assert run("label-errors", "counts", "--json") == {}


def test_serve_sweeper_replans_the_share_as_learning_cases_are_claimed(sqlite_store, taxonomy):
    """`serve` has no cron: its sweeper re-plans the learning share, or the pinned cases, once
    claimed, would leave the queue in risk order only until someone ran `workbench learning`."""
    from workbench.context import AppContext
    from workbench.learning import sweep_once

    add_scored(sqlite_store, taxonomy, [{"id": f"g{i}", "label": "benign", "scores": _scores(0.51 + 0.002 * i),
                                         "text": f"hello number {i} " + "x" * i} for i in range(80)])
    app = AppContext(store=sqlite_store)
    build_cases(sqlite_store, taxonomy, app.queues(), now=T0, progress=False)
    C = Case.__table__

    def waiting_learning() -> int:
        with sqlite_store.read() as conn:
            return sum(1 for r in conn.execute(select(C.c.priority_reason).where(C.c.state == "open",
                                                                                 C.c.queue == "general"))
                       if (r.priority_reason or "").startswith("learning:"))

    first = sweep_once(app)
    planned = first["learning"]["general"]["learning"]
    assert planned >= 3 and waiting_learning() == planned
    from labeling.decisions import decide

    served = [next_case(sqlite_store, "ann", "general", config=app.queues()) for _ in range(40)]
    for c in served:
        decide(sqlite_store, taxonomy, c["id"], "ann", "benign", config=app.queues())
    assert sum(served_learning(c) for c in served) >= 1 and waiting_learning() < planned  # the share ran short
    again = sweep_once(app)  # the share of the 40 cases still waiting (a short queue: not the horizon's)
    assert again["learning"]["general"]["learning"] == 8 and waiting_learning() == 8


def test_the_plan_needs_vectors_for_the_candidates_only():
    """A planner fetches vectors for `learning_candidates` alone (not the whole backlog) and picks
    exactly what `select_learning` over the whole backlog would."""
    from labeling.learning import learning_candidates

    rng = np.random.default_rng(5)
    for trial in range(20):
        n, k = int(rng.integers(50, 400)), int(rng.integers(1, 12))
        unc = np.round(rng.random(n), 2)  # rounded: ties, whose order must hold too
        emb = rng.normal(size=(n, 8))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        emb[rng.random(n) < 0.1] = np.nan
        groups = [(("campaign", int(g)) if g < 5 else None, ("text", i)) for i, g in enumerate(rng.integers(0, 40, n))]
        whole = select_learning(unc, k, emb, groups, min_uncertainty=0.3, max_similarity=0.8, pool=3)
        sub = learning_candidates(unc, k, 0.3, pool=3)
        assert len(sub) <= 3 * k
        part = select_learning(unc[sub], k, emb[sub], [groups[i] for i in sub], min_uncertainty=0.3,
                               max_similarity=0.8, pool=3)
        assert [int(sub[c]) for c in part] == whole, trial


def test_the_last_plan_written_is_the_plan(sqlite_store, taxonomy, cfg, monkeypatch):
    """Two passes at once (the sweeper beside `workbench learning`): the one that writes last
    read the queue before the other pinned its cases; those are unpinned, not left beside its own."""
    import labeling.learning as learning

    _fill(sqlite_store, taxonomy, cfg)
    stale = learning.plan_queue(sqlite_store, taxonomy, cfg, "general", T0, EMB)  # read before any pin
    other = cfg.model_copy(update={"learning": cfg.learning.model_copy(update={
        "queues": {"general": 0.9}, "min_uncertainty": 0.0, "max_similarity": 1.0})})
    first = apply_learning_share(sqlite_store, taxonomy, other, "ops", now=T0, embedding_model=EMB)
    assert first["general"]["learning"] > len(stale["pin"]) + 5  # it pinned cases the stale plan does not
    monkeypatch.setattr(learning, "plan_queue", lambda *a, **k: {**stale, "unpin": list(stale["unpin"])})
    apply_learning_share(sqlite_store, taxonomy, cfg, "ops", now=T0, embedding_model=EMB)
    C = Case.__table__
    with sqlite_store.read() as conn:
        pinned = {r.id for r in conn.execute(select(C.c.id, C.c.priority_reason))
                  if (r.priority_reason or "").startswith("learning:")}
    assert pinned == set(stale["pin"])


def test_a_case_seeded_after_the_plan_was_read_stays_a_seed(sqlite_store, taxonomy, cfg, monkeypatch):
    """`workbench seed` pins a case the running pass planned as a learning case: the pass's write
    leaves the seed alone (seeds are never learning cases) instead of serving it as both."""
    import labeling.learning as learning

    _fill(sqlite_store, taxonomy, cfg)
    plan = learning.plan_queue(sqlite_store, taxonomy, cfg, "general", T0, EMB)
    C = Case.__table__
    with sqlite_store.read() as conn:
        target = conn.execute(select(C.c.item_id).where(C.c.id == next(iter(plan["pin"])))).scalar()
    _pin_seeds(sqlite_store, taxonomy, cfg, [target])  # seeded between the plan's read and its write
    monkeypatch.setattr(learning, "plan_queue", lambda *a, **k: plan)
    out = apply_learning_share(sqlite_store, taxonomy, cfg, "ops", now=T0, embedding_model=EMB)
    assert out["general"]["learning"] == len(plan["pin"]) - 1
    with sqlite_store.read() as conn:
        row = conn.execute(select(C.c.priority_reason, C.c.meta).where(C.c.item_id == target)).one()
    assert row.priority_reason.startswith("seed:") and "learning" not in row.meta
    assert "learning" not in row.meta["features"] and not served_learning(dict(row._mapping))


def test_a_learning_case_claimed_before_a_replan_keeps_its_record(sqlite_store, taxonomy, cfg, monkeypatch):
    """A pass re-plans from a read made before an analyst claimed one of the learning cases: the
    claimed case was served as a learning case and keeps that record (meta, reason), even though
    the new plan would unpin it while it waited."""
    import labeling.learning as learning

    _fill(sqlite_store, taxonomy, cfg)
    wide = cfg.model_copy(update={"learning": cfg.learning.model_copy(update={
        "queues": {"general": 0.9}, "min_uncertainty": 0.0, "max_similarity": 1.0})})
    apply_learning_share(sqlite_store, taxonomy, wide, "ops", now=T0, embedding_model=EMB)
    stale = learning.plan_queue(sqlite_store, taxonomy, cfg, "general", T0, EMB)  # read while all wait
    assert stale["unpin"]
    from labeling.claims import claim_case

    claimed = claim_case(sqlite_store, stale["unpin"][0], "ann", cfg, now=T0)  # opened from the queue's list
    monkeypatch.setattr(learning, "plan_queue", lambda *a, **k: {**stale, "unpin": list(stale["unpin"])})
    apply_learning_share(sqlite_store, taxonomy, cfg, "ops", now=T0, embedding_model=EMB)
    C = Case.__table__
    with sqlite_store.read() as conn:
        row = conn.execute(select(C.c.state, C.c.priority_reason, C.c.meta).where(C.c.id == claimed["id"])).one()
    assert row.state == "claimed" and served_learning(dict(row._mapping))
    assert row.meta.get("learning") and "learning" in row.meta["features"]
