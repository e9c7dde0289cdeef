"""The learning-loop steps of `workbench demo` (workbench/demo_loop.py) on a tiny store: simulated
decisions, retrain behind the gate (a comparison report on disk), the label-error scan, the
evaluation report (report.html), drift (every check printed) and a search, all without raising."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.schema import Case, Decision, ModelVersion
from workbench.context import AppContext

SPAM = "win prize cash claim call now free urgent award bonus txt reply".split()
CHAT = "lunch home mum train late see you tonight thanks dinner love meeting work".split()
RUDE = "stupid idiot trash loser ugly dumb pathetic clown shut up moron".split()
HATE = "vermin subhuman go back deport filth invaders scum breed".split()


def _lines(rng: random.Random, words: list[str], n: int, tag: str) -> list[str]:
    return [" ".join(rng.choices(words, k=7)) + f" {tag}{i}" for i in range(n)]


@pytest.fixture
def tiny_shared(tmp_path) -> Path:
    """The two shared datasets' files in their own formats, 120 rows each, words telling the label."""
    rng = random.Random(3)
    root = tmp_path / "shared"
    sms = root / "sms_spam_collection" / "SMSSpamCollection"
    sms.parent.mkdir(parents=True)
    rows = [("spam", f"{t} prize") for t in _lines(rng, SPAM, 40, "s")]
    rows += [("ham", t) for t in _lines(rng, CHAT, 80, "h")]
    rng.shuffle(rows)
    sms.write_text("Label\tSMS\n" + "".join(f"{lab}\t{text}\n" for lab, text in rows), encoding="utf-8")
    dav = root / "davidson_hate_offensive" / "labeled_data.csv"
    dav.parent.mkdir(parents=True)
    tweets = ([(1, t) for t in _lines(rng, RUDE, 60, "r")] + [(2, t) for t in _lines(rng, CHAT, 40, "c")]
              + [(0, t) for t in _lines(rng, HATE, 20, "x")])
    rng.shuffle(tweets)
    with dav.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["", "count", "hate_speech", "offensive_language", "neither", "class", "tweet"])
        for i, (cls, text) in enumerate(tweets):
            votes = [0, 0, 0]
            votes[cls] = 3
            w.writerow([i, 3, *votes, cls, text])
    return root


def test_learning_loop_steps_run_on_a_tiny_store(tmp_path, tiny_shared, monkeypatch):
    from workbench import demo_loop
    from workbench.demo import collect_steps, run_demo

    monkeypatch.setattr(demo_loop, "DECISIONS", 150)
    names = [s.name for s in collect_steps()]
    assert names[names.index("cases") + 1:] == ["decisions", "retrain", "label-errors", "eval-report", "drift", "find"]
    app = AppContext(tmp_path / "data")
    lines: list[str] = []
    try:
        report = run_demo(app, shared_data=str(tiny_shared), echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
        store = app.store()
        steps = report["steps"]
        # Decisions: the simulated team decided real cases through the queue services.
        assert 0 < steps["decisions"]["cases"] <= 150
        with store.read() as conn:
            n_dec = conn.execute(select(func.count()).select_from(Decision)).scalar()
            n_items = conn.execute(select(func.count(Decision.item_id.distinct()))).scalar()
            reviewers = set(conn.execute(select(Decision.reviewer)).scalars())
            n_models = conn.execute(select(func.count()).select_from(ModelVersion)).scalar()
            label_review = conn.execute(select(func.count()).select_from(Case)
                                        .where(Case.queue == "label-review")).scalar()
        assert n_dec == steps["decisions"]["decisions"] and reviewers <= {"sim-ana", "sim-ben", "sim-lea"}
        # Retrain: a second model version, compared with the champion in a report on disk.
        retrain = steps["retrain"]
        assert n_models == 2 and retrain["champion"] != retrain["challenger"]
        assert retrain["kind"] == demo_loop.FAST_KIND  # the demo's champion is a hybrid: a slow kind
        assert Path(retrain["report"]).is_file() and Path(retrain["png"]).is_file()
        assert Path(retrain["report"]).read_text().strip()
        assert any(retrain["report"] in line for line in lines)
        assert any(("PROMOTED" if retrain["promoted"] else "not promoted") in line for line in lines)
        # Label errors: what was queued is in the re-review queue.
        assert steps["label-errors"]["queued"] == label_review
        assert steps["label-errors"]["decided"] > 0
        assert steps["label-errors"]["slips"] <= steps["decisions"]["slips"]
        # The evaluation report: a self-contained HTML page with the decisions counted.
        html = Path(steps["eval-report"]["html"])
        assert html.is_file() and "<html" in html.read_text(encoding="utf-8").lower()
        assert steps["eval-report"]["decisions"] == n_items  # one per decided item: its label of record
        # Drift: the windows, every check by name (measured ones a line each, the rest in one line), the verdict.
        drift = steps["drift"]
        at = lines.index("[drift]")
        section = lines[at + 1:lines.index("[find]")]
        assert drift["checks"] and section[0].strip().startswith("reference ")
        measured = [c for c in drift["checks"] if c not in drift["not_enough_data"]]
        shown = [ln.split(":")[0].split()[-1] for ln in section[1:1 + len(measured)]]
        assert shown == [c.split(":")[0] for c in measured]
        assert all(c in "\n".join(section) for c in drift["checks"])
        assert f"{len(drift['alarms'])} alarm(s) in {len(drift['checks'])} checks" in section[-1]
        # Find: the example query matches the prize texts.
        assert steps["find"]["total"] > 0 and steps["find"]["shown"] > 0
    finally:
        app.close()


def test_drift_and_find_steps_on_an_empty_store_do_not_raise(tmp_path):
    from workbench import demo_loop

    app = AppContext(tmp_path / "data")
    lines: list[str] = []
    try:
        out = demo_loop.drift_step(app, lambda *a, **k: lines.append(" ".join(map(str, a))))
        assert out == {"error": out["error"]}
        assert "error" in out and "drift not measured" in lines[0] and "exits 2" in lines[0]
        found = demo_loop.find_step(app, lambda *a, **k: lines.append(" ".join(map(str, a))))
        assert found["total"] == 0
        assert demo_loop.retrain_step(app, lambda *a, **k: lines.append(" ".join(map(str, a)))) == {
            "skipped": "no champion"}
    finally:
        app.close()


def test_drift_step_prints_measured_checks_and_an_alarm_without_failing(tmp_path, taxonomy):
    """Items with their own times in both windows, scores shifted in the current one, minimums
    lowered: the score checks are measured and alarm, printed one line each; nothing raises."""
    import datetime as dt
    import re
    import shutil

    from sqlalchemy import insert

    from core.config import config_dir
    from core.schema import Item, Prediction, utcnow
    from core.text import text_hash
    from workbench import demo_loop

    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    drift_yaml = configs / "drift.yaml"
    drift_yaml.write_text(re.sub(r"min_(items|decisions): \d+", r"min_\1: 20", drift_yaml.read_text()))
    app = AppContext(tmp_path / "data", config_dir_=configs)
    now = utcnow()
    rng = random.Random(5)
    items, preds = [], []
    for i in range(120):
        current = i >= 60
        when = now - dt.timedelta(days=rng.uniform(0, 6) if current else rng.uniform(8, 30))
        spam = rng.uniform(0.6, 0.99) if current else rng.uniform(0.01, 0.3)  # the current week turns spammy
        text = f"item {i} " + " ".join(rng.choices(SPAM if current else CHAT, k=6))
        items.append(dict(id=f"t:{i}", source="t", surface="post", text=text, text_hash=text_hash(text),
                          policy_label=None, source_label=None, taxonomy_version=taxonomy.version, created_at=when))
        scores = {lab: (spam if lab == "spam" else (1 - spam) / (len(taxonomy.labels) - 1)) for lab in taxonomy.labels}
        top = max(scores, key=scores.get)
        preds.append(dict(item_id=f"t:{i}", model_version="m1", label=top, score=scores[top], scores=scores,
                          uncertainty=1 - scores[top], taxonomy_version=taxonomy.version, created_at=now))
    lines: list[str] = []
    try:
        with app.store().begin() as conn:
            conn.execute(insert(Item.__table__), items)
            conn.execute(insert(Prediction.__table__), preds)
        out = demo_loop.drift_step(app, lambda *a, **k: lines.append(" ".join(map(str, a))))
    finally:
        app.close()
    assert "score_psi:spam" in out["alarms"] and "label_mix" in out["alarms"]
    assert any(line.startswith("  ALARM score_psi:spam:") for line in lines)
    measured = [c for c in out["checks"] if c not in out["not_enough_data"]]
    assert len(measured) >= 2 * len(taxonomy.labels)  # PSI and JS per policy at least
    for check in measured:
        assert sum(line.lstrip().removeprefix("ALARM ").startswith(f"{check}:") for line in lines) == 1
    assert f"{len(out['alarms'])} alarm(s) in {len(out['checks'])} checks" in lines[-1] and "exit 1" in lines[-1]
