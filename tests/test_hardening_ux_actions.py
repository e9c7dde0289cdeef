"""What a browser audit at 1366x768 found acting on the tabs: `c` on a label-review case spoke of
the model's label; the Queue list took free text; controls a role cannot use were enabled and
refused only after a click (below the fold); the Campaign id box started at 0 and Apply named a
CLI step leads lack; the Appeals outcome and reversal label were pre-set; the Models tab kept
"Pick a version first." and a blank plot; the queue list's counts lagged the status line; `c`
with no case on screen claimed one, so `c c` decided a case unread."""
from __future__ import annotations

import html
import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from core.config import config_dir
from core.schema import Case, Decision
from labeling.cases import build_cases
from labeling.label_errors import find_label_errors
from labeling.queue_config import load_queue_config
from test_campaign_bulk_integrity import _App, _camp
from test_hardening_appeals_ops_ui import _filed, _Tab
from test_label_errors import decided_store
from test_queue_support import T0, add_scored
from test_seeding import BagOfWords
from test_ui import _free_port, _sign_in
from test_ui_tabs_fixes import _Accounts, _blocks_fns, _campaigns, _models

PACKET, LABEL, ACTION = 0, 5, 6


@pytest.fixture
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                 "calibration_sets": []})


def _review(store, queue: str = "spam", app=None) -> dict:
    """The Review tab's callbacks by name, and its components by elem_id."""
    import gradio as gr

    from workbench.context import AppContext
    from workbench.ui.review import build_review_tab

    with gr.Blocks() as demo:
        build_review_tab(app or AppContext(store=store), demo, "alice", queue)
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    out = {getattr(f.fn, "__name__", ""): f.fn for f in fns}
    out["_blocks"] = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    return out


def _decisions(store) -> list[dict]:
    with store.read() as conn:
        return [dict(r) for r in conn.execute(select(Decision.__table__).order_by(Decision.id)).mappings()]


def _text(value) -> str:
    """Every output as the page reads it (entities decoded)."""
    return html.unescape(" ".join(str(v) for v in (value if isinstance(value, (list, tuple)) else [value])))


# -- 1. `c` on a label-review case confirms the decision under review -------------------------------

def test_c_on_a_label_review_case_confirms_the_decision_under_review(sqlite_store, taxonomy):
    qcfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": [],
                                                                                 "qa_share": 0.0})
    decided_store(sqlite_store, taxonomy, qcfg, 20, {"s3": "benign"})  # bob's slip on s3: spam decided benign
    find_label_errors(sqlite_store, taxonomy, qcfg, "eng", BagOfWords(), now=T0, max_cases=1)
    fns = _review(sqlite_store, "label-review")
    out = fns["claim"]("lena", "label-review", None, None, None)
    packet, label, action = out[PACKET], out[LABEL], out[ACTION]["value"]
    assert packet["case"]["item_id"] == "s3" and label == "benign"  # the form: bob's decision, untouched
    before = len(_decisions(sqlite_store))
    case = packet["case"]["id"]
    said = _text(fns["confirm"](packet, None, "lena", "label-review", label, action, None, str(case), case, None))
    assert "label you picked" not in said and "not the model's" not in said
    assert "the form shows bob's decision under review (benign / no_action): type why in the rationale box, " \
           "then Ctrl+Enter saves it (unchanged, it confirms the decision)" in said
    assert len(_decisions(sqlite_store)) == before
    spam = taxonomy.policies["spam"].default_action
    said = _text(fns["confirm"](packet, None, "lena", "label-review", "spam", spam, None, str(case), case, None))
    assert f"the form shows your correction (spam / {spam}) of bob's decision under review" in said
    fns["submit"](packet, None, "lena", "label-review", label, action, "", "bob was right", None, str(case), case,
                  None)  # Ctrl+Enter, the form as it came: a confirmation
    with sqlite_store.read() as conn:
        meta = conn.execute(select(Case.meta).where(Case.id == case)).scalar()
    assert meta["label_error"]["outcome"] == "confirmed" and len(_decisions(sqlite_store)) == before


# -- 2. the Queue list is a plain choice ------------------------------------------------------------

def test_the_queue_list_takes_no_free_text_and_a_label_reads_as_its_queue(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "spam", "p": 0.9} for i in range(3)])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    fns = _review(sqlite_store)
    assert fns["_blocks"]["wb-queue"].allow_custom_value is False
    out = fns["claim"]("alice", "spam (3 left)", None, None, None)
    assert out[PACKET]["case"]["queue"] == "spam"
    typed = _text(fns["claim"]("alice", "hate-harassment (10low3 left)", None, None, None))
    assert "pick a queue from the Queue list" in typed and "unknown queue" not in typed


# -- 3. controls a role cannot use are held back when the tab opens ---------------------------------

@pytest.fixture
def accounts(sqlite_store, taxonomy, cfg, roles):
    from core.accounts import add_user

    for name, role in (("ada", "admin"), ("bob", "analyst"), ("lena", "lead"), ("eric", "engineer")):
        add_user(sqlite_store, name, role, actor="setup", roles=roles, password=f"{name}-pass-123")
    return _Accounts(sqlite_store, taxonomy, cfg, roles)


def test_controls_a_role_cannot_use_are_disabled_with_who_may(accounts, sqlite_store):
    from workbench.ui.appeals import build_appeals_tab
    from workbench.ui.role_controls import claim_controls

    as_ = lambda name: SimpleNamespace(username=name)  # noqa: E731
    models = _models(accounts)["controls"][0]
    retrain, promote, force, reason, note = models("", as_("bob"))
    assert retrain["interactive"] is False and promote["interactive"] is False and note["visible"] is True
    assert "engineer" in note["value"] and "your role is analyst" in note["value"]
    retrain, promote, *_, note = models("", as_("eric"))
    assert retrain["interactive"] is True and promote["interactive"] is True and note["visible"] is False
    appeals = _blocks_fns(lambda who, tab: build_appeals_tab(accounts, tab, who))["controls"][0]
    *form, note = appeals("", as_("bob"))
    assert all(f["visible"] is False for f in form) and "lead" in note["value"]
    assert all(f["visible"] is True for f in appeals("", as_("lena"))[:-1])
    review = claim_controls(accounts)
    *keys, note = review("", as_("eric"))
    assert all(k["interactive"] is False for k in keys) and "analyst" in note["value"]
    assert all(k["interactive"] is True for k in review("", as_("bob"))[:-1])
    keep, apply_ = _campaigns(accounts)["applicable"][0](1, "", as_("bob"))
    assert apply_["interactive"] is False and "lead" in keep["info"] and "permission 'bulk'" in keep["info"]


# -- 4. and 5. the Campaigns tab: an empty id box, and what a lead can do with a decided campaign ---

def test_the_campaign_id_starts_empty_and_a_decided_campaign_says_what_a_lead_can_do(sqlite_store, taxonomy, cfg):
    from labeling.decisions import decide
    from labeling.cases import campaign_case

    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1", "m2"])
    fns = _campaigns(_App(sqlite_store, taxonomy, cfg))
    body, timeline, *_ = fns["first"][0](None, "lead", None)
    assert body.startswith("No campaign shown yet: pick a row in the list") and timeline["visible"] is False
    assert fns["first"][0]("  ", "lead", None)[0].startswith("No campaign shown yet")
    decide(sqlite_store, taxonomy, campaign_case(sqlite_store, cid), "lead", "scam", config=cfg)
    body, timeline, *_ = fns["first"][0](cid, "lead", None)
    assert timeline["visible"] is True and timeline["value"]
    said = fns["act_on_campaign"][0](cid, "lead", "spam", "", "spam after all", False, None)
    assert "nothing to apply" in said and "run `workbench cases build`" not in said
    assert "correct its decision" in said
    keep, apply_ = fns["applicable"][0](cid, "lead", None)
    assert keep["interactive"] is False and "nothing to apply" in keep["info"] and apply_["interactive"] is False


# -- 6. the Appeals tab: no outcome and no reversal label pre-set -----------------------------------

def test_an_appeal_has_no_preset_outcome_and_a_reversal_needs_its_label(sqlite_store, taxonomy, cfg):
    case = _filed(sqlite_store, taxonomy, cfg)
    tab = _Tab(_App(sqlite_store, taxonomy, cfg))
    shown = tab("show", case, "lou", None)
    assert shown["wb-appeal-outcome"]["value"] is None and shown["wb-appeal-label"]["value"] is None
    seen, before = shown["state"], len(_decisions(sqlite_store))
    said = tab("resolve", case, None, "", "", "checked", "lou", None, seen)["wb-appeal-result"]
    assert said.startswith("**Not resolved:** pick an outcome first")
    said = tab("resolve", case, "reverse", "", "", "genuine notice", "lou", None, seen)["wb-appeal-result"]
    assert "pick the label the item gets when reversed" in said and len(_decisions(sqlite_store)) == before
    said = tab("resolve", case, "reverse", "spam", "label", "bulk promo", "lou", None, seen)["wb-appeal-result"]
    assert said.startswith("**Saved:**") and _decisions(sqlite_store)[-1]["label"] == "spam"


# -- 7. the Models tab: a picked version clears "Pick a version first."; an empty gate history says so

def test_the_models_tab_clears_its_pick_line_and_says_why_no_plot(sqlite_store, taxonomy, cfg):
    fns = _models(_App(sqlite_store, taxonomy, cfg))
    assert fns["picked"][0]("v1") == "" and fns["picked"][0](None) == {"__type__": "update"}
    note, image = fns["gate_note"][0](None)
    assert note["visible"] is True and "No gate history to plot yet" in note["value"] and image["visible"] is False
    note, image = fns["gate_note"][0]("/tmp/x.png")
    assert note["visible"] is False and image["visible"] is True


# -- 8. the queue list's counts follow the status line ----------------------------------------------

def test_the_queue_lists_count_follows_the_status_line(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "spam", "p": 0.9} for i in range(4)])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    fns = _review(sqlite_store)
    fns["on_load"]("alice", None)  # the page's list: spam (4 left)
    out = fns["claim"]("alice", "spam", None, None, None)  # one on screen, one claimed ahead: 2 left
    left = re.search(r"<b>(\d+) left</b> in spam", _text(out)).group(1)
    assert left == "2"
    labels = [label for label, _ in out[-1]["choices"]]
    assert any(x.startswith(f"spam ({left} left") for x in labels), labels  # the list says so too
    again = fns["claim"]("alice", "spam", None, out[PACKET]["case"]["id"], None)  # the same count again
    assert f"<b>{left} left</b> in spam" in _text(again) and again[-1] == {"__type__": "update"}  # not sent again


# -- 9. `c` with no case on screen claims nothing ----------------------------------------------------

def test_c_with_no_case_on_screen_claims_nothing(sqlite_store, taxonomy, cfg):
    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "spam", "p": 0.9} for i in range(2)])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    fns = _review(sqlite_store)
    out = fns["confirm"](None, None, "alice", "spam", None, None, None, "", None, None)
    assert out[PACKET] is None and "No case on screen: press n" in _text(out)
    with sqlite_store.read() as conn:
        assert conn.execute(select(Case.id).where(Case.claimed_by.isnot(None))).first() is None
    assert _decisions(sqlite_store) == []


# -- the same, in the browser: the queue list and an analyst's Models tab ---------------------------

def test_in_the_browser_the_queue_list_and_the_models_controls(sqlite_store, taxonomy, cfg, browser_page):
    from core.accounts import add_user
    from core.permissions import load_roles
    from workbench.context import AppContext
    from workbench.ui import serve

    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "spam", "p": 0.9} for i in range(3)])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    roles = load_roles(config_dir())
    add_user(sqlite_store, "ada", "admin", actor="setup", roles=roles, password="ada-pass-123")
    add_user(sqlite_store, "bob", "analyst", actor="setup", roles=roles, password="bob-pass-123")
    port = _free_port()
    app = serve(AppContext(store=sqlite_store), port=port, queue="spam", block=False)
    page = browser_page
    try:
        _sign_in(page, port, "bob", "bob-pass-123")
        page.wait_for_timeout(1500)
        box = page.locator("#wb-queue input")
        box.click()
        page.keyboard.press("End")
        page.keyboard.type("low")
        page.keyboard.press("Escape")
        page.locator("#wb-header").click()
        page.wait_for_timeout(800)
        assert "low" not in box.input_value()
        page.keyboard.press("n")
        page.wait_for_selector("text=/Case \\d+ · spam/", timeout=20000)
        assert "unknown queue" not in page.inner_text("body")
        page.get_by_role("tab", name="Models").click()
        page.wait_for_selector("#wb-models-access", state="visible", timeout=20000)
        assert "engineer" in page.inner_text("#wb-models-access")
        assert page.locator("#wb-model-retrain").is_disabled() and page.locator("#wb-model-promote").is_disabled()
        assert page.locator("#wb-models-access").bounding_box()["y"] < 768  # said above the fold
    finally:
        app.close()
