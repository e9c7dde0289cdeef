"""Long texts are scored whole, over windows, and a person reads them (issue 15): benign padding
before a scam payload no longer hides it, and no windowed or truncated item lands in low-risk."""
from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest
from sqlalchemy import select

from core.schema import Case, Prediction
from labeling.cases import build_cases
from labeling.routing import Candidate, plan_case
from models.config import ScoringSettings, load_models_config
from models.registry import load_model_version, train_model
from models.scoring import combine_windows, prepare_text, score_items, text_windows
from test_models_fixtures import add_items, toy_corpus

MODELS = load_models_config()
PADDING = ("Notes from our weekend: the weather was mild, the garden looked lovely and everyone came "
           "for dinner. ") * 80
PAYLOAD = "URGENT winner! claim your cash prize now: verify your bank account and transfer the award fee"


def test_windows_take_head_tail_and_overlapping_strides():
    starts, truncated = text_windows(1000, 320, 160, 64)
    assert starts[0] == 0 and starts[-1] == 1000 - 320 and not truncated
    assert all(0 < b - a <= 160 for a, b in zip(starts, starts[1:]))
    # Any stretch of up to `overlap` characters lies whole inside some window.
    rng = random.Random(0)
    for _ in range(200):
        a = rng.randrange(0, 1000 - 160)
        assert any(s <= a and a + 160 <= s + 320 for s in starts)
    assert text_windows(320, 320, 160, 64) == ([0], False)
    # Over the cap: that many windows, head to tail, evenly spread, and the gaps are owned up to.
    starts, truncated = text_windows(30_000, 320, 160, 64)
    assert len(starts) == 64 and starts[0] == 0 and starts[-1] == 30_000 - 320 and truncated
    assert text_windows(5_000, 320, 160, 64)[1] is False  # 31 windows read it all
    assert text_windows(6_000, 5_000, 0, 1) == ([0], True)  # max_windows 1: the head only


def test_combining_windows_keeps_a_distribution_and_the_worst_window_wins():
    benign = 0
    one = np.array([[0.7, 0.1, 0.1, 0.05, 0.05]])
    assert combine_windows(one, benign) == pytest.approx(one[0])
    assert combine_windows(np.repeat(one, 3, axis=0), benign) == pytest.approx(one[0])
    rows = np.array([[0.98, 0.005, 0.005, 0.005, 0.005],   # padding
                     [0.03, 0.01, 0.94, 0.01, 0.01]])      # the payload's window
    out = combine_windows(rows, benign)
    assert out.sum() == pytest.approx(1.0) and int(np.argmax(out)) == 2 and out[2] > 0.9
    # Two violating windows of different policies: both stay high, benign stays low.
    out = combine_windows(np.array([[0.1, 0.8, 0.05, 0.03, 0.02], [0.1, 0.05, 0.8, 0.03, 0.02]]), benign)
    assert out.sum() == pytest.approx(1.0) and out[1] == pytest.approx(out[2]) and out[0] < 0.1


def test_window_settings_are_checked():
    with pytest.raises(ValueError, match="window_overlap"):
        ScoringSettings(window_chars=100, window_overlap=100)
    with pytest.raises(ValueError, match="window_chars"):
        ScoringSettings(max_chars=200, window_chars=300, window_overlap=10)


def test_prepare_text_flags_windowed_texts():
    text = PADDING[:5300] + " " + PAYLOAD
    s = MODELS.scoring
    p = prepare_text(text, s.max_chars, "stored", s.window_chars, s.window_overlap, s.max_windows)
    assert p.flags == {"windowed": True, "windows": len(p.windows), "truncated": False, "original_chars": len(text)}
    assert p.windows[0][0] == text[:s.window_chars] and p.windows[-1][0] == text[-s.window_chars:]
    assert any(PAYLOAD in w for w, _ in p.windows) and p.units == p.windows
    short = prepare_text("hello there", s.max_chars, "stored", s.window_chars, s.window_overlap, s.max_windows)
    assert short.windows == [] and short.units == [("hello there", "stored")] and short.flags == {}


def test_benign_padding_before_a_scam_payload(sqlite_store, taxonomy, queue_config):
    """The issue's case: 5,300 characters of benign padding, then the scam. The payload's policy
    wins and the item lands in a review queue; long benign text goes to a person too."""
    store = sqlite_store
    texts, ys = toy_corpus(16)
    add_items(store, texts, ys)
    version = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1},
                          show_progress=False)["id"]
    padded = PADDING[:5300] + " " + PAYLOAD
    benign_long = PADDING[:6000]
    ids = add_items(store, [padded, benign_long, PAYLOAD], [None] * 3, prefix="long")
    model, _ = load_model_version(store, version)
    head = model.predict_proba([padded[:MODELS.scoring.max_chars]])[0]
    assert model.labels[int(np.argmax(head))] == "benign"  # what scoring the head alone concluded

    summary = score_items(store, taxonomy, config=MODELS, show_progress=False)
    assert summary.flags.get("windowed") == 2 and "truncated" not in summary.flags
    with store.read() as conn:
        preds = {r.item_id: r for r in conn.execute(select(Prediction).where(Prediction.item_id.in_(ids)))}
    alone = preds[ids[2]]
    got = preds[ids[0]]
    assert alone.label == "scam" and alone.flags is None
    assert got.label == "scam" and got.scores["scam"] > 0.5 and abs(sum(got.scores.values()) - 1) < 1e-4
    assert got.flags["windowed"] is True and got.flags["truncated"] is False
    assert got.flags["original_chars"] == len(padded)
    assert preds[ids[1]].label == "benign" and preds[ids[1]].flags["windowed"] is True

    build_cases(store, taxonomy, queue_config, progress=False)
    with store.read() as conn:
        cases = {r.item_id: r for r in conn.execute(select(Case).where(Case.item_id.in_(ids)))}
    assert cases[ids[0]].queue in ("fraud", queue_config.escalation_queue)
    assert cases[ids[0]].predicted_label == "scam" and cases[ids[0]].meta["long_text"]["windowed"] is True
    assert cases[ids[1]].queue == queue_config.default_queue  # never low-risk, however benign it reads


def _candidate(label: str, score: float, **flags) -> Candidate:
    rest = (1 - score) / 4
    scores = {lab: rest for lab in ("benign", "spam", "scam", "hate", "harassment")}
    scores[label] = score
    return Candidate(item_id="x:1", text="long text", label=label, score=score, scores=scores,
                     uncertainty=1 - score, flags=flags)


@pytest.mark.parametrize("flags", [{"windowed": True, "truncated": False}, {"truncated": True}])
def test_long_texts_never_route_to_low_risk(taxonomy, queue_config, flags):
    now = dt.datetime(2026, 11, 25, 12, 0)
    assert plan_case(taxonomy, queue_config, _candidate("benign", 0.99), now)["queue"] == "low-risk"
    row = plan_case(taxonomy, queue_config, _candidate("benign", 0.99, **flags), now)
    assert row["queue"] == queue_config.default_queue and row["meta"]["long_text"] == flags
    assert plan_case(taxonomy, queue_config, _candidate("spam", 0.9, **flags), now)["queue"] == "spam"


def _toy_champion(store, taxonomy):
    texts, ys = toy_corpus(16)
    add_items(store, texts, ys)
    return train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1}, promote_if="always",
                       show_progress=False)["id"]


def test_padding_under_max_chars_no_longer_hides_a_payload(sqlite_store, taxonomy, queue_config):
    """Texts over `window_chars` but under `max_chars` were scored whole: 4,600 characters of
    benign padding drowned the payload as surely as 5,300 did, with no flag at all."""
    store = sqlite_store
    version = _toy_champion(store, taxonomy)
    padded = PADDING[:4600] + " " + PAYLOAD
    assert len(padded) < MODELS.scoring.max_chars
    model, _ = load_model_version(store, version)
    assert model.labels[int(np.argmax(model.predict_proba([padded])[0]))] == "benign"  # read whole
    [item] = add_items(store, [padded], [None], prefix="mid")
    score_items(store, taxonomy, config=MODELS, show_progress=False)
    with store.read() as conn:
        got = conn.execute(select(Prediction).where(Prediction.item_id == item)).one()
    assert got.label == "scam" and set(got.flags) == {"windows"} and got.flags["windows"] > 1
    build_cases(store, taxonomy, queue_config, progress=False)
    with store.read() as conn:
        case = conn.execute(select(Case).where(Case.item_id == item)).one()
    assert case.predicted_label == "scam" and "long_text" not in (case.meta or {})  # read whole: routed as usual


def test_an_invisibly_obfuscated_copy_scores_as_its_readable_twin(sqlite_store, taxonomy):
    """Copies sharing a hash share a score in a run, and the model used to read the first copy
    raw: a zero-width space between every letter made it benign, and its readable twin with it."""
    store = sqlite_store
    _toy_champion(store, taxonomy)
    hidden = "\u200b".join(PAYLOAD)
    ids = add_items(store, [hidden, PAYLOAD], [None, None], prefix="zw")  # the obfuscated copy first
    score_items(store, taxonomy, config=MODELS, show_progress=False)
    with store.read() as conn:
        got = {r.item_id: r for r in conn.execute(select(Prediction).where(Prediction.item_id.in_(ids)))}
    assert [got[i].label for i in ids] == ["scam", "scam"] and got[ids[0]].scores == got[ids[1]].scores


def test_a_retired_version_scores_nothing(sqlite_store, taxonomy):
    from models.registry import RegistryError, retire

    store = sqlite_store
    champ = _toy_champion(store, taxonomy)
    other = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1, "C": 0.5},
                        promote_if="never", show_progress=False)["id"]
    retire(store, other, actor="eng", reason="test")
    with pytest.raises(RegistryError, match="is retired"):
        score_items(store, taxonomy, model_version=other, config=MODELS, show_progress=False)
    assert score_items(store, taxonomy, model_version=champ, config=MODELS, show_progress=False).scored > 0
