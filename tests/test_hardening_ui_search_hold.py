"""The Search tab's row pick and "Open in Review" box attacked through their callbacks, without a
browser: a select event whose index is no row (a client's JSON), an item cell holding line breaks,
Markdown or a lone surrogate, a case cell of a thousand digits, and a case picked from the last
results left in the box after a new search (so "Open in Review" opened a case the screen no longer
showed). Each gets one line on screen, or nothing; none crashes into a bare "Error"."""
from __future__ import annotations

from types import SimpleNamespace

import orjson
import pandas as pd
import pytest

from core.config import config_dir
from labeling.queue_config import load_queue_config
from test_campaign_bulk_integrity import _App, _camp
from test_hardening_ui_render import _live
from test_ui_tabs_fixes import _blocks_fns


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                 "calibration_sets": []})


def _search(app):
    from workbench.ui.search import build_search_tab

    return _blocks_fns(lambda who, tab: build_search_tab(app, who))


def _wiring(app):
    """Each callback of the Search tab: (name, what triggers it as (elem_id or label, event), output elem_ids)."""
    import gradio as gr

    from workbench.ui.search import build_search_tab

    with gr.Blocks() as demo:
        who = gr.Textbox()
        build_search_tab(app, who)
    fns = list(demo.fns.values() if isinstance(demo.fns, dict) else demo.fns)

    def named(block_id):
        block = demo.blocks[block_id]
        return getattr(block, "elem_id", None) or getattr(block, "value", None)

    return [(getattr(f.fn, "__name__", ""), {(named(b), ev) for b, ev in f.targets},
             [getattr(o, "elem_id", None) for o in f.outputs]) for f in fns]


def _sent(value) -> bool:
    """Whether Gradio can send `value` to the page (its JSON encoder refuses a lone surrogate)."""
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("index", [{"row": 0}, {}])
def test_a_select_event_whose_index_is_no_row_picks_nothing(sqlite_store, taxonomy, cfg, index):
    fns = _search(_App(sqlite_store, taxonomy, cfg))
    rows = pd.DataFrame([[7, "m0"]])
    out = fns["pick"][0](rows, SimpleNamespace(row_value=None, index=index))  # was: KeyError 0, a bare "Error"
    assert out == ({"__type__": "update"}, "")
    assert fns["pick"][0](rows, SimpleNamespace(row_value=None, index=[0]))[0] == 7  # a real row: picked


@pytest.mark.parametrize("case", [7, None])
@pytest.mark.parametrize("item", ["m0\n\n# Heading\n\n<img src=x> [a](javascript:1)", "m\ud800x", "m" * 5000])
def test_a_clicked_item_cell_is_one_inert_line(sqlite_store, taxonomy, cfg, case, item):
    fns = _search(_App(sqlite_store, taxonomy, cfg))
    picked, note = fns["pick"][0](None, SimpleNamespace(row_value=[case, item], index=[0, 0]))
    assert picked == case
    assert "\n" not in note and len(note) < 300  # was: the cell's paragraphs and all 5000 characters
    assert _sent(note)  # was: the lone surrogate as it came, which Gradio's JSON encoder refuses
    assert _live(note) == [] and "<img" not in note


def test_a_case_cell_of_a_thousand_digits_is_refused_in_one_short_line(sqlite_store, taxonomy, cfg):
    fns = _search(_App(sqlite_store, taxonomy, cfg))
    case, note = fns["pick"][0](None, SimpleNamespace(row_value=["1" * 1000, "m0"], index=[0, 0]))
    assert case is None and note.startswith("**Not a case:** the case id must be a whole number")
    assert len(note) < 300  # was: the thousand digits quoted back


def test_a_new_search_or_page_empties_the_case_to_open(any_store, taxonomy, cfg):
    """A case picked from the last results stayed in the box after a new search, and "Open in
    Review" claimed it though the screen now showed other results."""
    _camp(any_store, taxonomy, cfg, ["m0", "m1"])
    app = _App(any_store, taxonomy, cfg)
    fns = _search(app)
    _, rows, _, _ = fns["first"][0]("message", "lead", None)
    case, note = fns["pick"][0](None, SimpleNamespace(row_value=rows[0], index=[0, 0]))
    assert isinstance(case, int) and note.startswith(f"Case **{case}**")
    wiring = _wiring(app)
    for trigger in (("wb-search-go", "click"), ("wb-search-q", "submit"), ("◀ Previous", "click"),
                    ("Next ▶", "click")):
        emptied = [fn for name, on, outs, fn in ((n, o, x, fns[n][0]) for n, o, x in wiring)
                   if trigger in on and outs == ["wb-search-case", "wb-search-open"]]
        assert emptied, f"{trigger} leaves the picked case in the box"  # was: the last search's case
        assert [f() for f in emptied] == [(None, "")]


def test_the_query_said_back_is_one_line_of_escaped_text(sqlite_store, taxonomy, cfg):
    """The summary quoted the query in a code span, whose text Markdown shows as written: "<b>"
    read "&lt;b&gt;" and "[x]" read "\\[x\\]"; a query's blank lines split the summary in paragraphs."""
    _camp(sqlite_store, taxonomy, cfg, ["m0", "m1"])
    fns = _search(_App(sqlite_store, taxonomy, cfg))
    summary = fns["first"][0]("m0\n\n# head <b>x</b> [l](http://x.test)", "lead", None)[0]
    assert summary.startswith("**0 items** for ") and "\n" not in summary  # was: three paragraphs
    assert "`" not in summary and _live(summary) == [] and "<b>" not in summary
    summary = fns["first"][0]("message " + "y" * 480, "lead", None)[0]
    assert len(summary) < 300  # was: all 500 characters of the query
    assert fns["first"][0]("message", "lead", None)[0].startswith("**2 items** for “message”")
    _, note = fns["pick"][0](None, SimpleNamespace(row_value=[7, "<b>m0</b>"], index=[0, 0]))
    assert "`" not in note and "&lt;b&gt;m0" in note  # escaped Markdown text, shown as "<b>m0</b>"


@pytest.mark.parametrize("page", [float("nan"), float("inf"), "abc", 0, -5, [3]])
def test_a_page_a_client_sends_reaches_the_tab_through_gradio(sqlite_store, taxonomy, cfg, page):
    """As Gradio runs the event (its input processing included): the page box's Number refused
    NaN, inf, text or a list with a ComponentProcessingError and 0 with its own Error, each a bare
    "Error" on screen, before the tab's `page_number` could make them page 1."""
    import asyncio

    import gradio as gr
    from gradio.state_holder import SessionState

    from workbench.ui.search import build_search_tab

    _camp(sqlite_store, taxonomy, cfg, ["m0", "m1"])
    with gr.Blocks() as demo:
        build_search_tab(_App(sqlite_store, taxonomy, cfg), gr.Textbox())
    fns = {f.fn.__name__: f for f in (demo.fns.values() if isinstance(demo.fns, dict) else demo.fns)}
    for step in ("nxt", "prev"):
        out = asyncio.run(demo.process_api(fns[step], ["message", page, "lead"], SessionState(demo)))["data"]
        assert out[0].startswith("**2 items** for “message”") and out[3] == 1  # was: ComponentProcessingError
    out = asyncio.run(demo.process_api(fns["nxt"], ["message", page, ["lead"]], SessionState(demo)))["data"]
    assert out[0].startswith("**Not searched:** type your name in the Analyst box") and "\n" not in out[0]


def test_a_refused_name_is_quoted_short_and_a_non_text_name_is_blank():
    """A 3,000-character name came back whole in the refusal; a list in the analyst box (keys are
    wired without Gradio's processing) was an AttributeError, a bare "Error"."""
    from core.hooks import PermissionDenied
    from core.principals import InvalidName, check_name
    from workbench.ui.session import box_name

    for name in ("x!" * 1500, " " + "y" * 3000):
        with pytest.raises(InvalidName) as err:
            check_name(name)
        assert len(str(err.value)) < 200
    with pytest.raises(PermissionDenied, match="must not be blank"):
        box_name(["ann"])
