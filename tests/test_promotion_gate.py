"""Retrain and promote behind a gate (issue 18): the comparison statistics, the gate refusing an
equal or worse challenger and accepting a clearly better one, rescoring after a promotion, and
who may retrain or force a promotion."""
from __future__ import annotations

import datetime as dt
import json
import re
import threading

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select

from core.config import ConfigError
from core.hooks import PermissionDenied
from core.predictions import champion_version, predictions_of_record
from core.principals import Principal
from core.schema import AuditEvent, Campaign, CampaignMember, Case, Decision, ModelVersion, utcnow
from evaluation.compare import gate, mcnemar, paired_bootstrap, resample_weights
from evaluation.promotion import PromotionError, retrain_and_gate, retrain_due
from labeling.cases import build_cases
from labeling.rescore import stale_open_cases
from models.config import load_models_config
from models.registry import get_model, train_model
from models.scoring import score_items
from models.training import TrainingSet
from test_models_fixtures import add_items, toy_corpus

BASE = load_models_config()
MODELS = BASE.model_copy(update={
    "kinds": {**BASE.kinds, "tfidf_lr": {"min_df": 1}},
    "promotion": BASE.promotion.model_copy(update={"bootstrap": 300, "min_items": 20}),
    "training": BASE.training.model_copy(update={"default_kind": "tfidf_lr"})})
FAST = {"min_df": 1}


# -- the statistics --------------------------------------------------------------------------
def _probas(y, k, acc, rng):
    """One-hot-ish probabilities right on a share `acc` of items."""
    n = len(y)
    right = rng.random(n) < acc
    pred = np.where(right, y, (y + 1 + rng.integers(0, k - 1, n)) % k)
    p = np.full((n, k), 0.1 / (k - 1))
    p[np.arange(n), pred] = 0.9
    return p, pred


def test_copies_of_a_campaign_are_one_unit_of_evidence():
    """Copies share their errors: counted as items, 3 campaigns the challenger got right alone
    looked like 12 independent wins (exact p 0.0005); as groups they are 3 (p 0.25). An equal
    challenger on 10 groups of 4 copies passed a 0.05 gate about twice as often as it should."""
    groups = np.repeat(np.arange(10), 4)
    champion = np.ones(40, dtype=bool)
    champion[:12] = False  # groups 0-2: only the challenger is right
    challenger = np.ones(40, dtype=bool)
    by_item, by_group = mcnemar(champion, challenger), mcnemar(champion, challenger, groups)
    assert by_item["units"] == "items" and by_item["p_value"] < 0.001
    assert (by_group["units"], by_group["favour_champion"], by_group["favour_challenger"]) == ("groups", 0, 3)
    assert by_group["p_value"] == pytest.approx(0.25) and by_group["only_challenger_right"] == 12
    assert mcnemar(champion, challenger, np.arange(40)) == by_item | {"units": "items"}  # singletons: McNemar
    labels = ["benign", "spam"]
    y = np.zeros(40, dtype=int)
    pa = np.where(champion[:, None], [[0.9, 0.1]], [[0.1, 0.9]])
    comp = paired_bootstrap(y, pa, np.tile([[0.9, 0.1]], (40, 1)), pa.argmax(1), np.zeros(40, dtype=int), labels,
                            groups=groups, n_boot=300, seed=1)
    assert comp["n"] == 40 and comp["groups"] == 10 and comp["mcnemar"]["units"] == "groups"
    verdict = gate({"test_split": comp}, "macro_f1", -1.0, 10, mcnemar_alpha=0.05)
    assert not verdict["passed"] and "by group 3 to 0" in verdict["reason"]
    small = gate({"test_split": comp}, "macro_f1", -1.0, 30)  # 40 items but 10 groups: under min_items
    assert not small["passed"] and "40 items in 10 groups" in small["reason"]


def test_gate_refuses_equal_and_worse_and_accepts_clearly_better():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    labels = ["benign", "spam", "scam"]
    pa, preda = _probas(y, 3, 0.75, rng)
    same = paired_bootstrap(y, pa, pa, preda, preda, labels, n_boot=500, seed=1)
    assert same["macro_f1"]["delta"] == 0 and same["mcnemar"]["disagreements"] == 0
    assert not gate({"test_split": same}, "macro_f1", 0.0, 30)["passed"]
    pw, predw = _probas(y, 3, 0.6, rng)
    worse = paired_bootstrap(y, pa, pw, preda, predw, labels, n_boot=500, seed=1)
    assert worse["macro_f1"]["upper"] < 0 and not gate({"t": worse}, "macro_f1", 0.0, 30)["passed"]
    pbt, predb = _probas(y, 3, 0.95, rng)
    better = paired_bootstrap(y, pa, pbt, preda, predb, labels, n_boot=500, seed=1)
    verdict = gate({"test_split": better}, "macro_f1", 0.0, 30)
    assert verdict["passed"] and better["macro_f1"]["lower"] > 0
    assert better["mcnemar"]["p_value"] < 1e-6
    assert gate({"test_split": better}, "auc:spam", 0.0, 30)["passed"]
    # Five items fixed and nothing else changed: the interval clears zero, McNemar (p = 0.0625) does not.
    fixed = preda.copy()
    wrong = np.flatnonzero(preda != y)[:5]
    fixed[wrong] = y[wrong]
    hair = paired_bootstrap(y, pa, pa, preda, fixed, labels, n_boot=2000, seed=1)
    assert hair["macro_f1"]["lower"] > 0 and hair["mcnemar"]["p_value"] == pytest.approx(0.0625)
    assert gate({"t": hair}, "macro_f1", 0.0, 30)["passed"]
    assert not gate({"t": hair}, "macro_f1", 0.0, 30, mcnemar_alpha=0.05)["passed"]
    assert gate({"test_split": better}, "macro_f1", 0.0, 30, mcnemar_alpha=0.05)["passed"]
    # The mid-p test (each tail counts the observed split at half its probability): 5 vs 0 disagreements
    # give 0.03125 and pass; 4 vs 0 (0.0625) do not; its verdict says which p it used.
    assert hair["mcnemar"]["mid_p"] == pytest.approx(0.03125)
    mid = gate({"t": hair}, "macro_f1", 0.0, 30, mcnemar_alpha=0.05, mcnemar_test="mid_p")
    assert mid["passed"] and mid["sets"]["t"]["mcnemar_p"] == pytest.approx(0.03125) and "mid-p" in mid["reason"]
    fixed[wrong[-1]] = preda[wrong[-1]]
    four = paired_bootstrap(y, pa, pa, preda, fixed, labels, n_boot=2000, seed=1)
    assert four["mcnemar"]["only_challenger_right"] == 4 and four["mcnemar"]["mid_p"] == pytest.approx(0.0625)
    assert not gate({"t": four}, "macro_f1", 0.0, 30, mcnemar_alpha=0.05, mcnemar_test="mid_p")["passed"]
    # Significant the other way round: the reason says the champion is the one favoured.
    reverse = gate({"t": paired_bootstrap(y, pa, pa, fixed, preda, labels, n_boot=200, seed=1)},
                   "macro_f1", -1.0, 30, mcnemar_alpha=0.2, mcnemar_test="mid_p")
    assert not reverse["passed"] and "fails: in the champion's favour" in reverse["reason"]
    assert "fails: not < 0.05" in gate({"t": four}, "macro_f1", 0.0, 30, mcnemar_alpha=0.05)["reason"]
    with pytest.raises(ValueError, match="mcnemar_test"):
        gate({"t": hair}, "macro_f1", 0.0, 30, mcnemar_alpha=0.05, mcnemar_test="asymptotic")
    # A set under min_items is reported, not gating; no gating set at all: no promotion.
    assert not gate({"test_split": better}, "macro_f1", 0.0, 1000)["passed"]
    assert gate({"test_split": better, "qa_audit": same | {"n": 5, "groups": 5}}, "macro_f1", 0.0, 30)["passed"]


def test_auc_metric_is_gated_by_its_interval_not_by_mcnemar_of_the_labels():
    """A first model of a new policy: the champion cannot score it (a constant 0), the challenger
    ranks its items well but calls a few old items by the new label. McNemar of the arg-max labels
    refuses it; the new policy's AUC interval is what the `auc:` metric asks about."""
    rng = np.random.default_rng(5)
    labels = ["benign", "harassment", "hate"]
    y = np.array([0] * 60 + [1] * 60 + [2] * 40)
    pa = np.zeros((len(y), 3))
    pa[y == 0, 0], pa[y != 0, 1] = 0.9, 0.9          # the champion: never says hate
    pa[:, :2] += 0.05
    preda = pa.argmax(1)
    pb = pa.copy()
    pb[:, 2] = np.where(y == 2, rng.uniform(0.3, 1.0, len(y)), rng.uniform(0.0, 0.7, len(y)))
    predb = preda.copy()
    predb[y == 2] = np.where(rng.random(40) < 0.25, 2, predb[y == 2])   # ~10 hate items now right
    old_wrong = rng.choice(np.flatnonzero(y == 1), 8, replace=False)    # 8 harassment items now wrong
    predb[old_wrong] = 2
    comp = paired_bootstrap(y, pa, pb, preda, predb, labels, n_boot=500, seed=1)
    assert comp["auc"]["hate"]["champion"] == pytest.approx(0.5) and comp["auc"]["hate"]["lower"] > 0
    assert comp["mcnemar"]["p_value"] > 0.05
    assert gate({"test_split": comp}, "auc:hate", 0.0, 30, mcnemar_alpha=0.05)["passed"]
    assert not gate({"test_split": comp}, "macro_f1", 0.0, 30, mcnemar_alpha=0.05)["passed"]
    # The interval still gates an AUC metric: a challenger no better than chance stays out.
    pc = pa.copy()
    pc[:, 2] = rng.uniform(0, 1, len(y))
    chance = paired_bootstrap(y, pa, pc, preda, preda, labels, n_boot=500, seed=1)
    assert not gate({"test_split": chance}, "auc:hate", 0.0, 30, mcnemar_alpha=0.05)["passed"]


def test_brier_metric_credits_surer_right_answers_and_refuses_an_equal_or_less_sure_one():
    """Same arg-max labels everywhere (macro F1 and McNemar see no difference): the challenger
    that is surer where it is right has the lower Brier score and passes; the same model, or a
    less sure one, does not. Delta is champion - challenger, so positive means better."""
    rng = np.random.default_rng(7)
    labels = ["benign", "spam", "scam"]
    y = rng.integers(0, 3, 200)
    pa, preda = _probas(y, 3, 0.8, rng)
    sharp = pa.copy()
    right = preda == y
    sharp[right] = np.eye(3)[y[right]] * 0.98 + 0.01       # the same labels, surer where right
    better = paired_bootstrap(y, pa, sharp, preda, sharp.argmax(1), labels, n_boot=500, seed=1)
    assert better["macro_f1"]["delta"] == 0 and better["mcnemar"]["disagreements"] == 0
    expected = ((pa - np.eye(3)[y]) ** 2).sum(1).mean() - ((sharp - np.eye(3)[y]) ** 2).sum(1).mean()
    assert better["brier"]["delta"] == pytest.approx(expected, abs=1e-6) and better["brier"]["lower"] > 0
    assert gate({"test_split": better}, "brier", 0.0, 30, mcnemar_alpha=0.05)["passed"]
    assert not gate({"test_split": better}, "macro_f1", 0.0, 30, mcnemar_alpha=0.05)["passed"]
    same = paired_bootstrap(y, pa, pa, preda, preda, labels, n_boot=500, seed=1)
    assert same["brier"]["delta"] == 0 and not gate({"t": same}, "brier", 0.0, 30)["passed"]
    worse = paired_bootstrap(y, sharp, pa, sharp.argmax(1), preda, labels, n_boot=500, seed=1)
    assert worse["brier"]["upper"] < 0 and not gate({"t": worse}, "brier", 0.0, 30)["passed"]


def test_statistics_against_references():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    pa, preda = _probas(y, 3, 0.7, rng)
    pb = rng.dirichlet([1, 1, 1], 300)
    out = paired_bootstrap(y, pa, pb, preda, pb.argmax(1), ["a", "b", "c"], n_boot=200)
    assert out["macro_f1"]["champion"] == pytest.approx(f1_score(y, preda, average="macro"), abs=1e-6)
    assert out["auc"]["b"]["challenger"] == pytest.approx(roc_auc_score(y == 1, pb[:, 1]), abs=1e-6)
    m = mcnemar([True, True, False, False, True], [True, False, True, True, True])
    assert (m["only_champion_right"], m["only_challenger_right"]) == (1, 2)
    # mid-p = 2 [P(X <= 1) - P(X = 1) / 2] for 1 vs 2 of 3 = 2 (1/2 - 3/16) = 0.625 (Fagerland et al. 2013).
    assert m["p_value"] == pytest.approx(1.0) and m["mid_p"] == pytest.approx(0.625)
    none = mcnemar([True, False], [True, False])
    assert none["disagreements"] == 0 and none["p_value"] == none["mid_p"] == 1.0
    # The cluster bootstrap draws whole groups: members of one group always count alike.
    w = resample_weights(6, 50, 0, groups=["a", "a", "b", "b", "c", "c"])
    assert (w[:, 0] == w[:, 1]).all() and (w.sum(axis=1) == 6).all()


# -- the loop on a store ---------------------------------------------------------------------
def _rotated(data: TrainingSet) -> TrainingSet:
    labels = sorted(set(data.labels))
    nxt = {lab: labels[(i + 1) % len(labels)] for i, lab in enumerate(labels)}
    return TrainingSet(data.ids, data.texts, [nxt[y] for y in data.labels], data.origin)


@pytest.fixture
def loop(sqlite_store, taxonomy, queue_config):
    """300 toy items without source labels, a champion that learned every label wrong, cases
    built from its predictions (a campaign case among them), and a human decision on 240 items."""
    return make_loop(sqlite_store, taxonomy, queue_config)


def make_loop(store, taxonomy, queue_config):
    """The `loop` fixture's store contents on any store: (store, champion version, item ids)."""
    texts, ys = toy_corpus(60, seed=4)
    ids = add_items(store, texts, [None] * len(texts))
    with store.begin() as conn:
        conn.execute(insert(Campaign.__table__).values(id=1, exemplar_item_id=ids[1], size=3))
        for i in ids[1:4]:
            conn.execute(insert(CampaignMember.__table__).values(item_id=i, campaign_id=1))
    truth = TrainingSet(ids, texts, ys, ["source"] * len(ids))
    champ = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, data=_rotated(truth),
                        promote_if="always", show_progress=False)["id"]
    score_items(store, taxonomy, config=MODELS, model_version=champ, show_progress=False)
    build_cases(store, taxonomy, queue_config, progress=False)
    with store.begin() as conn:
        for i, lab in list(zip(ids, ys))[60:]:
            conn.execute(insert(Decision.__table__).values(item_id=i, label=lab, action="remove", kind="review",
                                                           reviewer="ann", taxonomy_version="t", created_at=utcnow()))
    return store, champ, ids


def test_better_challenger_is_promoted_and_no_open_case_keeps_a_stale_prediction(loop, taxonomy, queue_config, tmp_path):
    store, champ, ids = loop
    with store.read() as conn:
        assert conn.execute(select(Case.id).where(Case.state == "open", Case.campaign_id.is_not(None))).first()
    out = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                           report_dir=str(tmp_path / "report"), show_progress=False)
    assert out["champion"] == champ and out["promoted"] and not out["forced"]
    assert out["gate"]["sets"]["test_split"]["gating"] and out["gate"]["sets"]["test_split"]["lower"] > 0
    assert (tmp_path / "report" / "comparison.png").stat().st_size > 5000
    md = (tmp_path / "report" / "comparison.md").read_text()
    assert "promoted" in md and "| Brier (lower is better" in md
    assert "McNemar's mid-p below 0.05 in the challenger's favour" in md and "mid-p = " in md
    new = out["challenger"]
    assert get_model(store, new)["role"] == "champion" and get_model(store, new)["parent_id"] == champ
    assert out["rescore"]["stale_left"] == 0 and out["rescore"]["scored"] > 0
    with store.read() as conn:
        assert champion_version(conn) == new
        open_cases = conn.execute(select(Case.id, Case.item_id, Case.campaign_id, Case.model_version)
                                  .where(Case.state.in_(("open", "claimed", "escalated", "appealed")))).all()
        record = predictions_of_record(conn, [c.item_id for c in open_cases if c.item_id])
        events = [e for e, in conn.execute(select(AuditEvent.action))]
    assert open_cases and {c.model_version for c in open_cases} == {new}
    assert all(record[c.item_id]["model_version"] == new for c in open_cases if c.item_id)
    assert stale_open_cases(store) == []
    assert "model.gate" in events and "model.promote" in events
    with store.read() as conn:  # the audited verdict names the test it was reached with
        gated = conn.execute(select(AuditEvent.payload).where(AuditEvent.action == "model.gate")).scalar()
    assert (gated["mcnemar_test"], gated["mcnemar_alpha"]) == ("mid_p", 0.05)

    # The same data, kind and parameters again: an equal challenger, refused.
    again = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                             show_progress=False)
    assert not again["promoted"] and again["gate"]["sets"]["test_split"]["delta"] == 0
    # A clearly worse one (almost no fitting): refused, and the champion stays.
    worse = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                             params={"C": 1e-6}, show_progress=False)
    assert not worse["promoted"] and worse["gate"]["sets"]["test_split"]["delta"] < 0
    with store.read() as conn:
        assert champion_version(conn) == new
    # Every evaluation item was held out of training: no test-split item among the challenger's rows.
    assert out["data"]["human_by_split"]["test"] == out["comparisons"]["test_split"]["n"]


def test_the_test_split_is_the_same_items_on_every_retrain(loop, taxonomy, queue_config):
    store, _, _ = loop
    a = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng", promote=False,
                         rescore="none", show_progress=False)
    b = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng", promote=False,
                         rescore="none", show_progress=False)
    assert a["comparisons"]["test_split"]["n"] == b["comparisons"]["test_split"]["n"] > 20
    assert not a["promoted"] and get_model(store, a["challenger"])["role"] == "challenger"


def test_only_engineers_retrain_and_force_is_audited_with_a_reason(loop, taxonomy, queue_config, roles):
    store, champ, _ = loop
    for role in ("viewer", "analyst", "lead"):
        with pytest.raises(PermissionDenied, match="needs permission 'train'"):
            retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config,
                             actor=Principal(f"{role}-1", role, "user"), show_progress=False)
    eng = Principal("erin", "engineer", "user")
    with pytest.raises(PromotionError, match="--reason"):
        retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor=eng, force=True,
                         show_progress=False)
    scoped = Principal("erin", "engineer", "user", ("train", "promote", "score", "build_cases"))
    with pytest.raises(PermissionDenied, match="force_promote"):
        retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor=scoped,
                         force=True, reason="hotfix", show_progress=False)
    with store.read() as conn:
        n_models = conn.execute(select(ModelVersion.id)).all()
    assert len(n_models) == 1  # refusals trained nothing
    good = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor=eng,
                            show_progress=False)
    assert good["promoted"] and not good["forced"]
    out = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor=eng,
                           params={"C": 1e-6}, force=True, reason="hotfix for the new wave", show_progress=False)
    assert out["promoted"] and out["forced"] and out["forced_by"] == "erin" and not out["gate"]["passed"]
    assert get_model(store, out["challenger"])["promoted_by"] == "erin"
    with store.read() as conn:
        forced = conn.execute(select(AuditEvent.actor, AuditEvent.payload)
                              .where(AuditEvent.action == "model.force_promote")).all()
    assert len(forced) == 1 and forced[0].actor == "erin"
    assert forced[0].payload["reason"] == "hotfix for the new wave"
    assert forced[0].payload["approved_by"] == "erin" and forced[0].payload["gate"]["passed"] is False


def test_auto_retrain_is_off_by_default_and_counts_new_decisions(loop, taxonomy):
    store, champ, _ = loop
    assert retrain_due(store, MODELS)["due"] is False
    on = MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(
        update={"enabled": True, "after_decisions": 200})})
    due = retrain_due(store, on)
    assert due["due"] and due["new_decisions"] == 240
    high = on.model_copy(update={"auto_retrain": on.auto_retrain.model_copy(update={"after_decisions": 10_000})})
    assert retrain_due(store, high)["due"] is False


def test_a_refused_retrain_is_not_repeated_on_the_same_decisions(loop, taxonomy):
    """After a gate verdict (here a retrain that did not promote) the count of new decisions starts
    again: a check right after is not due, and enough decisions made after it are due again."""
    store, champ, ids = loop
    on = MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(
        update={"enabled": True, "after_decisions": 100})})
    assert retrain_due(store, on)["due"]
    refused = retrain_and_gate(store, taxonomy, models_config=on, queue_config=None, actor="eng", promote=False,
                               rescore="none", show_progress=False)
    assert not refused["promoted"]
    after = retrain_due(store, on)
    assert not after["due"] and after["new_decisions"] == 0 and "since the last retrain" in after["reason"]
    later = utcnow() + dt.timedelta(seconds=1)
    with store.begin() as conn:
        for i in ids[:100]:
            conn.execute(insert(Decision.__table__).values(item_id=i, label="benign", action="none", kind="review",
                                                           reviewer="bob", taxonomy_version="t", created_at=later))
    again = retrain_due(store, on)
    assert again["due"] and again["new_decisions"] == 100


def test_retrain_command(loop, tmp_path):
    store, champ, _ = loop
    data_dir = store.data_dir
    store.dispose()
    runner = CliRunner()
    from workbench.cli import cli

    res = runner.invoke(cli, ["--data-dir", str(data_dir), "retrain", "--no-promote", "--kind", "tfidf_lr",
                              "--param", "min_df=1", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["promoted"] is False and out["champion"] == champ and out["comparisons"]["test_split"]["n"] > 0
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "retrain", "--if-due"], catch_exceptions=False)
    assert res.exit_code == 0 and "no retrain: auto_retrain.enabled is false" in res.output
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "retrain", "--force"], catch_exceptions=False)
    assert res.exit_code == 1 and "Error: --force needs a --reason" in res.output
    # --tune-head: the hybrid's head by grouped cross-validation on the train side, then the retrain.
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "retrain", "--no-promote", "--no-rescore", "--tune-head",
                              "--kind", "tfidf_lr"], catch_exceptions=False)
    assert res.exit_code == 1 and "only the hybrid kind has a head to choose" in res.output
    res = runner.invoke(cli, ["--data-dir", str(data_dir), "retrain", "--no-promote", "--no-rescore", "--tune-head",
                              "--kind", "hybrid", "--param", "embedding_weight=0", "--param", "min_df=1",
                              "--param", "calibration_folds=2", "--param", "head=multinomial"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    m = re.search(r"head (multinomial|ovr) by 3-fold grouped cross-validation \(([a-z, ]+) AUC\): "
                  r"multinomial: [0-9.]+, ovr: [0-9.]+", res.output)
    assert m and "hate" in m.group(2) and "not promoted" in res.output, res.output


def test_without_rescoring_cases_are_stale_and_rescoring_fixes_them(loop, taxonomy, queue_config):
    from labeling.rescore import rescore_open_cases

    store, champ, _ = loop
    out = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng", rescore="none",
                           show_progress=False)
    assert out["promoted"] and "rescore" not in out
    assert stale_open_cases(store)  # promoted, not rescored: every open case still shows the old champion
    summary = rescore_open_cases(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                                 progress=False)
    assert summary["champion"] == out["challenger"] and summary["scored"] > 0 and summary["stale_left"] == 0
    # Scored but not re-planned (as after `workbench score`): stale until the cases follow.
    with store.begin() as conn:
        conn.execute(Case.__table__.update().where(Case.state == "open").values(model_version=champ))
    assert stale_open_cases(store)
    assert rescore_open_cases(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                              progress=False)["stale_left"] == 0
    assert stale_open_cases(store) == []


def test_serve_auto_retrain_check_and_background_rescore(loop, taxonomy, queue_config):
    from types import SimpleNamespace

    from labeling.rescore import start_background_rescore
    from workbench.learning import check_and_retrain

    store, champ, _ = loop
    on = MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(
        update={"enabled": True, "after_decisions": 200})})
    app = SimpleNamespace(store=lambda: store, models=lambda: on, taxonomy=lambda: taxonomy, queues=lambda: queue_config,
                          retrain_lock=threading.Lock(), rescore_job=None)
    assert check_and_retrain(SimpleNamespace(**{**vars(app), "models": lambda: MODELS})) is None  # off by default
    result = check_and_retrain(app)
    assert result["promoted"] and result["rescore"]["stale_left"] == 0
    assert check_and_retrain(app) is None  # no new decisions since the new champion was trained
    with store.read() as conn:
        assert conn.execute(select(AuditEvent.actor).where(AuditEvent.action == "model.gate")).scalar() == "system"
    # A promotion's rescoring in a thread (serve): progress on the job, then the outcome.
    with store.begin() as conn:
        conn.execute(Case.__table__.update().where(Case.state == "open").values(model_version=champ))
    job = start_background_rescore(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng")
    job.thread.join(120)
    assert job.finished and job.error is None and job.result["stale_left"] == 0


def test_auto_retrain_on_a_drift_alarm_once_per_drifted_window(loop):
    """A drift alarm is due only with `drift_alarm` on and a current window that began after the
    champion was trained; windows the champion already saw, or no alarm, are not due."""
    from evaluation.drift import DriftConfig, DriftReport, compare_windows
    from test_drift import _window

    store, _, _ = loop
    rng = np.random.default_rng(3)
    loud = compare_windows(_window(rng, 4000), _window(rng, 1000, a=5, b=2, emb_shift=1.0), ["benign", "spam"],
                           DriftConfig())
    quiet = compare_windows(_window(rng, 4000), _window(rng, 1000), ["benign", "spam"], DriftConfig())
    assert any(c.alarm for c in loud) and not any(c.alarm for c in quiet)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

    def report(checks, window_start):
        return lambda: DriftReport((window_start - dt.timedelta(days=28), window_start), (window_start, now), now,
                                   4000, 1000, checks)

    on = MODELS.model_copy(update={"auto_retrain": MODELS.auto_retrain.model_copy(
        update={"enabled": True, "after_decisions": 10_000, "drift_alarm": True})})
    later = now + dt.timedelta(minutes=5)   # a window that began after the champion was trained
    due = retrain_due(store, on, drift=report(loud, later))
    assert due["due"] and "drift alarm" in due["reason"] and "embedding" in due["drift_alarms"]
    assert not retrain_due(store, on, drift=report(quiet, later))["due"]
    assert not retrain_due(store, on, drift=report(loud, now - dt.timedelta(days=7)))["due"]
    off = on.model_copy(update={"auto_retrain": on.auto_retrain.model_copy(update={"drift_alarm": False})})
    assert not retrain_due(store, off, drift=report(loud, later))["due"]


def test_the_gate_without_models_yaml_is_the_shipped_one():
    from models.config import ModelsConfig

    assert ModelsConfig().promotion.mcnemar_test == BASE.promotion.mcnemar_test == "mid_p"


def test_a_bad_mcnemar_test_in_models_yaml_is_refused_naming_the_file_and_field(tmp_path):
    (tmp_path / "models.yaml").write_text("promotion:\n  mcnemar_test: asymptotic\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"models.yaml.*promotion.mcnemar_test"):
        load_models_config(tmp_path / "models.yaml")


def test_a_bad_parameter_is_refused_before_any_work(loop, taxonomy, queue_config):
    """`retrain --param C=-5` answers at once: no split assigned, no model trained or audited."""
    from core.schema import LearningSplit
    from models.base import ModelError

    store, _, _ = loop

    def counts():
        with store.read() as conn:
            return [conn.execute(select(func.count()).select_from(t)).scalar()
                    for t in (LearningSplit.__table__, ModelVersion.__table__, AuditEvent.__table__)]

    before = counts()
    with pytest.raises(ModelError, match="parameter 'C' must be a float > 0, got -5"):
        retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                         params={"C": -5}, show_progress=False)
    with pytest.raises(ModelError, match="unknown model kind 'nokind'"):
        retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                         kind="nokind", show_progress=False)
    typo = MODELS.model_copy(update={"promotion": MODELS.promotion.model_copy(update={"metric": "auc:spamm"})})
    with pytest.raises(PromotionError, match="promotion.metric: 'auc:spamm' names no label of the taxonomy"):
        retrain_and_gate(store, taxonomy, models_config=typo, queue_config=queue_config, actor="eng",
                         show_progress=False)
    assert counts() == before
