"""Hardening of the label export, undo and notes: --overwrite replaces only an earlier export (never
the store's folder or someone's files); a failed Hub push still leaves the written export in the
audit log and says so in one line, and a push creates a private repo; labels the taxonomy no longer
has are counted and warned about, not silently dropped; a decision an undo restored is exported with
its own time (as training reads it); a campaign decision with an appeal pending on a member cannot
be undone (the appeal would name a decision taken back, and could never be resolved); a campaign id
written "007" is campaign 7 for its notes and tags."""
from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from core.labels import current_labels
from core.schema import AuditEvent, Case, utcnow
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.errors import DecisionError
from labeling.export import ExportError, export_labels, label_rows
from labeling.undo import undo_last

import test_export
from test_queue_support import add_campaign, add_scored

decided_store = test_export.decided_store  # the fixture: three items, two decided (one corrected)


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _export_events(store):
    with store.read() as conn:
        return [e.payload for e in conn.execute(select(AuditEvent.payload)
                                                .where(AuditEvent.action == "labels.export"))]


def test_overwrite_never_replaces_a_folder_that_is_not_an_export(decided_store, taxonomy, tmp_path):
    data = decided_store.data_dir
    held = sorted(p.name for p in data.iterdir())
    assert "workbench.db" in held
    with pytest.raises(ExportError, match=r"data: holds .*workbench\.db.*not only an earlier export's") as err:
        export_labels(decided_store, taxonomy, data, overwrite=True)  # it deleted the store and its audit key
    assert "\n" not in str(err.value) and sorted(p.name for p in data.iterdir()) == held
    with pytest.raises(ExportError, match=r"holds data, items\.jsonl"):
        export_labels(decided_store, taxonomy, tmp_path, overwrite=True)  # the folder above the store
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="holds notes.txt"):
        export_labels(decided_store, taxonomy, mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me" and _export_events(decided_store) == []
    export_labels(decided_store, taxonomy, tmp_path / "out")
    assert export_labels(decided_store, taxonomy, tmp_path / "out", overwrite=True)["replaced"] is True


def test_a_failed_push_is_one_line_and_the_written_export_is_audited(decided_store, taxonomy, tmp_path,
                                                                     monkeypatch):
    import datasets

    def offline(self, repo, *a, **k):
        raise ConnectionError(f"Cannot reach https://huggingface.co/api/datasets/{repo}: offline mode is enabled.\n"
                              f"To disable it, unset HF_HUB_OFFLINE.")

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", offline)
    with pytest.raises(ExportError, match=r"out: written \(2 rows\), but the push to me/labels failed: "
                                          r"Cannot reach .*offline mode is enabled\.$") as err:
        export_labels(decided_store, taxonomy, tmp_path / "out", push_to_hub="me/labels")
    assert "\n" not in str(err.value)
    assert datasets.load_from_disk(str(tmp_path / "out" / "dataset")).num_rows == 2
    [event] = _export_events(decided_store)  # the data left review: that is recorded whatever the Hub said
    assert event["pushed_to"] is None and event["push_error"].startswith("Cannot reach") and event["rows"] == 2

    from workbench.cli import cli

    res = CliRunner().invoke(cli, ["--data-dir", str(decided_store.data_dir), "export", str(tmp_path / "cli"),
                                   "--push-to-hub", "me/labels"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.output.splitlines()[-1].startswith("Error: ") and "but the push to me/labels failed" in res.output


def test_a_restored_decision_is_exported_with_its_own_time(any_store, taxonomy, cfg):
    add_scored(any_store, taxonomy, [{"id": "it1", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, progress=False)
    case = next_case(any_store, "bob", "fraud", config=cfg)
    then = utcnow() - dt.timedelta(days=3)
    first = DEC.decide(any_store, taxonomy, case["id"], "bob", "scam", config=cfg, now=then)["decision_ids"][0]
    DEC.correct(any_store, taxonomy, first, "lead", "spam", "typo fix", action="remove")
    undone = undo_last(any_store, "lead", cfg, 120)
    [row] = label_rows(any_store, taxonomy)
    assert (row["reviewer"], row["label"], row["decision_id"]) == ("bob", "scam", undone["restored"][first])
    assert row["decided_at"] == then.isoformat()  # bob decided three days ago, not at the lead's undo


def test_a_campaign_decision_with_an_appeal_pending_on_a_member_is_not_undone(any_store, taxonomy, cfg):
    add_scored(any_store, taxonomy, [{"id": m, "label": "scam", "p": 0.8} for m in ("m0", "m1", "m2")])
    add_campaign(any_store, ["m0", "m1", "m2"])
    build_cases(any_store, taxonomy, cfg, progress=False)
    camp = next_case(any_store, "lead", "campaigns", config=cfg)
    DEC.decide(any_store, taxonomy, camp["id"], "lead", "spam", "remove", rationale="advert wave", config=cfg)
    appeal = APP.appeal(any_store, "m1", "user-1", "this was my bank", taxonomy, config=cfg)["id"]
    with pytest.raises(DecisionError, match=rf"item 'm1' has an appeal pending \(case {appeal}\)"):
        undo_last(any_store, "lead", cfg, 120)  # it undid all three, and the appeal could never be resolved
    assert {k: v["label"] for k, v in current_labels(any_store).items()} == dict.fromkeys(("m0", "m1", "m2"), "spam")
    with any_store.read() as conn:
        assert conn.execute(select(Case.state).where(Case.id == camp["id"])).scalar() == "decided"
    resolved = APP.resolve_appeal(any_store, taxonomy, appeal, "lead2", "reverse", "a bank notice", config=cfg)
    assert resolved["upheld"] and current_labels(any_store)["m1"]["label"] == "benign"


def test_a_campaign_id_written_with_leading_zeros_is_the_same_campaign(any_store, taxonomy):
    from labeling.notes import add_note, add_tag, list_notes, remove_tag

    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    cid = add_campaign(any_store, ["a"])
    note = add_note(any_store, "campaign", f"00{cid}", "Premium-rate numbers", "ann")  # `workbench note campaign 007`
    assert note["entity_id"] == str(cid)
    assert add_tag(any_store, "campaign", f" 0{cid} ", "wave-7", "ann")["added"] is True
    assert add_tag(any_store, "campaign", cid, "wave-7", "ann")["added"] is False  # not a second live copy
    got = list_notes(any_store, "campaign", cid, principal="tester")  # what the Review screen's context panel asks for
    assert [n["body"] for n in got["notes"]] == ["Premium-rate numbers"] and got["tags"] == ["wave-7"]
    remove_tag(any_store, "campaign", f"0{cid}", "wave-7", "ann")
    assert list_notes(any_store, "campaign", f"00{cid}", principal="tester")["tags"] == []


def test_a_pushed_export_creates_a_private_repo(decided_store, taxonomy, tmp_path, monkeypatch):
    import datasets

    calls = []
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda self, repo, **kw: calls.append((repo, kw)))
    summary = export_labels(decided_store, taxonomy, tmp_path / "out", push_to_hub="me/labels")
    assert summary["pushed_to"] == "me/labels" and "push_error" not in summary
    assert calls == [("me/labels", {"private": True})]  # the default made a new repo public: texts, authors, notes


def test_labels_the_taxonomy_no_longer_has_are_counted_not_silently_dropped(decided_store, taxonomy, tmp_path):
    from core.schema import Decision

    with decided_store.begin() as conn:  # decided under an older taxonomy that had this policy
        conn.execute(insert(Decision.__table__).values(
            item_id="sms_spam:2", label="chain_letter", action="remove", kind="review", reviewer="ann",
            taxonomy_version="2025.1", created_at=utcnow()))
    summary = export_labels(decided_store, taxonomy, tmp_path / "out")
    assert summary["rows"] == 2 and summary["left_out"] == {"unknown label chain_letter": 1}
    assert any(w.startswith(f"1 labelled item left out: label chain_letter is not in taxonomy {taxonomy.version}")
               for w in summary["warnings"]), summary["warnings"]
