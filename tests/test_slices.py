"""Slices and bias (evaluation.slices): AUC, subgroup / BPSN / BNSP AUC by hand, the slice masks,
per-slice figures, and the report from a reviewed store."""
import numpy as np
import pytest
from eval_support import seed_reviews

from core.config import config_dir
from evaluation import slices as sl
from evaluation.config import EvaluationConfig, load_evaluation_config
from evaluation.data import decision_rows

Y = [1, 1, 0, 0, 1, 1, 0, 0]
S = [0.9, 0.8, 0.3, 0.2, 0.7, 0.6, 0.85, 0.1]
G = [0, 0, 0, 0, 1, 1, 1, 1]


def test_auc_by_hand():
    assert sl.auc(Y, S) == pytest.approx(13 / 16)
    assert sl.auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert sl.auc([1, 1], [0.2, 0.3]) is None
    e = sl.auc_estimate(Y, S, conf=0.9)
    assert (e["n_pos"], e["n_neg"]) == (4, 4) and e["lo"] < 13 / 16 < e["hi"]
    # Hanley-McNeil puts the variance of a perfect ranking at 0: one pair ranked right is not [1, 1]
    one = sl.auc_estimate([1, 0], [0.9, 0.1], conf=0.9)
    assert one["estimate"] == 1.0 and one["lo"] < 0.3 and one["hi"] == 1.0
    perfect = sl.auc_estimate([1] * 100 + [0] * 100, [1.0] * 100 + [0.0] * 100, conf=0.9)
    assert 0.95 < perfect["lo"] < 1.0


def test_jigsaw_bias_aucs_by_hand():
    b = sl.bias_aucs(Y, S, np.array(G, dtype=bool))
    # subgroup: positives {.7, .6} vs negatives {.85, .1}: 2 of 4 pairs ordered
    assert b["subgroup_auc"]["estimate"] == pytest.approx(0.5)
    # BPSN: background positives {.9, .8} vs subgroup negatives {.85, .1}: 3 of 4
    assert b["bpsn_auc"]["estimate"] == pytest.approx(0.75)
    # BNSP: subgroup positives {.7, .6} vs background negatives {.3, .2}: 4 of 4
    assert b["bnsp_auc"]["estimate"] == pytest.approx(1.0)
    assert b["bpsn_auc"]["n_pos"] == 2 and b["bpsn_auc"]["n_neg"] == 2


def _cfg(**kw):
    return EvaluationConfig(version="t", identity_terms={"religion": ["muslim"], "gender": ["women", "men"]}, **kw)


def test_slice_masks():
    rows = [{"source": "sms", "surface": None, "language": "en", "campaign": True, "text": "Muslim women meet"},
            {"source": "forum", "surface": "dm", "language": None, "campaign": False, "text": "menu for lunch"},
            {"source": "sms", "surface": "dm", "language": "fr", "campaign": False, "text": "the men left"}]
    m = sl.slice_masks(rows, _cfg())
    assert m["source=sms"].tolist() == [True, False, True] and m["surface=dm"].tolist() == [False, True, True]
    assert m["language=fr"].tolist() == [False, False, True] and "language=None" not in m
    assert m["campaign=member"].tolist() == [True, False, False]
    assert m["identity=religion"].tolist() == [True, False, False]
    assert m["identity=gender"].tolist() == [True, False, True]  # whole words: "menu" is not "men"
    hidden = sl.slice_masks([{"source": "sms", "text": "Mus\u200blim w\u00adomen meet"}], _cfg())
    assert hidden["identity=religion"].tolist() == [True] == hidden["identity=gender"].tolist()  # invisible chars
    only = sl.slice_masks(rows, _cfg(slices=["campaign"]))
    assert set(only) == {"campaign=member", "campaign=not member"}
    assert not any(k.startswith("served=") for k in m)  # rows without a case: no served slice


def test_served_slices_say_why_each_case_was_served():
    from labeling.learning import SERVED_AS, served_as

    cases = [{"meta": {"learning": {"uncertainty": 0.9}}, "priority_reason": "learning: unsure", "is_audit": False},
             {"meta": {"seed": {"kind": "seed", "policy": "spam"}}, "priority_reason": "seed: …", "is_audit": False},
             {"meta": {"seed": {"kind": "uniform"}}, "priority_reason": "seed: uniform", "is_audit": True},
             {"meta": {}, "priority_reason": "risk 0.93", "is_audit": True},
             {"meta": None, "priority_reason": None, "is_audit": False}]
    served = [served_as(c) for c in cases]
    assert served == [SERVED_AS[0], SERVED_AS[1], SERVED_AS[2], SERVED_AS[2], SERVED_AS[3]]
    rows = [{"served": s, "text": ""} for s in served] + [{"served": None, "text": ""}]
    m = sl.slice_masks(rows, _cfg(slices=["served"]))
    assert m["served=learning share"].tolist() == [True, False, False, False, False, False]
    assert m["served=uniform sample"].sum() == 2 and m["served=risk order"].tolist()[-2:] == [True, False]


def test_quality_figures_by_hand(taxonomy):
    def row(h, m, audit=False):
        return {"human": h, "model": m, "is_audit": audit, "inclusion": None, "proba": None}

    rows = [row("benign", "benign"), row("benign", "hate", True), row("hate", "hate", True), row("hate", "benign"),
            row("benign", "benign")]
    f = sl.quality_figures(rows, taxonomy, _cfg())
    assert f["n"] == 5 and f["audits"] == 2
    assert f["override_rate"]["estimate"] == pytest.approx(2 / 5) and f["override_rate"]["n"] == 5
    assert (f["fpr"]["k"], f["fpr"]["n"]) == (1, 3)  # benign by the human, flagged by the model
    assert (f["fnr"]["k"], f["fnr"]["n"]) == (1, 2)
    assert f["per_policy"]["hate"]["precision"]["estimate"] == pytest.approx(0.5)
    assert f["audit_per_policy"]["hate"]["recall"]["estimate"] == 1.0


def test_slice_report_from_a_reviewed_store(sqlite_store, make_scored, taxonomy, queue_config):
    seed_reviews(sqlite_store, make_scored, taxonomy, queue_config)
    config = load_evaluation_config(config_dir())
    rows = decision_rows(sqlite_store, taxonomy)
    rep = sl.slice_report(rows, taxonomy, config)
    slices = rep["slices"]
    assert {"source=forum", "source=sms", "campaign=not member", "identity=religion", "identity=gender"} <= set(slices)
    assert slices["source=forum"]["n"] + slices["source=sms"]["n"] == rep["overall"]["n"] == len(rows)
    religion = slices["identity=religion"]
    assert religion["n"] == sum(1 for r in rows if "muslim" in r["text"])
    # benign items that mention the group score low, hateful ones high: BPSN and BNSP computed
    for key in ("subgroup_auc", "bpsn_auc", "bnsp_auc"):
        assert religion[key]["n"] > 0 and religion[key]["estimate"] is not None
    assert religion["fpr"]["n"] == sum(1 for r in rows if "muslim" in r["text"] and r["human"] == "benign")
    assert slices["identity=disability"]["n"] == 0 and slices["identity=disability"]["small"]
