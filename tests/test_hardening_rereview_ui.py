"""A label-review case on the Review screen starts from the decision under review.

The screen showed the model's label with the label's default action and reference, so a lead
who kept the analyst's label of a decision with another action (ann: scam / suspend_author,
default block_sender) saved a "correction" to the default action, and ann was counted as having
erred. The form now shows the decision under review's label, action and reference, says so, and
keeping them confirms it; changing the action is a correction that carries the new one.
"""
from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from core.config import config_dir
from core.labels import current_labels
from core.schema import Case
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.queue_config import load_queue_config
from test_hardening_known import _events, _review_tab
from test_queue_support import add_scored

C = Case.__table__


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _queued_for_re_review(store, taxonomy, cfg, items: tuple[str, ...]) -> dict[str, int]:
    """The model says spam of each item; ann overrode it to scam / suspend_author (not the default);
    a scan queued each decision for re-review. Her decision ids by item."""
    add_scored(store, taxonomy, [{"id": i, "label": "spam", "p": 0.9} for i in items])
    build_cases(store, taxonomy, cfg, progress=False)
    with store.read() as conn:
        case = dict(conn.execute(select(C.c.item_id, C.c.id)).all())
    ann = {i: DEC.decide(store, taxonomy, case[i], "ann", "scam", action="suspend_author", rationale="a fake prize",
                         config=cfg)["decision_ids"][0] for i in items}
    with store.begin() as conn:
        for n, i in enumerate(items):
            conn.execute(insert(C).values(
                item_id=i, campaign_id=None, queue="label-review", state="open", priority=0.9 - n / 10,
                priority_reason="label error?", predicted_label="spam", is_audit=False,
                meta={"label_error": {"decision_id": ann[i], "given_label": "scam", "model_label": "spam",
                                      "reviewer": "ann"}}))
    return ann


def _claim(fns) -> tuple[dict, str, str, str, str]:
    """The next label-review case: its packet, header, and the label, action and reference shown."""
    out = fns["claim"]("lena", "label-review", None, None, None)
    action = out[6]["value"] if isinstance(out[6], dict) else out[6]
    return out[0], out[2], out[5], action, out[7]


def _submit(fns, packet, label, action, ref, why) -> None:
    fns["submit"](packet, None, "lena", "label-review", label, action, ref, why, None, str(packet["case"]["id"]),
                  None, None)


def _outcome(store, case_id: int) -> dict:
    with store.read() as conn:
        return conn.execute(select(C.c.meta).where(C.c.id == case_id)).scalar()["label_error"]


def test_keeping_a_re_reviewed_decisions_custom_action_confirms_it(sqlite_store, taxonomy, cfg):
    ann = _queued_for_re_review(sqlite_store, taxonomy, cfg, ("a1",))
    sent = len(_events(sqlite_store))
    fns = _review_tab(sqlite_store)
    scam = taxonomy.policies["scam"]
    assert scam.default_action != "suspend_author"
    packet, header, label, action, ref = _claim(fns)
    # ann's label, action and reference, not the model's label nor the label's default action
    assert (packet["case"]["item_id"], label, action, ref) == ("a1", "scam", "suspend_author", scam.policy_ref)
    assert f"The form shows ann&#x27;s decision under review (scam / suspend_author / {scam.policy_ref})" in header
    _submit(fns, packet, label, action, ref, "right: a scam")
    info = _outcome(sqlite_store, packet["case"]["id"])
    assert (info["outcome"], info["correction_id"]) == ("confirmed", None)
    record = current_labels(sqlite_store, ["a1"])["a1"]
    assert (record["id"], record["action"]) == (ann["a1"], "suspend_author")  # ann's decision stands
    assert len(_events(sqlite_store)) == sent  # nothing sent to the platform


def test_changing_a_re_reviewed_decisions_action_is_a_correction_carrying_it(sqlite_store, taxonomy, cfg):
    ann = _queued_for_re_review(sqlite_store, taxonomy, cfg, ("a1",))
    fns = _review_tab(sqlite_store)
    packet, _, label, action, ref = _claim(fns)
    assert (label, action) == ("scam", "suspend_author")
    # picking another label and then ann's again brings back her action and reference
    spam = taxonomy.policies["spam"]
    other = fns["on_label"]("spam", packet)
    assert (other[0]["value"], other[1]) == (spam.default_action, spam.policy_ref)
    back = fns["on_label"]("scam", packet)
    assert (back[0]["value"], back[1]) == ("suspend_author", ref)
    _submit(fns, packet, "scam", "remove", ref, "a warning is enough")
    info = _outcome(sqlite_store, packet["case"]["id"])
    record = current_labels(sqlite_store, ["a1"])["a1"]
    assert info["outcome"] == "corrected" and info["correction_id"] == record["id"]
    assert (record["reviewer"], record["label"], record["action"], record["supersedes_id"]) == \
        ("lena", "scam", "remove", ann["a1"])


def test_an_ordinary_case_still_starts_from_the_model_and_the_defaults(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": "b1", "label": "spam", "p": 0.9}])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    with sqlite_store.read() as conn:
        queue = conn.execute(select(C.c.queue)).scalar_one()
    fns = _review_tab(sqlite_store)
    out = fns["claim"]("lena", queue, None, None, None)
    spam = taxonomy.policies["spam"]
    assert (out[0]["case"]["item_id"], out[5], out[6]["value"], out[7]) == \
        ("b1", "spam", spam.default_action, spam.policy_ref)
    assert "decision under review" not in out[2]
    assert DEC.decision_under_review(sqlite_store, out[0]["case"]["id"], cfg) is None
