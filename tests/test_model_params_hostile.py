"""Hostile model parameters and settings: values that once passed validation and then crashed in
scikit-learn, a transformer checkpoint that stood in for a shorter run, embedding cache keys that
let two different embedders share vectors, and negative `workbench score` counts."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from models.base import ModelError
from models.kinds import make_classifier
from test_models_fixtures import TINY_TRANSFORMER, toy_corpus

LABELS = ["benign", "spam", "scam", "hate", "harassment"]


# -- parameters scikit-learn refuses are refused by validation -------------------------------------
@pytest.mark.parametrize("kind", ["hybrid", "tfidf_lr", "nblr"])
def test_min_df_below_one_is_refused_naming_the_parameter(kind):
    with pytest.raises(ModelError, match="'min_df' must be an int >= 1, got 0"):
        make_classifier(kind, LABELS, min_df=0)


@pytest.mark.parametrize("kind", ["tfidf_lr", "nblr", "transformer"])
def test_a_seed_past_two_to_the_32_is_refused_naming_the_parameter(kind):
    with pytest.raises(ModelError, match=r"'seed' must be an int in \[0, 4294967295\], got 4294967296"):
        make_classifier(kind, LABELS, seed=2**32)


def test_the_seed_bounds_are_scikit_learns():
    texts, ys = toy_corpus(6, seed=3)
    with pytest.raises(ModelError, match="'seed'"):
        make_classifier("tfidf_lr", LABELS, min_df=1, seed=2**32)
    model = make_classifier("tfidf_lr", LABELS, min_df=1, seed=2**32 - 1).fit(texts, ys)
    assert np.isfinite(model.predict_proba(texts[:2])).all()


def test_models_yaml_refuses_the_same_values():
    from models.config import ModelsConfig

    with pytest.raises(ValidationError, match="tfidf_lr.min_df: must be an int >= 1"):
        ModelsConfig(kinds={"tfidf_lr": {"min_df": 0}})
    with pytest.raises(ValidationError, match="seed"):
        ModelsConfig(training={"seed": 2**32})
    assert ModelsConfig(training={"seed": 2**32 - 1}).kind_params("tfidf_lr")["seed"] == 2**32 - 1


def test_min_df_above_the_texts_is_one_model_error_line():
    texts, ys = toy_corpus(4, seed=1)
    for kind, params in (("tfidf_lr", {}), ("nblr", {"calibration_folds": 2})):
        model = make_classifier(kind, LABELS, min_df=10_000, **params)  # valid alone: the data decides
        with pytest.raises(ModelError) as info:
            model.fit(texts, ys)
        message = str(info.value)
        assert message.startswith(f"{kind}: ") and "min_df=10000" in message and "\n" not in message


def test_a_value_error_of_the_head_is_one_model_error_line(monkeypatch):
    from sklearn.linear_model import LogisticRegression

    texts, ys = toy_corpus(4, seed=2)
    model = make_classifier("tfidf_lr", LABELS, min_df=1)
    monkeypatch.setattr(model, "_new_head", lambda class_weight=None: LogisticRegression(C=-1.0))
    with pytest.raises(ModelError, match=r"^tfidf_lr: the logistic regression head cannot be fitted: .*'C'") as info:
        model.fit(texts, ys)
    assert "\n" not in str(info.value)


# -- the transformer checkpoint never stands in for a shorter run ----------------------------------
def _tiny(max_steps: int, ckpt: str | None, **extra):
    return make_classifier("transformer", LABELS, init_config=TINY_TRANSFORMER, max_steps=max_steps, epochs=50.0,
                           batch_size=8, learning_rate=1e-2, max_length=16, calibration_fraction=0.0,
                           checkpoint_dir=ckpt, torch_threads=1, seed=0, device="cpu", **extra)


def test_a_finished_longer_run_is_not_reused_by_a_shorter_one(tmp_path):
    texts, ys = toy_corpus(4, seed=4)
    ckpt = str(tmp_path / "ckpt")
    longer = _tiny(3, ckpt).fit(texts, ys)
    assert longer.fit_info["steps"] == 3
    shorter = _tiny(1, ckpt).fit(texts, ys)
    assert shorter.fit_info["resumed_from"] is None
    assert shorter.fit_info["steps"] == shorter.fit_info["total_steps"] == 1
    fresh = _tiny(1, None).fit(texts, ys)  # the same run without any checkpoint
    np.testing.assert_allclose(shorter.predict_proba(texts[:4]), fresh.predict_proba(texts[:4]), atol=1e-6)
    # ... and a longer run still continues the finished one (the resume design)
    again = _tiny(2, ckpt).fit(texts, ys)
    assert again.fit_info["resumed_from"] == 1 and again.fit_info["steps"] == 2


def test_a_killed_run_is_resumed_only_under_its_own_step_budget(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    texts, ys = toy_corpus(4, seed=4)
    ckpt = tmp_path / "ckpt"
    _tiny(2, str(ckpt)).fit(texts, ys)
    path = ckpt / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as f:
        state, tensors = json.loads(f.metadata()["state"]), {k: f.get_tensor(k) for k in f.keys()}

    def write(total: int) -> None:
        save_file(tensors, str(path), metadata={"state": json.dumps({**state, "total": total})})

    write(5)  # as if a 5-step run had been killed after its second step
    other = _tiny(3, str(ckpt)).fit(texts, ys)  # another schedule: trained from the start
    assert other.fit_info["resumed_from"] is None and other.fit_info["steps"] == 3
    write(3)
    same = _tiny(3, str(ckpt)).fit(texts, ys)  # its own schedule: resumed
    assert same.fit_info["resumed_from"] == 2 and same.fit_info["steps"] == 3


# -- embedding cache keys tell different embedders apart -------------------------------------------
def test_another_max_seq_length_is_another_cache_key_and_the_default_keeps_its_own():
    from models.config import ModelsConfig
    from models.embeddings import Embedder, bundled_model_path, model_id_for

    # existing stores' caches are keyed by the default settings' id: it must not move
    assert Embedder().model_id == "all-MiniLM-L6-v2"
    assert Embedder.from_settings(ModelsConfig().embedding).model_id == "all-MiniLM-L6-v2"
    assert Embedder(bundled_model_path(), max_seq_length=128, runtime="onnx").model_id == "all-MiniLM-L6-v2@onnx"
    assert model_id_for(bundled_model_path()) == model_id_for("sentence-transformers/all-MiniLM-L6-v2") \
        == "all-MiniLM-L6-v2"
    ids = {Embedder(max_seq_length=n).model_id for n in (16, 128, 256)}
    assert len(ids) == 3 and "all-MiniLM-L6-v2@seq16" in ids
    assert Embedder(max_seq_length=16, runtime="onnx-int8").model_id == "all-MiniLM-L6-v2@seq16@onnx-int8"


def test_two_folders_of_one_name_are_two_cache_keys(tmp_path):
    from models.embeddings import model_id_for

    a, b = tmp_path / "m1" / "minilm", tmp_path / "m2" / "minilm"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    assert model_id_for(str(a)) != model_id_for(str(b))
    assert model_id_for(str(a)).startswith("minilm-") and model_id_for(str(a)) == model_id_for(str(a) + "/")
    assert model_id_for("/x/m1/minilm") != model_id_for("/x/m2/minilm")  # folders not there (yet)
    assert model_id_for("org-a/minilm") != model_id_for("org-b/minilm")


# -- workbench score refuses counts below one ------------------------------------------------------
@pytest.mark.parametrize("option", ["--chunk-size", "--limit"])
@pytest.mark.parametrize("value", ["-3", "0"])
def test_score_refuses_a_count_below_one(tmp_path, option, value):
    from workbench.cli import cli

    r = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "score", option, value])
    assert r.exit_code == 2 and f"Invalid value for '{option}'" in r.output, r.output
    assert "Traceback" not in r.output
