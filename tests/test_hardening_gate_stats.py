"""Hardening of the promotion gate's statistics (evaluation.compare) and its report: a model that
cannot score an item never wins by it, probabilities outside [0, 1] refuse the set, a bootstrap
over one group (or one campaign of positives) never gates, the bootstrap's memory stays flat in
the number of resamples with the figures of a plain per-resample reference, hostile input shapes
are one clear line, a set's report says what was not compared, and a verdict never overwrites an
earlier verdict's report."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from evaluation import compare
from evaluation.compare import gate, paired_bootstrap, resample_weights
from evaluation.promotion import promote_through_gate
from evaluation.promotion_report import write_markdown
from models.registry import train_model
from models.training import TrainingSet
from test_models_fixtures import toy_corpus
from test_promotion_gate import FAST, MODELS, _rotated, make_loop

LABELS = ["benign", "spam", "scam"]


@pytest.fixture
def loop(sqlite_store, taxonomy, queue_config):
    """test_promotion_gate's store: a champion that learned every label wrong, cases, 240 decisions."""
    return make_loop(sqlite_store, taxonomy, queue_config)


def _set(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    pa = rng.dirichlet([1, 1, 1], n)
    return y, pa, pa.argmax(1)


def test_a_model_that_cannot_score_an_item_never_wins_by_it():
    """A NaN ranked above every score and an infinite one made a perfect AUC: a challenger scoring
    inf on every spam item passed `auc:spam` with lower bound +0.39. An item a model could not
    score is its confident wrong answer; one neither could is left out."""
    y, pa, preda = _set()
    pb = pa.copy()
    pb[:, 1] = np.where(y == 1, np.inf, 0.0)
    comp = paired_bootstrap(y, pa, pb, preda, preda, LABELS, n_boot=200)
    spam = int((y == 1).sum())
    for metric in ("auc:spam", "auc_mean", "brier", "macro_f1"):
        verdict = gate({"test_split": comp}, metric, 0.0, 30)
        assert not verdict["passed"], (metric, verdict["reason"])
    assert comp["unscored"] == {"champion": 0, "challenger": spam, "both": 0}
    assert comp["auc"]["spam"]["challenger"] < comp["auc"]["spam"]["champion"]
    assert f"not scored: {spam} item(s) by the challenger" in gate({"t": comp}, "auc:spam", 0.0, 30)["reason"]
    # The same figures as with those rows written out as confident wrong answers by hand.
    wrong = pb.copy()
    wrong[y == 1] = np.eye(3)[(y[y == 1] + 1) % 3]
    predw = preda.copy()
    predw[y == 1] = -1
    by_hand = paired_bootstrap(y, pa, wrong, preda, predw, LABELS, n_boot=200)
    assert {k: comp[k] for k in ("macro_f1", "auc", "brier")} == {k: by_hand[k] for k in ("macro_f1", "auc", "brier")}
    # NaN rows of both models: no evidence either way, left out (groups too).
    pn, pbn = pa.copy(), pa.copy()
    pn[:5], pbn[:7] = np.nan, np.nan
    both = paired_bootstrap(y, pn, pbn, preda, preda, LABELS, groups=[f"g{i}" for i in range(200)], n_boot=100)
    assert both["n"] == 195 and both["groups"] == 195
    assert both["unscored"] == {"champion": 0, "challenger": 2, "both": 5}
    assert both["mcnemar"]["only_champion_right"] == int((preda[5:7] == y[5:7]).sum())


def test_probabilities_outside_0_1_refuse_the_set_whatever_its_size(tmp_path):
    y, pa, preda = _set()
    pb = pa * 5 - 2
    comp = paired_bootstrap(y, pa, pb, preda, pb.argmax(1), LABELS, n_boot=100)
    assert "challenger probabilities outside [0, 1]" in comp["invalid"]
    good = paired_bootstrap(y, pa, np.eye(3)[y] * 0.9 + 0.03, preda, y, LABELS, n_boot=100)
    assert gate({"test_split": good}, "macro_f1", 0.0, 30)["passed"]
    for small in (30, 10_000):  # a set too small to gate still refuses: no figure of a broken model stands
        verdict = gate({"test_split": good, "qa_audit": comp}, "macro_f1", 0.0, small)
        assert not verdict["passed"] and "qa_audit: not comparable" in verdict["reason"]
        assert verdict["sets"]["qa_audit"] == {"gating": True, "passed": False, "n": 200, "lower": None,
                                               "delta": None, "upper": None, "mcnemar_p": None,
                                               "invalid": comp["invalid"]}
    y2 = y.copy()
    pn = pa.copy()
    pn[:3] = np.nan
    lost = paired_bootstrap(y2, pa, pn, preda, preda, LABELS, n_boot=100)
    result = {"challenger": "b", "champion": "a", "promoted": False, "confidence": 0.95, "data": {},
              "comparisons": {"qa_audit": comp, "test_split": lost}, "gate": verdict}
    text = Path(write_markdown(tmp_path / "comparison.md", result, "comparison.png")).read_text()
    assert f"Not compared: {comp['invalid']}." in text
    assert "Not scored: 3 item(s) by the challenger and 0 by the champion" in text


def test_a_bootstrap_over_one_group_never_gates_whatever_min_items():
    """Every resample of one group is that group: the interval is the point estimate, and with
    `min_items: 1` a challenger better on one campaign passed with lower bound = delta."""
    y, pa, preda = _set()
    comp = paired_bootstrap(y, pa, np.eye(3)[y] * 0.9 + 0.03, preda, y, LABELS, groups=["c1"] * 200, n_boot=200)
    assert comp["groups"] == 1 and comp["macro_f1"]["lower"] == comp["macro_f1"]["delta"] > 0
    verdict = gate({"test_split": comp}, "macro_f1", 0.0, 1)
    assert not verdict["passed"] and not verdict["sets"]["test_split"]["gating"] and "under 2" in verdict["reason"]


def test_an_auc_whose_positives_sit_in_one_campaign_does_not_gate():
    """Every resample holds the one spam campaign whole or not at all: the interval leaves out how
    the positives vary, and a challenger that learnt that campaign by heart read as a sure gain."""
    rng = np.random.default_rng(3)
    n = 240
    y = np.where(np.arange(n) < 40, 1, rng.choice([0, 2], n))
    groups = [f"c{i // 6}" if y[i] != 1 else "spam-wave" for i in range(n)]
    pa = rng.dirichlet([1, 1, 1], n)
    pb = pa.copy()
    pb[:, 1] = np.where(y == 1, 0.9, 0.05)
    pb /= pb.sum(axis=1, keepdims=True)
    comp = paired_bootstrap(y, pa, pb, pa.argmax(1), pb.argmax(1), LABELS, groups=groups, n_boot=300)
    verdict = gate({"test_split": comp}, "auc:spam", 0.0, 30)
    assert not verdict["passed"] and "positives in 1 group(s)" in verdict["reason"], verdict["reason"]
    spam = comp["auc"]["spam"]
    assert spam["positive_groups"] == 1 and spam["negative_groups"] == 34 and spam["lower"] > 0.3
    assert comp["auc"]["scam"]["positive_groups"] >= 2   # the other policies still gate as before
    assert gate({"test_split": comp}, "auc:scam", -1.0, 30)["sets"]["test_split"]["gating"]


def _reference(y, pa, pb, preda, predb, W, j):
    """Per resample, the plain way: scikit-learn's F1 and AUC with the resample's item weights."""
    classes = np.unique(y)
    f1 = [f1_score(y, pb_, labels=classes, average="macro", sample_weight=w, zero_division=0)
          - f1_score(y, pa_, labels=classes, average="macro", sample_weight=w, zero_division=0)
          for w, pa_, pb_ in ((w, preda, predb) for w in W)]
    auc = [roc_auc_score(y == j, pb[:, j], sample_weight=w) - roc_auc_score(y == j, pa[:, j], sample_weight=w)
           if 0 < w[y == j].sum() < w.sum() else np.nan for w in W]
    return np.array(f1), np.array(auc)


def test_the_bootstrap_is_chunked_memory_flat_and_matches_a_plain_reference(monkeypatch):
    """10^6 items x 1000 resamples were held as (resamples, items) matrices at once: 8 GB each,
    several of them. Drawn and scored a few resamples at a time, the peak does not grow with the
    resamples, and the figures are those of scikit-learn per resample."""
    rng = np.random.default_rng(11)
    n = 20_000
    y = rng.integers(0, 3, n)
    pa, pb = rng.dirichlet([1, 1, 1], n), rng.dirichlet([1, 1, 1], n)
    groups = [f"g{i % 3000}" for i in range(n)]
    peaks = []
    for boot in (100, 400):
        paired_bootstrap(y[:50], pa[:50], pb[:50], pa[:50].argmax(1), pb[:50].argmax(1), LABELS, n_boot=100)
        tracemalloc.start()
        paired_bootstrap(y, pa, pb, pa.argmax(1), pb.argmax(1), LABELS, groups=groups, n_boot=boot)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks
    # Small chunks, ties, groups of wildly different sizes: the figures of a plain reference.
    m = 150
    y, pa, pb = y[:m], np.round(pa[:m], 1), np.round(pb[:m], 1)
    groups = ["big"] * 60 + [f"g{i // 3}" for i in range(45)] + [f"s{i}" for i in range(45)]
    monkeypatch.setattr(compare, "_CELLS", 7 * m)
    comp = paired_bootstrap(y, pa, pb, pa.argmax(1), pb.argmax(1), LABELS, groups=groups, n_boot=300, seed=5)
    W = resample_weights(m, 300, 5, groups)
    f1, auc = _reference(y, pa, pb, pa.argmax(1), pb.argmax(1), W, 1)
    a = 0.025
    assert comp["macro_f1"]["lower"] == pytest.approx(np.quantile(f1, a), abs=1e-6)
    assert comp["macro_f1"]["upper"] == pytest.approx(np.quantile(f1, 1 - a), abs=1e-6)
    assert comp["auc"]["spam"]["lower"] == pytest.approx(np.quantile(auc[np.isfinite(auc)], a), abs=1e-6)
    assert comp["auc"]["spam"]["p_not_better"] == pytest.approx((auc[np.isfinite(auc)] <= 0).mean(), abs=1e-6)


def test_hostile_input_shapes_are_one_clear_line():
    y, pa, preda = _set(40)
    with pytest.raises(ValueError, match=r"^groups: 39 given for 40 items$"):
        paired_bootstrap(y, pa, pa, preda, preda, LABELS, groups=[f"g{i}" for i in range(39)], n_boot=100)
    with pytest.raises(ValueError, match=r"^predictions: 40 and 39 given for 40 items$"):
        paired_bootstrap(y, pa, pa, preda, preda[:39], LABELS, n_boot=100)
    with pytest.raises(ValueError, match=r"^y: label index -1 outside 0\.\.2$"):  # np.eye(3)[-1] read it as scam
        paired_bootstrap(np.r_[y[:39], -1], pa, pa, preda, preda, LABELS, n_boot=100)


def test_a_second_verdict_given_the_same_report_dir_keeps_the_first_report(loop, taxonomy, tmp_path):
    """`--report-dir` named twice (a script, a cron line): the second verdict wrote over the report
    that the first verdict's audit row names."""
    store, champ, ids = loop
    texts, ys = toy_corpus(60, seed=4)
    weak = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={**FAST, "C": 1e-6},
                       data=_rotated(TrainingSet(ids, texts, ys, ["source"] * len(ids))), promote_if="never",
                       show_progress=False)["id"]
    where = tmp_path / "gate"
    first = promote_through_gate(store, taxonomy, weak, models_config=MODELS, queue_config=None, actor="eng",
                                 rescore="none", report_dir=str(where), show_progress=False)
    kept = Path(first["report"]).read_text()
    second = promote_through_gate(store, taxonomy, weak, models_config=MODELS, queue_config=None, actor="eng",
                                  force=True, reason="rollback drill", rescore="none", report_dir=str(where),
                                  show_progress=False)
    assert Path(first["report"]) == where.resolve() / "comparison.md" and "not promoted" in kept
    assert Path(second["report"]).parent.name == "gate-2" and "forced by eng" in Path(second["report"]).read_text()
    assert Path(first["report"]).read_text() == kept
