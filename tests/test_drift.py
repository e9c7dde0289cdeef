"""Drift checks (evaluation/drift*.py) and `workbench eval drift --check`."""
import datetime as dt
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from core.config import ConfigError, config_dir
from core.ingest import ColumnMap, ingest_paths
from core.schema import Campaign, CampaignMember, Decision, Embedding, Item, ModelVersion, Prediction, utcnow
from evaluation import drift_stats as ds
from evaluation.drift import (CampaignCheck, DriftConfig, EmbeddingCheck, LabelMixCheck, OverrideCheck, ScoreCheck,
                              WindowData, compare_windows, drift_markdown, drift_report, load_drift_config, plot_drift,
                              window_bounds)
from workbench.cli import cli

NOW = dt.datetime(2026, 11, 30, 12, 0)
SMALL = DriftConfig(score=ScoreCheck(min_items=50), label_mix=LabelMixCheck(min_items=50),
                    embedding=EmbeddingCheck(min_items=50), campaigns=CampaignCheck(min_items=50),
                    override_rate=OverrideCheck(min_decisions=50))
SMALL_YAML = """
score: {min_items: 50}
label_mix: {min_items: 50}
embedding: {min_items: 50}
campaigns: {min_items: 50}
override_rate: {min_decisions: 50}
"""


# -- statistics on arrays --------------------------------------------------------------------
def test_score_statistics_near_zero_on_identical_and_large_on_shifted():
    rng = np.random.default_rng(1)
    a, b, shifted = rng.beta(2, 5, 3000), rng.beta(2, 5, 3000), rng.beta(5, 2, 3000)
    same, moved = ds.score_shift(a, b), ds.score_shift(a, shifted)
    assert same["psi"] < 0.02 and same["js"] < 0.05 and same["ks"] < 0.05
    assert moved["psi"] > 1.0 and moved["js"] > 0.4 and moved["ks"] > 0.5
    assert ds.score_shift(a, a)["js"] == pytest.approx(0.0, abs=1e-9)


def test_js_distance_bounds_and_label_mix():
    assert ds.js_distance([1, 0], [0, 1]) == pytest.approx(np.sqrt(np.log(2)))
    assert ds.js_distance([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0, abs=1e-9)
    ref = ["benign"] * 80 + ["spam"] * 20
    same = ds.label_mix_shift(ref, list(reversed(ref)), ["benign", "spam", "hate"])
    assert same["js"] == pytest.approx(0.0, abs=1e-9) and same["chi2_pvalue"] == pytest.approx(1.0)
    assert same["cur_shares"] == {"benign": 0.8, "spam": 0.2, "hate": 0.0}
    moved = ds.label_mix_shift(ref, ["benign"] * 50 + ["hate"] * 50, ["benign", "spam", "hate"])
    assert moved["js"] > 0.4 and moved["chi2_pvalue"] < 1e-10
    # a label outside the list still counts
    assert ds.label_mix_shift(ref, ["other"] * 100, ["benign", "spam"])["js"] == pytest.approx(np.sqrt(np.log(2)))


def test_domain_classifier_auc():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    assert abs(ds.domain_classifier_auc(a, b)["auc"] - 0.5) < 0.06
    moved = b.copy()
    moved[:, 0] += 1.5
    assert ds.domain_classifier_auc(a, moved)["auc"] > 0.8
    capped = ds.domain_classifier_auc(a, moved, max_per_window=100)
    assert capped["n_reference"] == capped["n_current"] == 100


def test_two_proportion_test_by_hand():
    # 10/100 vs 20/100: pooled 0.15, se = sqrt(0.15 * 0.85 * 0.02) = 0.050498, z = 1.98030
    r = ds.two_proportion_test(10, 100, 20, 100)
    assert r["difference"] == pytest.approx(0.10) and r["z"] == pytest.approx(1.98030, abs=1e-4)
    assert r["pvalue"] == pytest.approx(0.04767, abs=1e-4)
    assert ds.two_proportion_test(10, 100, 20, 100, "increase")["pvalue"] == pytest.approx(0.02383, abs=1e-4)
    assert ds.two_proportion_test(20, 100, 10, 100, "increase")["pvalue"] > 0.9
    assert ds.two_proportion_test(0, 50, 0, 50)["pvalue"] == 1.0
    with pytest.raises(ValueError):
        ds.two_proportion_test(1, 2, 1, 2, "less")


def test_emergence_test_by_hand():
    r = ds.emergence_test(4, 4000, 4, 1000)  # 1 vs 4 per 1,000
    assert r["rate_ref"] == pytest.approx(1.0) and r["rate_cur"] == pytest.approx(4.0) and r["ratio"] == pytest.approx(4.0)
    # P(X >= 4 | X ~ Bin(8, 0.2)) = 0.056282
    assert r["pvalue"] == pytest.approx(0.056282, abs=1e-5)
    assert ds.emergence_test(0, 1000, 3, 1000)["ratio"] is None
    assert ds.emergence_test(0, 1000, 0, 1000)["pvalue"] == 1.0


def _window(rng, n, a=2.0, b=5.0, emb_shift=0.0, campaigns=5, decisions=200, overrides=20):
    s = rng.beta(a, b, n)
    scores = np.c_[1 - s, s]
    return WindowData(n_items=n, scores=scores, predicted=np.where(s > 0.5, "spam", "benign").astype(object),
                      embeddings=rng.normal(size=(n, 8)) + emb_shift, new_campaigns=campaigns,
                      decisions=decisions, overrides=overrides)


def test_compare_windows_alarms_only_on_a_shift():
    rng = np.random.default_rng(3)
    cfg = DriftConfig()
    quiet = compare_windows(_window(rng, 4000), _window(rng, 1000, campaigns=1), ["benign", "spam"], cfg)
    assert [c.check for c in quiet if c.alarm] == []
    assert all(c.status == "ok" for c in quiet)
    loud = compare_windows(_window(rng, 4000), _window(rng, 1000, a=5, b=2, emb_shift=1.0, campaigns=20, overrides=80),
                           ["benign", "spam"], cfg)
    assert {c.check for c in loud if c.alarm} == {"score_psi:benign", "score_js:benign", "score_psi:spam",
                                                   "score_js:spam", "label_mix", "embedding",
                                                   "campaign_emergence", "override_rate"}


def test_not_enough_data_never_alarms():
    rng = np.random.default_rng(4)
    checks = compare_windows(_window(rng, 40), _window(rng, 40, a=5, b=2, emb_shift=3.0, campaigns=40,
                                                       decisions=40, overrides=35), ["benign", "spam"], DriftConfig())
    assert all(c.status == "not enough data" and not c.alarm and c.statistic is None for c in checks)
    assert "needs 1000 in each window" in checks[0].message
    no_campaigns = compare_windows(_window(rng, 2000, campaigns=None), _window(rng, 2000, campaigns=None),
                                   ["benign", "spam"], DriftConfig())
    camp = next(c for c in no_campaigns if c.check == "campaign_emergence")
    assert camp.status == "not enough data" and "workbench cluster" in camp.message


def test_override_alarm_needs_both_effect_and_significance():
    rng = np.random.default_rng(5)
    small_effect = DriftConfig(override_rate=OverrideCheck(min_difference=0.2))
    checks = compare_windows(_window(rng, 2000, decisions=2000, overrides=200),
                             _window(rng, 2000, decisions=2000, overrides=300), ["benign", "spam"], small_effect)
    over = next(c for c in checks if c.check == "override_rate")
    assert over.status == "ok" and over.detail["pvalue"] < 1e-5 and over.statistic == pytest.approx(0.05)
    drop = DriftConfig(override_rate=OverrideCheck(alternative="increase"))
    checks = compare_windows(_window(rng, 2000, decisions=2000, overrides=600),
                             _window(rng, 2000, decisions=2000, overrides=100), ["benign", "spam"], drop)
    assert not next(c for c in checks if c.check == "override_rate").alarm


# -- configuration ---------------------------------------------------------------------------
def test_shipped_config_is_the_documented_defaults():
    cfg = load_drift_config(config_dir())
    assert cfg == DriftConfig()
    assert (cfg.score.js_distance, cfg.score.psi, cfg.embedding.auc) == (0.1, 0.2, 0.55)
    assert (cfg.windows.reference_days, cfg.windows.current_days) == (28, 7)


@pytest.mark.parametrize("text, field", [
    ("embedding: {auc: 0.4}\n", "embedding.auc"),
    ("score: {psii: 0.2}\n", "score.psii"),
    ("override_rate: {alternative: less}\n", "override_rate.alternative"),
    ("windows: {current_days: 0}\n", "windows.current_days"),
])
def test_config_errors_name_file_and_key(tmp_path, text, field):
    p = tmp_path / "drift.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_drift_config(p)
    msg = str(err.value)
    assert str(p) in msg and f"'{field}'" in msg and "\n" not in msg


def test_config_not_a_mapping_or_not_yaml(tmp_path):
    p = tmp_path / "drift.yaml"
    p.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="drift.yaml: expected a mapping"):
        load_drift_config(p)
    p.write_text("score: {psi: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_drift_config(tmp_path)


# -- from the store --------------------------------------------------------------------------
def _label_scores(taxonomy, s):
    sc = {lab: 0.0 for lab in taxonomy.labels}
    sc["spam"], sc["benign"] = float(s), float(1 - s)
    return sc


def fill(store, taxonomy, tmp_path, shift, n_ref=1000, n_cur=600, seed=0):
    """Items in the reference window (days 7-35 before NOW), in the current one (last 7 days), and
    outside both (older, and after NOW); champion scores, a challenger that must be ignored,
    cached embeddings, campaigns and decisions. `shift` changes everything in the current window."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ref):
        rows.append(("ref", i, NOW - dt.timedelta(days=7 + 27.9 * (i + 0.5) / n_ref)))
    for i in range(n_cur):
        rows.append(("cur", i, NOW - dt.timedelta(days=6.9 * (i + 0.5) / n_cur)))
    rows += [("old", i, NOW - dt.timedelta(days=40 + i)) for i in range(30)]
    rows += [("future", i, NOW + dt.timedelta(days=1 + i)) for i in range(30)]
    src = tmp_path / f"items-{shift}.jsonl"
    src.write_text("".join(json.dumps({"id": f"{w}{i}", "text": f"{w} message number {i} about things",
                                       "at": t.isoformat()}) + "\n" for w, i, t in rows), encoding="utf-8")
    ingest_paths(store, taxonomy, [str(src)], source="reports", columns=ColumnMap(id="id", created="at"),
                 progress=False)
    cur_shift = shift
    with store.begin() as conn:
        for mv, role in (("m1", "champion"), ("m2", "challenger")):
            conn.execute(insert(ModelVersion.__table__).values(id=mv, kind="test", artifact_path="-", role=role,
                                                               labels=taxonomy.labels, created_at=utcnow(),
                                                               promoted_at=utcnow() if role == "champion" else None))
        hashes = dict(conn.execute(select(Item.id, Item.text_hash)).all())
        preds, embs, decisions = [], [], []
        for w, i, _ in rows:
            moved = cur_shift and w in ("cur", "future")
            s = rng.beta(5, 2) if moved else rng.beta(2, 5)
            sc = _label_scores(taxonomy, s)
            label = max(sc, key=sc.get)
            item = f"reports:{w}{i}"
            preds.append(dict(item_id=item, model_version="m1", label=label, score=sc[label], scores=sc,
                              uncertainty=0.1, taxonomy_version=taxonomy.version, created_at=utcnow()))
            vec = rng.normal(size=8).astype(np.float32) + (2.0 if moved else 0.0)
            embs.append(dict(model="all-MiniLM-L6-v2", text_hash=hashes[item], dim=8, vector=vec.tobytes()))
            if w in ("ref", "cur") and i < (n_ref if w == "ref" else n_cur) // 2:
                wrong = rng.random() < (0.5 if moved else 0.1)
                human = ("benign" if label == "spam" else "spam") if wrong else label
                decisions.append(dict(item_id=item, reviewer="ann", kind="review", label=human, action="no_action",
                                      model_version="m1", model_label=label, is_override=wrong,
                                      taxonomy_version=taxonomy.version))
        conn.execute(insert(Prediction.__table__), preds)
        # A challenger, scored later, that would look like drift if it were read: it must not be.
        conn.execute(insert(Prediction.__table__), [
            dict(p, model_version="m2", scores=_label_scores(taxonomy, 0.99), label="spam", score=0.99)
            for p in preds if p["item_id"].startswith("reports:cur")])
        conn.execute(insert(Embedding.__table__), embs)
        conn.execute(insert(Decision.__table__), decisions)
        # Campaigns: in the quiet store 6 start in the reference window and 2 in the current one;
        # in the shifted one 16 more start in the current window.
        starts = [("ref", (n_ref // 6) * k) for k in range(6)] + [("cur", 5 * k) for k in range(2 + (16 if shift else 0))]
        for w, i in starts:
            cid = conn.execute(insert(Campaign.__table__).values(size=2)).inserted_primary_key[0]
            members = [f"reports:{w}{i}", f"reports:{w}{i + 1}"]
            conn.execute(insert(CampaignMember.__table__), [dict(item_id=m, campaign_id=cid) for m in members])
    return store


def test_windows_by_item_time():
    ref, cur = window_bounds(NOW, 28, 7)
    assert cur == (NOW - dt.timedelta(days=7), NOW) and ref == (NOW - dt.timedelta(days=35), NOW - dt.timedelta(days=7))


def test_drift_report_on_identical_windows(any_store, taxonomy, tmp_path, monkeypatch):
    fill(any_store, taxonomy, tmp_path, shift=False)
    rep = drift_report(any_store, SMALL, taxonomy, now=NOW)
    assert (rep.n_reference, rep.n_current) == (1000, 600)  # old and future items fall outside
    assert rep.alarms == [], [c.message for c in rep.alarms]
    by = {c.check: c for c in rep.checks}
    assert by["score_js:spam"].statistic < 0.1 and by["score_js:spam"].n_current == 600
    assert by["embedding"].statistic < 0.55 and by["embedding"].n_reference == 1000
    assert by["campaign_emergence"].detail["new_ref"] == 6 and by["campaign_emergence"].detail["new_cur"] == 2
    assert (by["override_rate"].n_reference, by["override_rate"].n_current) == (500, 300)
    assert rep.model_versions == {"reference": {"m1": 1000}, "current": {"m1": 600}}  # the prediction of record
    # default `now`: the newest item time (the last "future" row, 30 days on): days 24-30 are current
    monkeypatch.setattr("core.schema.utcnow", lambda: NOW + dt.timedelta(days=40))  # the clock is past every item
    later = drift_report(any_store, SMALL, taxonomy)
    assert later.now == NOW + dt.timedelta(days=30) and later.n_current == 7


def test_drift_report_on_shifted_windows(any_store, taxonomy, tmp_path):
    fill(any_store, taxonomy, tmp_path, shift=True)
    rep = drift_report(any_store, SMALL, taxonomy, now=NOW)
    fired = {c.check for c in rep.alarms}
    assert {"score_psi:spam", "score_js:spam", "label_mix", "embedding", "campaign_emergence", "override_rate"} <= fired
    md = drift_markdown(rep)
    assert "| embedding |" in md and "**ALARM**" in md and "alarm(s)**" in md
    fig = plot_drift(rep)
    assert len(fig.axes[0].patches) == len(rep.checks)
    d = rep.to_dict()
    json.dumps(d, allow_nan=False)
    assert set(d["alarms"]) == fired and d["checks"][0]["n_reference"] == 1000


def test_default_config_says_not_enough_data_on_a_small_store(sqlite_store, taxonomy, tmp_path):
    fill(sqlite_store, taxonomy, tmp_path, shift=True, n_ref=240, n_cur=160)
    rep = drift_report(sqlite_store, DriftConfig(), taxonomy, now=NOW)
    assert rep.alarms == []
    assert all(c.status == "not enough data" for c in rep.checks)


# -- the command line ------------------------------------------------------------------------
def _cli(store, tmp_path, *args):
    cfg = tmp_path / "configs"
    if not cfg.exists():
        shutil.copytree(config_dir(), cfg)
        (cfg / "drift.yaml").write_text(SMALL_YAML, encoding="utf-8")
    base = ["--data-dir", str(store.data_dir), "--config-dir", str(cfg)]
    if not store.is_sqlite:
        base += ["--db", store.url]
    return CliRunner().invoke(cli, [*base, "eval", "drift", *args], catch_exceptions=False)


def test_cli_check_exits_0_without_alarm(any_store, taxonomy, tmp_path):
    fill(any_store, taxonomy, tmp_path, shift=False)
    res = _cli(any_store, tmp_path, "--check", "--now", NOW.isoformat())
    assert res.exit_code == 0, res.output
    assert "0 alarm(s)" in res.output and "ALARM" not in res.output
    res = _cli(any_store, tmp_path, "--now", NOW.isoformat(), "--reference-days", "28", "--current-days", "7", "--json")
    out = json.loads(res.output)
    assert res.exit_code == 0 and out["alarms"] == [] and out["n_current"] == 600


def test_cli_check_exits_1_and_names_each_alarm(any_store, taxonomy, tmp_path):
    fill(any_store, taxonomy, tmp_path, shift=True)
    res = _cli(any_store, tmp_path, "--check", "--now", NOW.isoformat())
    assert res.exit_code == 1, res.output
    alarm_lines = [ln for ln in res.output.splitlines() if ln.startswith("ALARM ")]
    assert any(ln.startswith("ALARM embedding: domain classifier AUC") for ln in alarm_lines)
    assert any(ln.startswith("ALARM override_rate:") for ln in alarm_lines)
    res = _cli(any_store, tmp_path, "--check", "--json", "--now", NOW.isoformat())
    assert res.exit_code == 1 and "label_mix" in json.loads(res.output)["alarms"]
    # windows that see none of the shift: the current window is the 7 days before the shift
    res = _cli(any_store, tmp_path, "--check", "--now", (NOW - dt.timedelta(days=7)).isoformat(),
               "--reference-days", "14")
    assert res.exit_code == 0, res.output


def test_cli_errors_are_one_line_and_not_exit_1(sqlite_store, tmp_path):
    res = _cli(sqlite_store, tmp_path, "--check")
    assert res.exit_code == 2 and "no items" in res.output
    res = _cli(sqlite_store, tmp_path, "--now", "yesterday")
    assert res.exit_code == 2 and "--now" in res.output
    res = _cli(sqlite_store, tmp_path, "--current-days", "0")
    assert res.exit_code == 2 and "--current-days" in res.output
    (tmp_path / "configs" / "drift.yaml").write_text("embedding: {auc: 2}\n", encoding="utf-8")
    res = _cli(sqlite_store, tmp_path, "--check")
    assert res.exit_code == 2 and "drift.yaml: field 'embedding.auc'" in res.output
