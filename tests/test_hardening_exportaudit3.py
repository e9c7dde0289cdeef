"""Hardening (export audit 3): the exported labels and splits are those training uses, read as one
snapshot; the destination is never a link."""
from __future__ import annotations

import pytest
from sqlalchemy import insert

from core.principals import SYSTEM
from core.schema import Case, Decision, utcnow
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.export import ExportError, export_labels
from labeling.training_data import learning_data
from models.config import LearningSettings

from test_queue_support import T0, add_campaign, add_scored


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _training(store, taxonomy):
    ld = learning_data(store, taxonomy, LearningSettings(), SYSTEM["system"], min_examples_per_label=0,
                       action="export")
    return {i: (y, s) for i, y, s in zip(ld.data.ids, ld.data.labels, ld.split)}


def _exported(summary):
    import pandas as pd

    df = pd.read_parquet(summary["parquet"])
    return {r["id"]: r for r in df.to_dict("records")}


def _wave(store, taxonomy, cfg):
    """A campaign of 4 members over 2 texts, decided in bulk; one member's appeal reversed."""
    add_scored(store, taxonomy, [{"id": f"w{i}", "label": "scam", "p": 0.9, "text": t}
                                 for i, t in enumerate(["win a prize now", "win a prize now",
                                                        "claim your reward", "claim your reward"])])
    add_campaign(store, ["w0", "w1", "w2", "w3"])
    build_cases(store, taxonomy, cfg, progress=False, now=T0)
    camp = next_case(store, "lead", "campaigns", config=cfg, now=T0)
    DEC.decide(store, taxonomy, camp["id"], "lead", "scam", "remove", rationale="wave", config=cfg, now=T0)
    appeal = APP.appeal(store, "w1", "user-1", "mine", taxonomy, config=cfg)["id"]
    APP.resolve_appeal(store, taxonomy, appeal, "lead2", "reverse", "a real prize", config=cfg)


def _corrected_and_undone(store, taxonomy, cfg):
    """s1 corrected (spam -> benign); s2 corrected, then the correction undone (back to spam)."""
    from core.labels import current_labels
    from labeling.undo import undo_last

    add_scored(store, taxonomy, [{"id": i, "label": "spam", "p": 0.9, "text": f"cheap pills {i}"}
                                 for i in ("s1", "s2")])
    build_cases(store, taxonomy, cfg, progress=False, now=T0)
    for _ in ("s1", "s2"):
        case = next_case(store, "bob", "spam", config=cfg, now=T0)
        DEC.decide(store, taxonomy, case["id"], "bob", "spam", "remove", config=cfg, now=T0)
    first = {i: d["id"] for i, d in current_labels(store, ["s1", "s2"]).items()}
    DEC.correct(store, taxonomy, first["s1"], "lead3", "benign", "a pharmacy", action="no_action")
    DEC.correct(store, taxonomy, first["s2"], "lead4", "benign", "oops", action="no_action")
    undo_last(store, "lead4", cfg, 120)


def test_exported_labels_and_splits_are_those_training_uses(any_store, taxonomy, cfg, tmp_path):
    """A bulk decision counts once per text (the other copy is `excluded`), an appeal's reversal and a
    correction win and an undone correction does not, as in training: what a model trains on from the
    export is what `retrain` trains on, on the same side on every export (a regression guard: it held)."""
    _wave(any_store, taxonomy, cfg)
    _corrected_and_undone(any_store, taxonomy, cfg)
    summary = export_labels(any_store, taxonomy, tmp_path / "out", splits=LearningSettings())
    got, want = _exported(summary), _training(any_store, taxonomy)
    assert [taxonomy.labels[got[i]["label"]] for i in ("w1", "s1", "s2")] == ["benign", "benign", "spam"]
    used = {i: (taxonomy.labels[r["label"]], r["split"]) for i, r in got.items() if r["split"] != "excluded"}
    assert used == want
    again = _exported(export_labels(any_store, taxonomy, tmp_path / "out", splits=LearningSettings(), overwrite=True))
    assert {i: r["split"] for i, r in again.items()} == {i: r["split"] for i, r in got.items()}  # stable



def _supersede(store, item_id, label, kind="review", case_id=None):
    """A decision superseding `item_id`'s decision of record (a correction), as the services write it."""
    from core.labels import current_labels

    old = current_labels(store, [item_id])[item_id]["id"]
    with store.begin() as conn:
        conn.execute(insert(Decision.__table__).values(
            item_id=item_id, label=label, action="remove", kind=kind, reviewer="lead", taxonomy_version="t",
            supersedes_id=old, case_id=case_id, created_at=utcnow()))


def test_a_decision_made_during_the_export_is_wholly_in_or_out(any_store, taxonomy, cfg, tmp_path, monkeypatch):
    """The labels and the training sides were two reads: a correction made between them was half in
    (the row kept the old label, training the new): the export is read again until no decision
    arrived meanwhile."""
    import labeling.training_data as TD

    _wave(any_store, taxonomy, cfg)
    real, calls = TD.learning_data, []

    def busy(*a, **kw):
        calls.append(1)
        if len(calls) == 1:
            _supersede(any_store, "w0", "spam")  # a lead corrects w0 while the export reads
        return real(*a, **kw)

    monkeypatch.setattr(TD, "learning_data", busy)
    summary = export_labels(any_store, taxonomy, tmp_path / "out", splits=LearningSettings())
    monkeypatch.setattr(TD, "learning_data", real)
    got = _exported(summary)
    assert taxonomy.labels[got["w0"]["label"]] == "spam" and got["w0"]["reviewer"] == "lead"
    used = {i: (taxonomy.labels[r["label"]], r["split"]) for i, r in got.items() if r["split"] != "excluded"}
    assert used == _training(any_store, taxonomy)


def test_an_export_that_never_gets_a_quiet_moment_is_refused_in_one_line(any_store, taxonomy, cfg, tmp_path,
                                                                         monkeypatch):
    import labeling.training_data as TD

    _wave(any_store, taxonomy, cfg)
    real = TD.learning_data
    labels = iter(["spam", "benign"] * 5)

    def busy(*a, **kw):
        _supersede(any_store, "w0", next(labels))
        return real(*a, **kw)

    monkeypatch.setattr(TD, "learning_data", busy)
    with pytest.raises(ExportError) as err:
        export_labels(any_store, taxonomy, tmp_path / "out", splits=LearningSettings())
    assert "decisions kept arriving" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_an_appealed_qa_audit_and_a_rereview_carry_the_kind_training_evaluates_them_as(any_store, taxonomy,
                                                                                        tmp_path):
    """Training counts an appeal of a QA audit in the gate's `qa_audit` set and a lead's re-review
    apart (`rereview`); the export said only `appeal` / `qa_audit`, so an evaluation set built
    from it was not the gate's. `training_kind` says what training reads."""
    add_scored(any_store, taxonomy, [{"id": "q1", "label": "scam", "p": 0.9}, {"id": "q2", "label": "spam", "p": 0.9}])
    with any_store.begin() as conn:
        for i, lab in (("q1", "scam"), ("q2", "spam")):
            conn.execute(insert(Decision.__table__).values(
                item_id=i, label=lab, action="remove", kind="qa_audit", reviewer="ann", taxonomy_version="t",
                created_at=T0))
    _supersede(any_store, "q1", "benign", kind="appeal")  # the appeal reverses the audited label
    with any_store.begin() as conn:  # a lead's blind re-review of q2: a draw of decided items
        case = conn.execute(insert(Case.__table__).values(
            item_id="q2", queue="qa", state="decided", meta={"rereview": True}, created_at=T0)
            .returning(Case.__table__.c.id)).scalar_one()
    _supersede(any_store, "q2", "scam", kind="qa_audit", case_id=case)
    summary = export_labels(any_store, taxonomy, tmp_path / "out", splits=LearningSettings())
    got = _exported(summary)
    ld = learning_data(any_store, taxonomy, LearningSettings(), SYSTEM["system"], min_examples_per_label=0)
    want = dict(zip(ld.data.ids, ld.decision_kind))
    assert want["q1"] == "qa_audit" and got["q1"]["decision_kind"] == "appeal"
    assert want["q2"] == "rereview" and got["q2"]["decision_kind"] == "qa_audit"
    assert {i: r["training_kind"] for i, r in got.items()} == want
    assert taxonomy.labels[got["q1"]["label"]] == "benign"


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_link_is_refused_as_the_destination(any_store, taxonomy, cfg, tmp_path, overwrite):
    """`out` a symbolic link: the export went wherever it pointed, and --overwrite replaced the
    folder there. Refused in one line; what the link points at is untouched."""
    _wave(any_store, taxonomy, cfg)
    earlier = export_labels(any_store, taxonomy, tmp_path / "real")
    before = sorted(p.name for p in (tmp_path / "real").rglob("*"))
    empty = tmp_path / "empty"
    empty.mkdir()
    for target, name in ((tmp_path / "real", "to-real"), (empty, "to-empty"), (tmp_path / "nowhere", "dangling")):
        link = tmp_path / name
        link.symlink_to(target)
        with pytest.raises(ExportError, match="symbolic link") as err:
            export_labels(any_store, taxonomy, link, overwrite=overwrite)
        assert "\n" not in str(err.value)
    assert sorted(p.name for p in (tmp_path / "real").rglob("*")) == before and earlier["rows"] == 4
    assert not any(empty.iterdir()) and not (tmp_path / "nowhere").exists()


def test_the_summary_counts_a_bulk_decision_once_per_text_as_training_does(any_store, taxonomy, cfg, tmp_path):
    """`by_label` counts every copy a bulk decision labelled (scam 3 for the wave), training counts
    two texts once each: the summary says how many rows training uses, by label and by side."""
    from collections import Counter

    _wave(any_store, taxonomy, cfg)
    summary = export_labels(any_store, taxonomy, tmp_path / "out", splits=LearningSettings())
    want = _training(any_store, taxonomy)
    assert summary["by_label"]["scam"] == 3 and summary["rows"] == 4  # every row is still there, w3 excluded
    counted = Counter(y for y, _ in want.values())
    assert summary["training_by_label"] == {lab: counted[lab] for lab in taxonomy.labels}
    assert summary["by_split"] == {"train": sum(s == "train" for _, s in want.values()),
                                   "test": sum(s == "test" for _, s in want.values()), "excluded": 1}


def test_a_long_export_shows_its_progress(any_store, taxonomy, cfg, tmp_path, capsys):
    _wave(any_store, taxonomy, cfg)
    capsys.readouterr()
    export_labels(any_store, taxonomy, tmp_path / "out", progress=True)
    assert "exporting labels" in capsys.readouterr().err


def test_the_export_command_shows_progress_and_the_training_counts(sqlite_store, taxonomy, cfg, tmp_path):
    from click.testing import CliRunner

    from workbench.cli import cli

    _wave(sqlite_store, taxonomy, cfg)  # the CLI opens the store of --data-dir: SQLite
    res = CliRunner().invoke(cli, ["--data-dir", str(sqlite_store.data_dir), "export", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "exporting labels" in res.output and "excluded=1" in res.output
