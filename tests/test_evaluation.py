import datetime as dt
import json

import numpy as np
import pytest
from sqlalchemy import insert, select

from evaluation import metrics as em
from evaluation.report import agreement, model_quality, score_drift, write_report
from core.ingest import ColumnMap, ingest_paths
from core.schema import Case, ModelVersion, Prediction, utcnow


def test_override_rates():
    assert em.override_rate(["spam", "spam", "hate"], ["spam", "benign", "hate"]) == pytest.approx(1 / 3)
    assert em.override_rate([], []) is None
    by = em.override_rates_by(["spam", "spam", "hate"], ["spam", "spam", "hate"], ["spam", "benign", "hate"])
    assert by == {"spam": {"n": 2, "overrides": 1, "rate": 0.5}, "hate": {"n": 1, "overrides": 0, "rate": 0.0}}


def test_kappas():
    assert em.cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == pytest.approx(1.0)
    assert em.cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == pytest.approx(0.0)
    # Fleiss (1971) worked example is long; a small hand-computed one: perfect agreement -> 1.
    assert em.fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)
    assert em.fleiss_kappa(np.array([[2, 1], [1, 2]])) < 0
    with pytest.raises(ValueError):
        em.fleiss_kappa(np.array([[2, 1], [1, 1]]))


def test_psi_and_ks_detect_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.beta(2, 5, 4000), rng.beta(2, 5, 4000)
    shifted = rng.beta(5, 2, 4000)
    assert em.psi(a, b) < 0.05 < 0.25 < em.psi(a, shifted)
    assert em.ks_statistic(a, shifted)["statistic"] > 0.4 > em.ks_statistic(a, b)["statistic"]


SCORES = {
    "spam": {"benign": 0.1, "spam": 0.8, "scam": 0.1, "hate": 0.0, "harassment": 0.0},
    "benign": {"benign": 0.7, "spam": 0.2, "scam": 0.1, "hate": 0.0, "harassment": 0.0},
}


@pytest.fixture
def reviewed(sqlite_store, taxonomy, tmp_path, queue_config):
    from labeling.decisions import decide
    from labeling.cases import build_cases

    rows = [{"id": str(i), "text": f"message number {i}", "at": (dt.datetime(2026, 11, 1) + dt.timedelta(days=i)).isoformat()}
            for i in range(8)]
    src = tmp_path / "items.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ingest_paths(sqlite_store, taxonomy, [str(src)], source="reports", columns=ColumnMap(id="id", created="at"),
                 progress=False)
    with sqlite_store.begin() as conn:
        conn.execute(insert(ModelVersion.__table__).values(id="m1", kind="test", artifact_path="-", role="champion",
                                                           labels=taxonomy.labels, created_at=utcnow()))
        for i in range(8):
            label = "spam" if i < 6 else "benign"
            conn.execute(insert(Prediction.__table__).values(
                item_id=f"reports:{i}", model_version="m1", label=label, score=SCORES[label][label],
                scores=SCORES[label], uncertainty=0.2, taxonomy_version=taxonomy.version, created_at=utcnow()))
    build_cases(sqlite_store, taxonomy, queue_config, progress=False)
    with sqlite_store.read() as conn:
        cases = dict(conn.execute(select(Case.item_id, Case.id).where(Case.item_id.is_not(None))).all())
    for i in range(8):
        if i in (0, 1, 2, 6):  # agree with the model
            label, action, why = ("spam", "remove", None) if i < 6 else ("benign", "no_action", None)
        else:  # 3, 4, 5 spam -> benign overrides; 7 benign -> spam
            label, action, why = ("benign", "no_action", "fine") if i < 6 else ("spam", "remove", "is spam")
        decide(sqlite_store, taxonomy, cases[f"reports:{i}"], "ann", label, action=action, rationale=why,
               config=queue_config)
    return sqlite_store


def test_model_quality_from_decisions(reviewed, taxonomy):
    q = model_quality(reviewed, taxonomy)
    assert q["decisions"] == 8
    assert q["override_rate"] == pytest.approx(4 / 8)
    assert q["override_by_model_label"]["spam"] == {"n": 6, "overrides": 3, "rate": 0.5}
    spam = q["all_decisions"]["per_label"]["spam"]
    assert spam["precision"] == pytest.approx(3 / 6) and spam["recall"] == pytest.approx(3 / 4)
    assert "ece" in q["all_decisions"]


def test_score_drift_and_report(reviewed, taxonomy, tmp_path):
    drift = score_drift(reviewed, taxonomy)
    assert drift["n_reference"] + drift["n_current"] == 8
    assert drift["per_label"]["spam"]["mean_ref"] > drift["per_label"]["spam"]["mean_cur"]
    from core.config import config_dir
    from evaluation.config import load_evaluation_config

    out = write_report(reviewed, taxonomy, tmp_path / "rep", config=load_evaluation_config(config_dir()))
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "judged against the model: **0.500 [" in text and "| spam |" in text  # a rate with its interval
    assert {"override_rate", "reliability", "estimates"} <= set(out["plots"])
    assert all((tmp_path / "rep" / name).exists() for name in ("override_rate.png", "reliability_human.png"))


def test_agreement_without_calibration_sets(reviewed):
    assert agreement(reviewed) == {}
