"""The tabs say what is true after an action: a bulk decision shows the campaign and the list
again, and its preview speaks to whoever may apply it; a champion with missing or changed files
is flagged in the Models header; refusals name the tab's Force box and Reason field; an empty or
reserved analyst name is refused before any service runs; the report's training data, the score
histogram, the campaign timeline and the drift line read plainly; the Operations KPIs fit the
screen without an inner scrollbar (Chromium, 1366x768)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from core.hooks import PermissionDenied
from core.schema import Decision
from test_campaign_bulk_integrity import _App, _camp, cfg  # noqa: F401 (the fixture)
from test_promotion_gate import MODELS, loop  # noqa: F401 (the fixture)
from test_ui import ITEMS, SCORES, _free_port


def _blocks_fns(build):
    """Each callback of the Blocks `build(who, tab)` lays out, by name: (fn, output elem_ids, the
    name of the callback it runs after, if chained)."""
    import gradio as gr

    with gr.Blocks() as demo:
        who = gr.Textbox()
        with gr.Tab("Tab") as tab:
            build(who, tab)
    fns = list(demo.fns.values() if isinstance(demo.fns, dict) else demo.fns)
    name = {f._id: getattr(f.fn, "__name__", "") for f in fns}
    return {getattr(f.fn, "__name__", ""): (f.fn, [getattr(o, "elem_id", None) for o in f.outputs],
                                            name.get(f.trigger_after)) for f in fns}


def _campaigns(app):
    from workbench.ui.campaigns import build_campaigns_tab

    return _blocks_fns(lambda who, tab: build_campaigns_tab(app, tab, who))


def _models(app):
    from workbench.ui.models import build_models_tab

    return _blocks_fns(lambda who, tab: build_models_tab(app, tab, who))


def _decisions(store) -> int:
    with store.read() as conn:
        return len(conn.execute(select(Decision.__table__.c.id)).all())


# --- 1. Campaigns: a bulk decision shows the campaign and the list again ------------------------

def test_a_bulk_decision_refreshes_the_campaign_and_the_list(sqlite_store, taxonomy, cfg):  # noqa: F811
    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1", "m2"])
    fns = _campaigns(_App(sqlite_store, taxonomy, cfg))
    before = fns["first"][0](cid, "lead", None)[0]
    assert "decided members: 0 of 3" in before and "**Applying a decision** labels 3 of 3" in before
    said = fns["act_on_campaign"][0](cid, "lead", "scam", "block_sender", "", False, None)
    assert said.startswith("Saved: scam / block_sender applied to 3 items")
    again, outputs, after = fns["shown_again"]
    assert after == "act_on_campaign"  # chained after the button's decision
    assert "wb-campaign-detail" in outputs and "wb-members" in outputs and "wb-campaigns" in outputs
    out = again(cid, 1, "lead", None)
    detail, table = out[0], out[-1]
    assert "decided members: 3 of 3" in detail and "nothing to apply" in detail
    assert "Applying a decision" not in detail
    assert [r[5] for r in table if r[0] == cid] == [3]  # the list's "decided" column


class _Accounts(_App):
    def __init__(self, store, taxonomy, cfg, roles):
        super().__init__(store, taxonomy, cfg, users=True)
        self._r = roles

    def roles(self):
        return self._r


def test_the_bulk_preview_speaks_to_who_may_apply_it(sqlite_store, taxonomy, cfg, roles):  # noqa: F811
    from core.accounts import add_user

    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1", "m2"])
    for name, role in (("boss", "admin"), ("lou", "lead"), ("ann", "analyst"), ("vic", "viewer")):
        add_user(sqlite_store, name, role, actor="setup", roles=roles, password=f"{name}-pass-123")
    fns = _campaigns(_Accounts(sqlite_store, taxonomy, cfg, roles))
    lead = fns["first"][0](cid, "", SimpleNamespace(username="lou"))[0]
    assert "**Applying a decision** labels 3 of 3 members" in lead
    for name in ("ann", "vic"):
        body = fns["first"][0](cid, "", SimpleNamespace(username=name))[0]
        assert "**Applying a decision**" not in body
        assert "Only a lead applies a decision here" in body and "A lead's decision would label 3 of 3" in body


# --- 3. an analyst name the command line would refuse -----------------------------------------

def test_an_empty_or_reserved_name_is_refused_before_any_service(sqlite_store, taxonomy, cfg,  # noqa: F811
                                                                 monkeypatch):
    import evaluation.promotion as P
    from workbench.ui.session import actor

    app = _App(sqlite_store, taxonomy, cfg)
    for bad, why in (("", "must not be blank"), ("   ", "must not be blank"), ("system", "reserved"),
                     ("bob smith", "not allowed")):
        with pytest.raises(PermissionDenied, match=why):
            actor(app, bad, None)
    assert actor(app, " bob ", None) == "bob"  # what typing leaves around a name

    called = []
    monkeypatch.setattr(P, "promote_through_gate", lambda *a, **k: called.append(k["actor"]) or {})
    app.models = lambda: MODELS
    fns = _models(app)
    line = fns["promote"][0]("v1", False, "", "", None)[0]
    assert line.startswith("**Not promoted:** type your name in the Analyst box") and called == []

    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1"])
    said = _campaigns(app)["act_on_campaign"][0](cid, "", "scam", "block_sender", "", False, None)
    assert "Not saved: type your name in the Analyst box" in said and _decisions(sqlite_store) == 0


# --- 2, 5. Models: a broken champion, and refusals in the tab's words --------------------------

def test_a_broken_champion_is_flagged_and_refusals_name_the_tab_controls(loop, taxonomy):  # noqa: F811
    from evaluation.promotion import retrain_and_gate
    from models.registry import artifact_folder, get_model
    from workbench.context import AppContext

    store, champ, _ = loop
    challenger = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng",
                                  promote=False, rescore="none", show_progress=False)["challenger"]
    app = AppContext(store=store)
    app._configs["models"] = MODELS
    fns = _models(app)
    listing, promote = fns["listing"][0], fns["promote"][0]
    head = listing("eng", None)[0]
    assert head.startswith("Champion: **") and "Warning" not in head

    folder = artifact_folder(store, get_model(store, champ))
    victim = sorted(p for p in folder.rglob("*") if p.is_file())[0]
    victim.write_bytes(victim.read_bytes() + b"\0")  # a file changed after training
    head = listing("eng", None)[0]
    assert "**Warning: the champion's model files are missing or changed, so it cannot score**" in head
    assert "does not match its recorded SHA" in head and "tick Force over the gate, give a Reason" in head

    refused = promote(challenger, False, "", "eng", None)[0]
    assert refused.startswith("**Not promoted:**") and "unusable" in refused
    assert "tick Force over the gate, give a Reason and press Promote through the gate" in refused
    assert "workbench models promote" not in refused and "\\-\\-force" not in refused
    no_reason = promote(challenger, True, "  ", "eng", None)[0]
    assert "forcing needs a reason: tick Force over the gate and give a Reason" in no_reason
    assert "\\-\\-reason" not in no_reason


# --- 4. the comparison report's training data ---------------------------------------------------

def test_the_reports_training_data_is_a_table_and_sentences(tmp_path):
    from evaluation.promotion_report import write_markdown

    stats = {"items": 240, "human_labels": 200, "by_split": {"train": 196, "test": 44, "excluded": 0},
             "human_by_split": {"train": 160, "test": 40, "excluded": 0}, "calibration_resolved": 2,
             "bulk_decisions": 1, "bulk_members": 5, "bulk_kept": 1, "dropped": {"too few examples of hate": 3},
             "warnings": ["only 2 groups on the test side"], "mean_human_weight": 9.99971}
    result = {"challenger": "b", "champion": "a", "promoted": False, "confidence": 0.95, "comparisons": {},
              "gate": {"metric": "macro_f1", "min_lower_bound": 0.0, "mcnemar_alpha": None, "reason": "refused"},
              "data": stats}
    md = (tmp_path / "r.md")
    write_markdown(md, result, "comparison.png")
    part = md.read_text().split("## Training data", 1)[1]
    assert "{" not in part and "[" not in part.split("![comparison]")[0] and "```" not in part
    assert "240 labelled items, 200 of them with a human label" in part
    assert "| side | items | human labels |" in part and "| train | 196 | 160 |" in part
    assert "| test | 44 | 40 |" in part
    assert "- left out: too few examples of hate 3" in part and "- mean weight of a human label: 9.9997" in part
    assert "- bulk (campaign) decisions: 1, covering 5 members, 1 kept" in part
    assert "**Warning:** only 2 groups on the test side" in part


# --- 6, 7. plots: labelled axes, a legend that covers nothing ------------------------------------

def _closed_figures(monkeypatch, module):
    """The figures `module` closes (after saving them), to read their axes."""
    real = module.pyplot()
    figs = []

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def close(self, fig):
            figs.append(fig)
            real.close(fig)
    monkeypatch.setattr(module, "pyplot", lambda: Spy())
    return figs


def test_the_score_histogram_says_what_its_bars_are(monkeypatch):
    import evaluation.plots as plots

    figs = _closed_figures(monkeypatch, plots)
    assert plots.score_split_png([0.9, 0.8, 0.85, 0.7], [0.6, 0.55])
    ax = figs[0].axes[0]
    assert ax.get_ylabel() == "share of the group" and ax.get_xlabel() == "model's score of its label"
    heights = [sum(b.get_height() for b in c) for c in ax.containers]
    assert heights == pytest.approx([1.0, 1.0])  # each group's bars add up to all of it


def test_the_campaign_timeline_has_a_utc_axis_and_one_legend_off_the_data(sqlite_store, taxonomy, cfg,  # noqa: F811
                                                                         tmp_path, monkeypatch):
    import clustering.explore as explore

    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1", "m2"])
    figs = _closed_figures(monkeypatch, explore)
    explore.campaign_timeline(sqlite_store, cid, png_path=tmp_path / "t.png")
    fig = figs[0]
    ax = fig.axes[0]
    assert ax.get_xlabel() == "hour (UTC)"
    legends = [a.get_legend() for a in fig.axes if a.get_legend() is not None]
    assert len(legends) == 1 and [t.get_text() for t in legends[0].get_texts()] == [
        "new members per hour", "campaign size"]
    fig.canvas.draw()
    box, plot = legends[0].get_window_extent(), ax.get_window_extent()
    assert box.y0 >= plot.y1 - 1  # above the plotting area, not on it


# --- 9. the drift line ----------------------------------------------------------------------------

def test_a_window_no_model_scored_reads_none():
    import datetime as dt

    from evaluation.drift import DriftReport, drift_markdown

    t = dt.datetime(2026, 12, 1)
    report = DriftReport(reference=(t, t), current=(t, t), now=t, n_reference=0, n_current=96, checks=[],
                         model_versions={"reference": {}, "current": {"test-v1": 96}})
    assert "Scored by: reference: none; current: test-v1 (96)" in drift_markdown(report)


# --- 8. Operations: every KPI on screen, no inner scrollbar ---------------------------------------

def test_every_operations_kpi_shows_without_an_inner_scrollbar(sqlite_store, make_scored, browser_page):
    from workbench.context import AppContext
    from workbench.ui import serve

    store = make_scored(sqlite_store, ITEMS, SCORES)
    port = _free_port()
    serve(AppContext(store=store), port=port, analyst="alice", block=False)
    page = browser_page
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_selector("#wb-next")
    page.get_by_role("tab", name="Operations").click()
    page.wait_for_function("() => document.querySelector('#wb-ops-kpis').innerText.includes('appeals')",
                           timeout=20000)
    page.wait_for_timeout(500)
    scrolled = page.evaluate("""() => [...document.querySelectorAll('#wb-ops-kpis *')]
        .filter(e => e.scrollHeight > e.clientHeight + 2 && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY))
        .map(e => e.className)""")
    assert scrolled == [], scrolled
    table = page.locator("#wb-ops-kpis").bounding_box()
    last = page.locator("#wb-ops-kpis [role=gridcell]", has_text="appeals").first.bounding_box()
    assert table["y"] <= last["y"] and last["y"] + last["height"] <= table["y"] + table["height"] + 1
    page.locator("#wb-ops-kpis").scroll_into_view_if_needed()
    page.screenshot(path=str(__import__("test_ui").SHOTS / "operations-kpis.png"), full_page=True)
