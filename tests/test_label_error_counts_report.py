"""Per-analyst label-error counts reach `workbench eval report`: how many of an analyst's decisions
the confident-learning scan queued for re-review, and how many a lead corrected or confirmed, beside
the other analyst figures (Markdown table and the JSON); zeros, and a note, before any scan."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core.config import config_dir
from core.principals import Principal
from core.schema import Case
from evaluation.analysts import analyst_table
from evaluation.config import load_evaluation_config
from evaluation.report import write_report
from labeling.decisions import decide
from labeling.label_errors import find_label_errors, label_error_counts, resolve_label_error, tally_label_errors
from labeling.queue_config import load_queue_config
from test_label_errors import decided_store
from test_queue_support import T0
from test_seeding import BagOfWords

ZERO = {"queued": 0, "corrected": 0, "confirmed": 0, "superseded": 0, "pending": 0}
FLIPPED = {"s3": "benign", "c5": "spam", "s11": "benign"}  # bob's decisions, each the wrong label
ADMIN, LEAD = Principal("ada", "admin"), Principal("lena", "lead")


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})


@pytest.fixture
def decided(sqlite_store, taxonomy, cfg, roles):
    """40 decided items: bob decided the three of `FLIPPED` (wrongly), ann the rest (rightly)."""
    decided_store(sqlite_store, taxonomy, cfg, 20, FLIPPED)
    return sqlite_store


def _report(store, taxonomy, out_dir):
    """The report as `workbench eval report` writes it: (JSON figures, analyst rows of report.md by name)."""
    summary = write_report(store, taxonomy, out_dir, actor=ADMIN, config=load_evaluation_config(config_dir()))
    json.dumps(summary)  # what `--json` prints
    md = (out_dir / "report.md").read_text(encoding="utf-8")
    part = md[md.index("## Analyst quality"):]
    lines = [ln for ln in part.splitlines() if ln.startswith("| ")]
    headers = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {cells[0]: dict(zip(headers, cells)) for cells in
            ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:])}
    return summary, md, rows


def test_flagged_corrected_and_confirmed_per_analyst_in_the_report(decided, taxonomy, cfg, tmp_path):
    store = decided
    out = find_label_errors(store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=3)
    assert {c["item_id"] for c in out["cases"]} == set(FLIPPED), out["cases"]  # the scan found bob's three
    with store.read() as conn:
        cases = dict(conn.execute(select(Case.__table__.c.item_id, Case.__table__.c.id)
                                  .where(Case.__table__.c.queue == "label-review")).all())
    # lena corrects one through the Review screen's path, confirms another, leaves the third pending
    decide(store, taxonomy, cases["s3"], LEAD, "spam", rationale="a prize scam", config=cfg)
    assert resolve_label_error(store, taxonomy, cfg, cases["c5"], LEAD, "spam", "reads as spam")["outcome"] == "confirmed"

    summary, md, rows = _report(store, taxonomy, tmp_path / "rep")
    by_name = {r["analyst"]: r for r in summary["analysts"]["analysts"]}
    assert by_name["bob"]["label_errors"] == {"queued": 3, "corrected": 1, "confirmed": 1, "superseded": 0, "pending": 1}
    assert by_name["ann"]["label_errors"] == ZERO and by_name["ann"]["decisions"] == 37
    assert by_name["lena"]["label_errors"] == ZERO  # her correction is a decision of hers, not flagged
    assert summary["analysts"]["label_errors_queued"] == 3
    assert by_name["bob"]["label_errors"] == label_error_counts(store, cfg)["bob"]  # the CLI counts alike
    # report.md: the counts next to the other figures of the same row
    assert (rows["bob"]["flagged label errors"], rows["bob"]["confirmed errors"],
            rows["bob"]["confirmed correct"]) == ("3", "1", "1")
    assert rows["bob"]["decisions"] == "3" and rows["bob"]["rework rate"].startswith("0.33")
    assert (rows["ann"]["flagged label errors"], rows["ann"]["confirmed errors"],
            rows["ann"]["confirmed correct"]) == ("0", "0", "0")
    assert "No label-error scan" not in md
    assert "flagged label errors" in (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")


def test_before_any_scan_the_columns_are_zero_and_say_so(decided, taxonomy, tmp_path):
    summary, md, rows = _report(decided, taxonomy, tmp_path / "rep")
    assert summary["analysts"]["label_errors_queued"] == 0
    assert {r["analyst"]: r["label_errors"] for r in summary["analysts"]["analysts"]} == {"ann": ZERO, "bob": ZERO}
    assert {name: r["flagged label errors"] for name, r in rows.items()} == {"ann": "0", "bob": "0"}
    assert "No label-error scan has queued a decision yet" in md


def test_an_analyst_with_only_flagged_decisions_still_gets_a_row():
    """A flagged decision of a kind the table does not judge (an appeal reversal) must not vanish."""
    counts = tally_label_errors([{"reviewer": "cy", "outcome": "corrected"}, {"reviewer": "cy"}, None,
                                 {"reviewer": "cy", "outcome": "confirmed"}])
    assert counts == {"cy": {"queued": 3, "corrected": 1, "confirmed": 1, "superseded": 0, "pending": 1}}
    rows = analyst_table([], {}, label_errors=counts)
    assert [(r["analyst"], r["decisions"], r["label_errors"]) for r in rows] == [("cy", 0, counts["cy"])]

