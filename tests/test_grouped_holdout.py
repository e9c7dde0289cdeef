"""A model's own held-out rows (calibration folds, an ensemble's blend, the transformer's
calibration slice) never hold a copy of a text whose twin it fits on. Human labels are repeated by
their weight (`replicate_by_weight`, up to 20 copies) and sources hold exact duplicates: split by
row, the out-of-fold predictions that calibration and decision weights learn from were in-sample
for exactly the human labels."""
from __future__ import annotations

import random

import numpy as np
import pytest

from models.kinds import make_classifier
from models.training import TrainingSet, grouped_fold_count, grouped_folds, grouped_holdout, replicate_by_weight

LABELS = ["benign", "spam", "scam"]


def _noise(n: int = 90, copies: float = 10.0, seed: int = 2) -> TrainingSet:
    """`n` texts of their own words with labels drawn at random, each repeated about `copies`
    times as a weighted human label is: nothing generalises, only memorising looks right."""
    rng = random.Random(seed)
    data = TrainingSet([f"h{i:03d}" for i in range(n)], [f"u{i}a u{i}b u{i}c" for i in range(n)],
                       [rng.choice(LABELS) for _ in range(n)], ["decision"] * n)
    return replicate_by_weight(data, np.full(n, copies), seed)


def test_folds_and_holdouts_keep_every_copy_of_a_text_on_one_side():
    data = _noise()
    y = np.array([LABELS.index(lab) for lab in data.labels])
    folds = grouped_folds(data.texts, y, 5, seed=1)
    assert len(folds) == 5 and sorted(np.concatenate([h for _, h in folds]).tolist()) == list(range(len(y)))
    for fit, held in folds:
        assert not {data.texts[i] for i in fit} & {data.texts[i] for i in held}
        assert set(y[held]) == set(y)  # still stratified: every label in every fold
    fit, held = grouped_holdout(data.texts, data.labels, 0.25, seed=1)
    assert len(fit) + len(held) == len(y) and not {data.texts[i] for i in fit} & {data.texts[i] for i in held}
    assert 0.15 < len(held) / len(y) < 0.35 and set(np.array(data.labels)[held]) == set(LABELS)
    assert (grouped_holdout(data.texts, data.labels, 0.25, seed=1)[1] == held).all()  # seeded
    # The fold count is bounded by distinct texts, not by rows: 3 texts of scam, 40 rows.
    assert grouped_fold_count(["a"] * 20 + ["b"] * 20 + ["c", "d", "e"], [0] * 40 + [1] * 3, 5) == 2
    assert grouped_fold_count(["a"] * 20 + ["b", "c"], [0] * 20 + [1] * 2, 5) == 1


@pytest.mark.parametrize("kind", ["hybrid", "nblr"])
def test_calibration_learns_from_out_of_sample_predictions_of_repeated_labels(kind):
    """On labels no text predicts, out-of-fold predictions must be at chance (log loss ~ ln 3).
    Folds by row put 8 of a label's 10 copies in the fitting rows: the model looked certain and
    calibration sharpened it (log loss far under chance)."""
    data = _noise()
    params = {"calibration_folds": 5, "min_df": 1}
    if kind == "hybrid":
        params["embedding_weight"] = 0.0
    model = make_classifier(kind, LABELS, **params)
    if "oof_log_loss_raw" not in (model.fit(data.texts, data.labels).fit_info or {}):
        pytest.skip(f"{kind} reports no out-of-fold log loss")
    assert model.fit_info["oof_log_loss_raw"] > 0.9 * np.log(3)
    assert model.fit_info["calibration_folds"] == 5


def test_ensemble_blend_and_transformer_calibration_slices_hold_no_twin():
    data = _noise(60, copies=4.0)
    ens = make_classifier("ensemble", LABELS, members=[{"kind": "tfidf_lr", "params": {"min_df": 1}}],
                          blend_fraction=0.3)
    ens.fit(data.texts, data.labels)
    # At chance on texts it never fitted: the blend learnt from out-of-sample rows.
    logp, y = ens.blend_log_proba_[0], ens.blend_y_
    assert -logp[np.arange(len(y)), y].mean() > 0.9 * np.log(3)
