"""Hardening of the learning loop's cold-start and label-quality doors: a decision a second human
look already settled (a correction, a blind re-review's answer) is not queued as a label error, the
reason of a re-review case says what the model thinks when it leans to the given label itself, a
seed keyword is masked in the case's reason, duplicate examples do not take extra seeds, and an
examples or keywords file's errors name the file, line and field."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from core.config import config_dir
from core.schema import Case, utcnow
from labeling.cases import build_cases
from labeling.decisions import correct, decide
from labeling.errors import QueueError
from labeling.label_errors import find_label_errors
from labeling.masking import mask_text
from labeling.queue_config import load_queue_config
from labeling.rereview import draw_rereviews
from labeling.seeding import read_example_lines, read_examples, seed_cases
from test_label_errors import decided_store
from test_queue_support import T0, add_scored
from test_seeding import CHAT, SPAM, BagOfWords

C = Case.__table__


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                  "qa_share": 0.0})


def _record(store, item_id):
    from core.labels import current_decisions

    with store.read() as conn:
        return current_decisions(conn, [item_id])[item_id]


# -- the label-error scan -------------------------------------------------------------------------
def test_a_corrected_decision_is_not_queued_as_a_label_error(any_store, taxonomy, cfg):
    """Lena corrected bob's decision (its action) and kept the label the model disputes: the scan
    served her correction to the leads as a new label error ("given spam by lena"), asking again
    what a second look already settled."""
    decided_store(any_store, taxonomy, cfg, 20, {"c5": "spam"})
    fixed = correct(any_store, taxonomy, _record(any_store, "c5")["id"], "lena", "spam",
                    "a promotion after all: label it, do not remove it", action="label")
    assert _record(any_store, "c5")["id"] == fixed["decision_id"]
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=20)
    assert "c5" not in {c["item_id"] for c in out["cases"]}
    assert out["corrected"] == 1
    with any_store.read() as conn:
        assert conn.execute(select(C.c.id).where(C.c.queue == "label-review", C.c.item_id == "c5")).all() == []


def test_a_blind_re_reviews_answer_is_not_queued_as_a_label_error(any_store, taxonomy, cfg):
    """A lead answered a blind re-review of bob's slip and agreed with it: the answer (a qa_audit
    decision superseding bob's) became the label of record, and the scan queued it for the leads."""
    decided_store(any_store, taxonomy, cfg, 20, {"c5": "spam"})
    drawn = draw_rereviews(any_store, cfg, "lena", 1, analyst="bob", seed=1)
    decide(any_store, taxonomy, drawn["case_ids"][0], "lena", "spam", rationale="looks like spam", config=cfg)
    assert _record(any_store, "c5")["kind"] == "qa_audit"
    out = find_label_errors(any_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=20)
    assert "c5" not in {c["item_id"] for c in out["cases"]}
    assert out["corrected"] == 1


def test_an_undone_correction_restores_a_decision_the_scan_judges(sqlite_store, taxonomy, cfg):
    """Only a second look at the same decision is left alone: an undone correction restores the
    first decision, which the scan judges as before."""
    from labeling.undo import undo_last

    decided_store(sqlite_store, taxonomy, cfg, 20, {"c5": "spam"})
    correct(sqlite_store, taxonomy, _record(sqlite_store, "c5")["id"], "bob", "spam", "kept", action="label")
    undo_last(sqlite_store, "bob", cfg, 10 ** 9, now=utcnow())
    assert _record(sqlite_store, "c5")["reviewer"] == "bob"
    out = find_label_errors(sqlite_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=20)
    assert "c5" in {c["item_id"] for c in out["cases"]} and out["corrected"] == 0


def test_the_reason_says_when_the_model_leans_to_the_given_label(sqlite_store, taxonomy, cfg, monkeypatch):
    """Of three labels, a decision whose label the model finds most likely, yet under the label
    quality bar (0.45), was queued as "label error? given spam by bob, model says spam (0.45)":
    the lead read a disagreement where the model only hesitates, and no alternative was named."""
    specs = decided_store(sqlite_store, taxonomy, cfg, 20, {f"c{i}": "scam" for i in range(10)}, flipped_by="carl")
    rows = sorted(s["id"] for s in specs)
    target = rows.index("s3")

    def probs(X, y, n_labels, folds=5, groups=None, seed=0):
        out = np.full((len(y), n_labels), 0.04 / (n_labels - 1))
        out[np.arange(len(y)), y] = 0.96
        given = int(y[target])
        others = [c for c in range(n_labels) if c != given]
        out[target] = 0.0
        out[target, given], out[target, others[0]], out[target, others[1]] = 0.45, 0.20, 0.35
        return out

    monkeypatch.setattr("labeling.label_errors.out_of_fold_probs", probs)
    out = find_label_errors(sqlite_store, taxonomy, cfg, "eng", BagOfWords(), now=T0, max_cases=20)
    (case,) = [c for c in out["cases"] if c["item_id"] == "s3"]
    labels = out["labels"]
    alt = [lab for lab in labels if lab != "spam"][1]  # the 0.35 one
    assert case["given_label"] == "spam" and case["model_label"] == "spam" and case["confidence"] == 0.45
    assert case["alternative"] == alt and case["alternative_confidence"] == 0.35
    with sqlite_store.read() as conn:
        why, predicted = conn.execute(select(C.c.priority_reason, C.c.predicted_label).where(
            C.c.queue == "label-review", C.c.item_id == "s3")).one()
    assert "model says spam" not in why
    assert f"model leans to spam only (0.45), next {alt} (0.35)" in why
    assert predicted == alt  # the suggestion a lead weighs is the alternative, not the decision itself


# -- seeding ------------------------------------------------------------------------------------
def _seed_store(store, taxonomy, cfg):
    add_scored(store, taxonomy, [{"id": f"s{i}", "label": "benign", "p": 0.9, "text": t} for i, t in enumerate(SPAM)]
               + [{"id": f"c{i}", "label": "benign", "p": 0.9, "text": t} for i, t in enumerate(CHAT)])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)


def test_a_seed_keyword_is_masked_in_the_cases_reason(any_store, taxonomy, cfg):
    """A keyword is often a slur: it was written as said into the seed case's priority reason,
    which `cases list`, `next` and the Review screen show on a masked case, unmasked."""
    _seed_store(any_store, taxonomy, cfg)
    out = seed_cases(any_store, taxonomy, cfg, "eng", policy="spam", examples=[], keywords=["WINNER"],
                     embedder=BagOfWords(), uniform_share=0.0, now=T0)
    assert out["seeded"] > 0 and out["items"][0]["keyword"] == "winner"
    with any_store.read() as conn:
        reasons = conn.execute(select(C.c.priority_reason, C.c.meta).where(
            C.c.id.in_([i["case_id"] for i in out["items"]]))).all()
    assert reasons and all("winner" not in why.lower() and mask_text("winner") in why for why, _ in reasons)
    assert all(meta["seed"]["keyword"] == "winner" for _, meta in reasons)  # kept for the engineer, unshown


def test_duplicate_examples_do_not_take_extra_seeds(sqlite_store, taxonomy, cfg):
    """The same example twice (a file with a repeated line, a --query also in the file, or a
    decided item's text from --from-decisions) took two turns of the round-robin: 3 of 4 seeds
    went to one example and "example 2 of 3" was example 1 again."""
    _seed_store(sqlite_store, taxonomy, cfg)
    out = seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=[SPAM[0], f"  {SPAM[0]} ", CHAT[0]],
                     embedder=BagOfWords(), neighbours=4, uniform_share=0.0, max_similarity=1.0, now=T0)
    assert out["examples"] == 2
    by_example = sorted(i["example"] for i in out["items"])
    assert by_example == [1, 1, 2, 2]
    assert {i["item_id"][0] for i in out["items"] if i["example"] == 2} == {"c"}


def test_seeding_twice_creates_no_second_case_and_keeps_the_order(any_store, taxonomy, cfg):
    _seed_store(any_store, taxonomy, cfg)
    kw = dict(policy="spam", examples=[SPAM[0], CHAT[0]], embedder=BagOfWords(), neighbours=6, now=T0)
    first = seed_cases(any_store, taxonomy, cfg, "eng", **kw)
    second = seed_cases(any_store, taxonomy, cfg, "eng", **kw)
    assert second["created"] == 0 and second["moved"] == first["created"] + first["moved"]
    assert [i["item_id"] for i in second["items"]] == [i["item_id"] for i in first["items"]]
    with any_store.read() as conn:
        per_item = conn.execute(select(C.c.item_id).where(C.c.item_id.is_not(None))).scalars().all()
        head = conn.execute(select(C.c.item_id).where(C.c.queue == second["queue"], C.c.state == "open")
                            .order_by(C.c.priority.desc()).limit(len(second["items"]))).scalars().all()
    assert len(per_item) == len(set(per_item))
    assert head == [i["item_id"] for i in second["items"]]


@pytest.mark.parametrize("suffix,body,message", [
    (".csv", "id,text\n1," + "x" * 10_001 + "\n", "line 2, column 'text': example text is 10,001 characters"),
    (".tsv", "text\tid\n\t1\n" + "y" * 10_001 + "\t2\n", "line 3, column 'text': example text is"),
    # a row whose quoted cell runs over two lines is named by its first line, as an editor shows it
    (".csv", 'text,id\n"a\nb",1\n"' + "x" * 10_001 + '\ny",2\n', "line 4, column 'text': example text is 10,003"),
])
def test_a_table_examples_files_error_names_the_column(tmp_path, suffix, body, message):
    p = tmp_path / f"ex{suffix}"
    p.write_text(body, encoding="utf-8")
    with pytest.raises(QueueError) as err:
        read_examples(str(p))
    assert str(err.value).startswith(f"{p} {message}") and "\n" not in str(err.value)


def test_a_keywords_files_errors_say_keywords(tmp_path):
    """`--keywords FILE` read through the examples reader said "no such examples file" and "no
    examples" of a keywords file."""
    missing, empty = tmp_path / "words.txt", tmp_path / "blank.txt"
    empty.write_text("\n  \n# a comment\n", encoding="utf-8")
    with pytest.raises(QueueError, match=f"^{missing}: no such keywords file$"):
        read_example_lines(str(missing), what="keywords")
    with pytest.raises(QueueError, match=r"^.*blank\.txt: no keywords \(one per line\)$"):
        read_example_lines(str(empty), what="keywords")
    with pytest.raises(QueueError, match=r"^.*blank\.txt: no examples \(one text per line\)$"):
        read_examples(str(empty))


def test_a_utf16_examples_file_is_named_as_such(tmp_path):
    """A spreadsheet's "Unicode text" export is UTF-16: refused as "invalid start byte at byte 0",
    which did not say what to do."""
    p = tmp_path / "ex.txt"
    p.write_bytes("win a prize\n".encode("utf-16"))
    with pytest.raises(QueueError, match=r"line 1: not UTF-8 text \(.*\) \(UTF-16, by its byte-order mark: save it as "
                                         r"UTF-8\)$"):
        read_examples(str(p))


def test_resolving_a_case_with_a_corrupt_meta_is_a_one_line_refusal(any_store, taxonomy, cfg):
    """A label-review case whose meta is no object (a hand-edited row) failed `label-errors resolve`
    with AttributeError ('list' object has no attribute 'get'), a traceback."""
    from sqlalchemy import insert

    from labeling.label_errors import resolve_label_error

    with any_store.begin() as conn:
        case_id = conn.execute(insert(C).values(queue="label-review", state="open", priority=0.0, meta=["x"],
                                                created_at=T0, updated_at=T0).returning(C.c.id)).scalar_one()
    with pytest.raises(QueueError, match=f"^case {case_id} is not a label-error re-review case$"):
        resolve_label_error(any_store, taxonomy, cfg, case_id, "lena", "spam", "why")


def test_the_cli_names_an_unknown_policy_before_reading_the_examples(tmp_path, taxonomy):
    """`workbench seed --policy spma --examples FILE` reported the file's faults line by line and
    only then the misspelt policy; with --from-decisions it said "no item is decided as spma yet"."""
    from click.testing import CliRunner

    from workbench.cli import cli

    bad = tmp_path / "ex.txt"
    bad.write_bytes(b"win a prize\n\xff\xfe broken\n")
    for args in (["--examples", str(bad)], ["--from-decisions"]):
        res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "seed", "--policy", "spma", *args])
        assert res.exit_code != 0 and "unknown policy 'spma'" in res.output, res.output
        assert "Traceback" not in res.output and "ex.txt" not in res.output


def test_the_review_line_names_the_next_label_when_the_model_leans_to_the_given_one():
    """The Review screen's re-review line: 'model spam (0.45)' under a given spam says nothing of what
    to change to; the packet carries the alternative and the line names it then, only then."""
    from workbench.ui.render import label_review_line

    lean = {"reviewer": "lena", "given_label": "spam", "model_label": "spam", "confidence": 0.45,
            "quality": 0.3, "alternative": "scam", "alternative_confidence": 0.35}
    line = label_review_line({"label_review": lean})
    assert "<b>spam</b> (0.45), next <b>scam</b> (0.35), label quality 0.30" in line
    other = label_review_line({"label_review": {**lean, "model_label": "scam", "confidence": 0.8}})
    assert "next" not in other and "<b>scam</b> (0.80), label quality" in other
