"""The Review tab answers every key in one line, whatever the store or a stored row holds (third
audit of the analyst's screen). The tab's callbacks are called directly (no browser):

- a model's label the taxonomy no longer has failed the whole screen (KeyError), on every `n`;
- a NaN or a text among a prediction's scores, or a re-review's confidence, failed the side
  column's bars: the case stayed claimed and never showed;
- a key sent twice with the tab's old state answered "Not saved" for the case its first press
  saved, and put that decided case back on screen over the next one;
- a store that fails after a decision was saved turned the answer into a bare "Error" (the "N
  left" line, the context panel); on undo, skip, release, open, reveal, the heartbeat and the
  counts timer a busy store was a bare "Error" too;
- "Open case #" with 99999999999999999999 failed in the store's driver;
- `r` revealed (audited, counted in the exposure) a case the analyst had lost meanwhile;
- a note or tag the store failed to save raised instead of a one-line warning.
"""
from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from core.schema import AuditEvent, Case, Prediction
from labeling.claims import claim_case, release
from labeling.decisions import decide
from test_review_screen import case_of, seed
from test_ui import decisions

SECRET = "SELECT secret_column"
# outputs of a key (review.wired, no queue switch): the case's, then the "N left" line and the context panel
PACKET, HEADER, SIDE, LABEL, LABEL_ERR, BUTTONS_ERR, LEASE, AHEAD, STATUS, PANEL = 0, 2, 4, 5, 8, 10, 11, 12, 14, 16


@pytest.fixture
def store(any_store, make_scored, taxonomy, queue_config):
    return seed(any_store, make_scored, taxonomy, queue_config)


def _tab(store, queue: str = "spam") -> dict:
    """The Review tab's callbacks by name (no accounts: the analyst box names the actor)."""
    import gradio as gr

    from workbench.context import AppContext
    from workbench.ui.review import build_review_tab

    with gr.Blocks() as demo:
        build_review_tab(AppContext(store=store), demo, "alice", queue)
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    return {getattr(f.fn, "__name__", ""): f.fn for f in fns}


def _busy(*args, **kwargs):
    raise OperationalError(SECRET, {"v": "secret value"}, Exception("database is locked"))


def _patch_everywhere(monkeypatch, name: str) -> None:
    """`name` failing as a locked database in every module of the Review tab that calls it."""
    import workbench.ui.context_panel as context_panel
    import workbench.ui.review as review
    import workbench.ui.review_guard as review_guard

    for module in (review, review_guard, context_panel):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, _busy)


def _text(out) -> str:
    """Every output of a key as the page reads it (entities decoded)."""
    return html.unescape(" ".join(str(o) for o in out))


def _claim(fns, queue: str = "spam"):
    out = fns["claim"]("alice", queue, None, None, None)
    assert out[PACKET] is not None, _text(out)
    return out, out[PACKET]["case"]["id"], out[AHEAD]


def _reveals(store) -> int:
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "text.reveal")
                            ).scalar_one()


# -- 1. a model's label the taxonomy no longer has ----------------------------------------------------------

def test_a_retired_model_label_shows_the_case_with_no_label_picked(store):
    with store.begin() as conn:
        conn.execute(update(Prediction.__table__).where(Prediction.label == "spam").values(label="retired-policy"))
    fns = _tab(store)
    out, shown, ahead = _claim(fns)
    assert out[LABEL] is None
    assert "The model's label (retired-policy) is not one of the taxonomy's labels" in _text([out[HEADER]])
    out = fns["confirm"](out[PACKET], None, "alice", "spam", None, None, ahead, str(shown), shown, None)
    assert "Not saved: the model's label (retired-policy) is not one of the taxonomy" in _text([out[LABEL_ERR]])
    assert decisions(store) == []
    packet = fns["claim"]("alice", "spam", None, shown, None)[PACKET]  # the case as the tab holds it
    out = fns["submit"](packet, None, "alice", "spam", "spam", "remove", "", "the model's label is retired", ahead,
                        str(shown), shown, None)
    assert [(d["case_id"], d["label"]) for d in decisions(store)] == [(shown, "spam")], _text(out[2:12])


# -- 2. a model's numbers as stored -----------------------------------------------------------------------

def test_non_finite_or_text_scores_show_the_case(store):
    nan = float("nan") if store.engine.dialect.name == "sqlite" else "NaN"  # PostgreSQL's JSON has no NaN
    with store.begin() as conn:
        conn.execute(update(Prediction.__table__).where(Prediction.label == "spam").values(
            scores={"spam": "high", "benign": 0.1, "scam": nan}, flags=["not", "a", "mapping"]))
    fns = _tab(store)
    out, shown, ahead = _claim(fns)
    assert "Model says <b>spam</b>" in out[SIDE] and out[SIDE].count("wb-bar") == 1 and "nan" not in out[SIDE]
    out = fns["confirm"](out[PACKET], None, "alice", "spam", None, None, ahead, str(shown), shown, None)
    assert [d["case_id"] for d in decisions(store)] == [shown]


def test_a_re_reviews_confidence_as_text_shows_the_case(store, taxonomy, queue_config):
    from sqlalchemy import insert

    first = case_of(store, "reports:b1")
    claim_case(store, first, "ann", queue_config)
    made = decide(store, taxonomy, first, "ann", "spam", config=queue_config)["decision_ids"][0]
    with store.begin() as conn:
        conn.execute(insert(Case.__table__).values(
            item_id="reports:b1", campaign_id=None, queue="label-review", state="open", priority=0.9,
            priority_reason="label error?", predicted_label="spam", is_audit=False,
            meta={"label_error": {"decision_id": made, "given_label": "spam", "model_label": "scam", "reviewer": "ann",
                                  "confidence": "very", "quality": [1]}}))
    fns = _tab(store, "label-review")
    out = fns["claim"]("lena", "label-review", None, None, None)
    assert out[PACKET] is not None and "Re-review of <b>ann</b>" in _text([out[HEADER]]), _text(out)[:500]
    assert "very" not in _text([out[HEADER]])


# -- 3. a key sent twice with the tab's old state ----------------------------------------------------------

@pytest.mark.parametrize("key", ["confirm", "submit"])
def test_a_decision_key_sent_twice_saves_once_and_both_answers_show_the_next_case(store, key):
    fns = _tab(store)
    out, shown, ahead = _claim(fns)
    args = ([out[PACKET], None, "alice", "spam", None, None, ahead, str(shown), shown, None] if key == "confirm" else
            [out[PACKET], None, "alice", "spam", "spam", "remove", "", "", ahead, str(shown), shown, None])
    first, again = fns[key](*args), fns[key](*args)  # the second request carries the tab's state from before the first
    assert first[PACKET]["case"]["id"] == ahead and again[PACKET]["case"]["id"] == ahead, _text(again)[:600]
    said = _text([again[HEADER]])
    assert f"Case {shown} was saved already (a key sent twice, or another tab): nothing was saved twice" in said
    assert "Not saved" not in _text(again) and "wb-lost" not in str(again[LEASE])
    assert [d["case_id"] for d in decisions(store)] == [shown]


def test_an_escalation_sent_twice_is_filed_once_and_both_answers_show_the_next_case(store):
    fns = _tab(store)
    out, shown, ahead = _claim(fns)
    args = [out[PACKET], None, "alice", "spam", "a wave of these", ahead, str(shown), shown, None]
    first, again = fns["escalate"](*args), fns["escalate"](*args)
    assert first[PACKET]["case"]["id"] == ahead and again[PACKET]["case"]["id"] == ahead, _text(again)[:600]
    assert f"Case {shown} was escalated already" in _text([again[HEADER]]) and "Not escalated" not in _text(again)
    with store.read() as conn:
        events = conn.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "case.escalate", AuditEvent.entity_id == str(shown))).scalar_one()
    assert events == 1


# -- 4. a store that fails ----------------------------------------------------------------------------------

def test_a_store_failing_after_the_save_still_says_saved_in_one_line(store, monkeypatch):
    fns = _tab(store)
    out, shown, ahead = _claim(fns)
    for name in ("queue_counts", "case_context", "preferences", "exposure"):
        _patch_everywhere(monkeypatch, name)
    out = fns["confirm"](out[PACKET], None, "alice", "spam", None, None, ahead, str(shown), shown, None)
    assert f"Saved case {shown}: spam / remove" in _text([out[HEADER]]) and out[PACKET]["case"]["id"] == ahead
    assert "the store is busy or unavailable (Exception)" in _text([out[STATUS]]) and "Context not shown" in out[PANEL]
    assert "secret" not in _text(out) and [d["case_id"] for d in decisions(store)] == [shown]
    _patch_everywhere(monkeypatch, "queue_status")  # the counts timer, every few seconds
    line, _, choices = fns["refresh_counts"]("alice", "spam", None)
    assert "the store is busy or unavailable (Exception)" in _text([line]) and "secret" not in _text([line, choices])


def test_a_store_failing_on_any_key_is_one_line_and_changes_nothing(store, monkeypatch):
    import workbench.ui.review as review

    fns = _tab(store)
    out, shown, ahead = _claim(fns)
    packet = out[PACKET]
    for name in ("undo_last", "skip", "release", "reveal_text", "renew", "claim_case"):
        monkeypatch.setattr(review, name, _busy)
    for key, args in (("undo", (packet, "alice", "spam", ahead, str(shown), shown, None)),
                      ("skip_case", (packet, "alice", "spam", ahead, str(shown), shown, None)),
                      ("release_case", (packet, "alice", "spam", ahead, str(shown), shown, None)),
                      ("open_case", ("alice", "spam", str(ahead), ahead, shown, None)),
                      ("reveal", (packet, "alice", "spam", str(shown), None))):
        said = _text(fns[key](*args))
        assert "the store is busy or unavailable (Exception)" in said and "secret" not in said, (key, said[:400])
    lease, held, ahead_now, _ = fns["heartbeat"](packet, None, ahead, "alice", 0, None)
    assert "wb-lost" not in str(lease) and ahead_now != None  # noqa: E711 - a gr.update(): the hold is as it was
    with store.read() as conn:
        rows = dict(conn.execute(select(Case.id, Case.claimed_by).where(Case.id.in_([shown, ahead]))).all())
    assert rows == {shown: "alice", ahead: "alice"} and decisions(store) == []


@pytest.mark.parametrize("typed", ["99999999999999999999", "#9223372036854775808"])
def test_a_case_number_the_store_cannot_hold_is_refused_in_one_line(store, typed):
    out = _tab(store)["open_case"]("alice", "spam", typed, None, None, None)
    assert "Cannot open case: the case number must be a whole number" in _text([out[BUTTONS_ERR]]), _text(out)[:400]
    assert out[PACKET] is None


def test_a_note_the_store_fails_to_save_is_one_warning(store, monkeypatch):
    import gradio as gr

    import workbench.ui.context_panel as context_panel
    from test_ui_tabs_fixes import _blocks_fns
    from workbench.context import AppContext

    said: list[str] = []
    monkeypatch.setattr(gr, "Warning", lambda message, *a, **k: said.append(message))
    monkeypatch.setattr(context_panel, "add_note", _busy)
    monkeypatch.setattr(context_panel, "add_tag", _busy)
    fns = _blocks_fns(lambda who, tab: context_panel.build_context_panel(AppContext(store=store), gr.State(), who))
    packet = {"case": {"id": case_of(store, "reports:b1"), "claimed_by": "alice"}, "item": {"id": "reports:b1"}}
    assert fns["on_note"][0](packet, "item", "a note", "alice", None) == (gr.update(), gr.update())
    fns["add_tag_cb"][0](packet, "item", "a-tag", "alice", None)
    assert [s.split(":")[0] for s in said] == ["Note not added", "Tag not added"]
    assert all("the store is busy or unavailable (Exception)" in s and "secret" not in s for s in said), said


# -- 5. a reveal of a case lost meanwhile ------------------------------------------------------------------

@pytest.mark.parametrize("how", ["reassigned", "decided", "released"])
def test_a_reveal_of_a_case_lost_meanwhile_is_refused_and_not_counted(store, taxonomy, queue_config, how):
    fns = _tab(store, "hate-harassment")
    out, shown, ahead = _claim(fns, "hate-harassment")
    assert out[PACKET]["masked"]
    release(store, shown, "alice", queue_config)
    if how != "released":
        claim_case(store, shown, "bob", queue_config)
    if how == "decided":
        decide(store, taxonomy, shown, "bob", "hate", config=queue_config)
    said = _text(fns["reveal"](out[PACKET], "alice", "hate-harassment", str(shown), None))
    assert f"Not revealed: case {shown} is no longer held by alice" in said, said[:400]
    assert "GRUBWORMS" not in said.upper() and _reveals(store) == 0
