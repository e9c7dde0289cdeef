"""The Appeals and Operations tabs attacked through their callbacks (12-07): a text decided as
hate since its appeal was filed, shown unmasked beside the appeal; a lead confirming a decision
another lead corrected while they read the appeal (a label they never saw); a resolve for a case
other than the one on screen; what was typed for one appeal resolving the next; the Resolve
button pressed twice; a data dir that cannot take the Operations chart; a reason or rationale
that is no text."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from core.schema import Decision
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.errors import DecisionError
from test_campaign_bulk_integrity import _App
from test_queue_support import T0, add_scored
from test_ui_tabs_fixes import _blocks_fns

WORD = "SECRETSLUR"
SCAM = {"benign": 0.05, "spam": 0.02, "scam": 0.90, "hate": 0.01, "harassment": 0.02}
KEEP = {"__type__": "update"}


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _filed(store, taxonomy, cfg, item_id="a", text="claim your prize", rationale="prize lure") -> int:
    """ann decided `item_id` scam / block_sender; its author appealed: the appeal's case id."""
    add_scored(store, taxonomy, [{"id": item_id, "label": "scam", "scores": SCAM, "text": text}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    own = next_case(store, "ann", "fraud", now=T0, config=cfg)
    DEC.decide(store, taxonomy, own["id"], "ann", "scam", "block_sender", rationale=rationale, now=T0, config=cfg)
    return APP.appeal(store, item_id, "user-1", f"I only quoted {WORD}" if WORD in text else "my bank", taxonomy,
                      now=T0, config=cfg)["id"]


def _decision_of(store, item_id) -> int:
    with store.read() as conn:
        return conn.execute(select(func.max(Decision.id)).where(Decision.item_id == item_id)).scalar()


def _appeal_decisions(store) -> list[tuple]:
    with store.read() as conn:
        return [tuple(r) for r in conn.execute(select(Decision.item_id, Decision.reviewer, Decision.label,
                                                      Decision.rationale).where(Decision.kind == "appeal")
                                               .order_by(Decision.id)).all()]


class _Tab:
    """The Appeals tab's callbacks, each answering by output (elem_id; "state" for the tab's state)."""

    def __init__(self, app):
        from workbench.ui.appeals import build_appeals_tab

        self.fns = _blocks_fns(lambda who, tab: build_appeals_tab(app, tab, who))

    def __call__(self, name, *args) -> dict:
        fn, outputs, _ = self.fns[name]
        return {o or "state": v for o, v in zip(outputs, fn(*args))}


# --- 1. masked by the decision of record, not only the one appealed ----------------------------

def test_a_text_decided_as_hate_since_its_appeal_was_filed_is_masked(any_store, taxonomy, cfg, review_settings):
    """The model said scam, ann decided scam, the author appealed, then a lead corrected the
    decision to hate. The Review screen masks the text (its decided label); the Appeals tab read
    only the label appealed and showed it, the appeal's reason and the correction's rationale raw."""
    from core.principals import Principal

    case = _filed(any_store, taxonomy, cfg, text=f"send money you {WORD}")
    DEC.correct(any_store, taxonomy, _decision_of(any_store, "a"), "bob", "hate", f"calls them {WORD}",
                action="remove", policy_ref=taxonomy.policies["hate"].policy_ref)
    [listed] = APP.open_appeals(any_store, review_settings, config=cfg, principal=Principal("lee", "lead"))
    assert listed["masked"] and WORD not in json.dumps(listed)  # was: masked False, the text raw
    tab = _Tab(_App(any_store, taxonomy, cfg))
    panes = tab("show", case, "lee", None)
    shown = panes["wb-appeal-item"] + panes["wb-appeal-original"] + panes["wb-appeal-reason"]
    assert WORD not in shown and "S•••" in shown
    assert "Corrected since the appeal was filed" in panes["wb-appeal-original"]  # the hate decision, masked
    revealed = tab("reveal", case, "lee", None, panes["state"])  # a counted reveal unmasks it
    assert WORD in revealed["wb-appeal-item"] and f"calls them {WORD}" in revealed["wb-appeal-original"]


# --- 2. resolved against the decision the lead read -------------------------------------------

def test_a_decision_corrected_while_the_lead_reads_the_appeal_is_not_confirmed_unseen(any_store, taxonomy, cfg):
    """lou opened the appeal (ann's scam / block_sender); meanwhile bob corrected it to spam. lou's
    "confirm" recorded spam / label as the appeal's outcome: a label lou never read."""
    case = _filed(any_store, taxonomy, cfg)
    tab = _Tab(_App(any_store, taxonomy, cfg))
    seen = tab("show", case, "lou", None)["state"]
    appealed = _decision_of(any_store, "a")
    DEC.correct(any_store, taxonomy, appealed, "bob", "spam", "bulk promo, not fraud", action="label",
                policy_ref=taxonomy.policies["spam"].policy_ref)
    said = tab("resolve", case, "confirm", "", "", "checked the sender", "lou", None, seen)
    assert said["wb-appeal-result"].replace("\\", "").startswith(
        f"**Not resolved:** the decision on item 'a' changed since the appeal was shown (decision {appealed} "
        f"then, {appealed + 1} by bob now)")
    assert _appeal_decisions(any_store) == []  # was: ('a', 'lou', 'spam', ...) confirmed unseen
    cleared = tab("show", None, "lou", None, said["state"])  # Refresh appeals, then the appeal picked again
    again = tab("show", case, "lou", None, cleared["state"])  # the correction is on screen
    assert "now decision #" in again["wb-appeal-original"] and "**spam / label** by **bob**" in again[
        "wb-appeal-original"]
    said = tab("resolve", case, "confirm", "", "", "checked the sender", "lou", None, again["state"])
    assert said["wb-appeal-result"].startswith(f"**Saved:** case {case}: decision confirmed")
    assert _appeal_decisions(any_store) == [("a", "lou", "spam", "checked the sender")]


def test_the_service_refuses_a_decision_other_than_the_one_seen(sqlite_store, taxonomy, cfg):
    case = _filed(sqlite_store, taxonomy, cfg)
    appealed = _decision_of(sqlite_store, "a")
    DEC.correct(sqlite_store, taxonomy, appealed, "bob", "spam", "promo", action="label",
                policy_ref=taxonomy.policies["spam"].policy_ref)
    with pytest.raises(DecisionError, match=r"changed since the appeal was shown .*nothing was saved"):
        APP.resolve_appeal(sqlite_store, taxonomy, case, "lou", "reverse", "a bank", config=cfg,
                           seen_decision=appealed)
    assert _appeal_decisions(sqlite_store) == []
    out = APP.resolve_appeal(sqlite_store, taxonomy, case, "lou", "reverse", "a bank", config=cfg,
                             seen_decision=appealed + 1)
    assert out["upheld"] and _appeal_decisions(sqlite_store) == [("a", "lou", "benign", "a bank")]


# --- 3. the appeal on screen, and only what was typed for it -----------------------------------

def test_resolving_needs_the_appeal_on_screen(sqlite_store, taxonomy, cfg):
    """A resolve for another case than the one shown (a pick whose Show failed or had not yet
    come back, a client's own id) resolved it unread."""
    first = _filed(sqlite_store, taxonomy, cfg, "a")
    other = _filed(sqlite_store, taxonomy, cfg, "b")
    tab = _Tab(_App(sqlite_store, taxonomy, cfg))
    seen = tab("show", first, "lou", None)["state"]
    said = tab("resolve", other, "reverse", "", "", "a real shop", "lou", None, seen)
    assert said["wb-appeal-result"] == (f"**Not resolved:** case {other} is not the appeal shown: pick it and read "
                                        "it before resolving")
    said = tab("resolve", other, "reverse", "", "", "a real shop", "lou", None, {})  # nothing on screen yet
    assert said["wb-appeal-result"].startswith(f"**Not resolved:** case {other} is not the appeal shown")
    assert _appeal_decisions(sqlite_store) == []


def test_another_appeal_picked_starts_its_inputs_afresh(sqlite_store, taxonomy, cfg):
    """The outcome, label, action and rationale chosen for one appeal stayed when the next was
    picked (a refusal leaves them): Resolve then reversed the next appeal with the first one's reason."""
    first = _filed(sqlite_store, taxonomy, cfg, "a")
    other = _filed(sqlite_store, taxonomy, cfg, "b")
    tab = _Tab(_App(sqlite_store, taxonomy, cfg))
    seen = tab("show", first, "lou", None)["state"]
    again = tab("show", first, "lou", None, seen)  # the same appeal shown again: what was typed stays
    assert [again[k] for k in ("wb-appeal-label", "wb-appeal-action", "wb-appeal-outcome",
                               "wb-appeal-rationale")] == [KEEP] * 4
    revealed = tab("reveal", first, "lou", None, seen)
    assert not {"wb-appeal-label", "wb-appeal-action", "wb-appeal-outcome", "wb-appeal-rationale"} & set(revealed)
    nxt = tab("show", other, "lou", None, seen)
    assert nxt["wb-appeal-outcome"]["value"] is None and nxt["wb-appeal-rationale"]["value"] == ""
    assert nxt["wb-appeal-label"]["value"] is None  # nothing pre-set: the lead picks the outcome and label
    assert nxt["wb-appeal-action"]["value"] is None and nxt["state"]["case"] == other


def test_resolve_pressed_twice_keeps_the_saved_line(sqlite_store, taxonomy, cfg):
    """The second press (queued behind the first, with the same pick) replaced "Saved" with
    "Not resolved: case N is decided, not waiting for a decision"."""
    case = _filed(sqlite_store, taxonomy, cfg)
    tab = _Tab(_App(sqlite_store, taxonomy, cfg))
    seen = tab("show", case, "lou", None)["state"]
    first = tab("resolve", case, "confirm", "", "", "checked", "lou", None, seen)
    assert first["wb-appeal-result"].startswith(f"**Saved:** case {case}")
    second = tab("resolve", case, "confirm", "", "", "checked", "lou", None, first["state"])
    assert second["wb-appeal-result"] == KEEP and second["state"] == first["state"]
    assert tab("show", None, "lou", None, second["state"])["state"] == first["state"]  # the pick cleared after it
    assert _appeal_decisions(sqlite_store) == [("a", "lou", "scam", "checked")]


# --- 4. the Operations chart on a data dir that cannot take it ----------------------------------

def test_a_data_dir_that_cannot_take_the_chart_still_shows_the_kpis(sqlite_store, taxonomy, cfg):
    from workbench.ui.operations import build_operations_tab

    _filed(sqlite_store, taxonomy, cfg)
    plots = sqlite_store.data_dir / "plots"
    if plots.exists():
        for f in plots.iterdir():
            f.unlink()
        plots.rmdir()
    plots.write_text("not a folder")  # as a full or read-only disk: the chart cannot be written
    kpis = _blocks_fns(lambda who, tab: build_operations_tab(_App(sqlite_store, taxonomy, cfg), tab))["kpis"][0]
    when, summary, queues, _, _, chart = kpis()  # was: FileExistsError, Gradio's bare "Error"
    assert when.startswith("As of ") and when.endswith(
        "Chart not drawn: cannot write plots/operations.png in the data dir (File exists).")
    assert "\n" not in when and summary[0][0] == "backlog" and queues and chart is None
    assert plots.read_text() == "not a folder"


# --- 5. a reason or rationale that is no text ----------------------------------------------------

@pytest.mark.parametrize("bad", [["my bank"], 7, {"a": 1}])
def test_a_reason_or_rationale_that_is_no_text_is_refused(sqlite_store, taxonomy, cfg, bad):
    case = _filed(sqlite_store, taxonomy, cfg)
    with pytest.raises(DecisionError, match=f"a rationale must be text, not {type(bad).__name__}"):
        APP.resolve_appeal(sqlite_store, taxonomy, case, "lou", "confirm", bad, config=cfg)  # was: AttributeError
    APP.resolve_appeal(sqlite_store, taxonomy, case, "lou", "confirm", "checked", config=cfg)
    with pytest.raises(DecisionError, match=f"an appeal's reason must be text, not {type(bad).__name__}"):
        APP.appeal(sqlite_store, "a", "user-2", bad, taxonomy, config=cfg)
    assert _appeal_decisions(sqlite_store) == [("a", "lou", "scam", "checked")]
