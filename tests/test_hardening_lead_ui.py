"""The lead's tabs other than Review, attacked through their callbacks: a bulk campaign decision
applies only what the preview the lead read said (not a campaign grown, or another one typed in
the box since), a hostile campaign id or page is refused in one line instead of failing in the
store, and the Appeals tab reveals (audited) only an open appeal it offers."""
from __future__ import annotations

import pytest

from core.config import config_dir
from labeling.queue_config import load_queue_config
from test_campaign_bulk_integrity import _App, _camp, _join
from test_queue_support import T0
from test_ui_tabs_fixes import _blocks_fns, _campaigns, _decisions

APPLY = ("lead", "scam", "block_sender", "", False, None)


@pytest.fixture(scope="module")
def cfg(taxonomy):
    """The queues without QA draws or calibration copies (as test_campaign_bulk_integrity's)."""
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                 "calibration_sets": []})


# --- 1. a bulk decision applies what the lead read ------------------------------------------------

def test_a_campaign_grown_since_its_preview_is_not_decided_unseen(any_store, taxonomy, cfg):
    cid = _camp(any_store, taxonomy, cfg, ["m0", "m1", "m2"])
    fns = _campaigns(_App(any_store, taxonomy, cfg))
    shown = fns["first"][0](cid, "lead", None)
    assert "**Applying a decision** labels 3 of 3 members" in shown[0]
    seen = shown[-1]
    _join(any_store, taxonomy, cid, ["x0", "x1", "x2", "x3"], T0)  # a wave joins while the lead reads
    said = fns["act_on_campaign"][0](cid, *APPLY, seen)
    assert said.startswith("Warning: Not saved:") and "changed since it was shown" in said
    assert "3 members, 0 decided then; 7 members, 0 decided now" in said
    assert _decisions(any_store) == 0  # not 7 decisions under a preview that said 3
    again = fns["shown_again"][0](cid, 1, "lead", None)  # chained after the button: the fresh preview
    assert "labels 7 of 7 members" in again[0]
    said = fns["act_on_campaign"][0](cid, *APPLY, again[-2])
    assert said.startswith("Saved: scam / block_sender applied to 7 items")


def test_applying_needs_the_campaign_the_page_shows(sqlite_store, taxonomy, cfg):
    shown_id = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1", "m2"])
    typed = _camp(sqlite_store, taxonomy, cfg, ["n0", "n1", "n2", "n3", "n4"])
    fns = _campaigns(_App(sqlite_store, taxonomy, cfg))
    seen = fns["first"][0](shown_id, "lead", None)[-1]
    said = fns["act_on_campaign"][0](typed, *APPLY, seen)  # another id typed in the box, without Show
    assert said == (f"Warning: Not saved: campaign {typed} is not the campaign shown: press Show and read "
                    "what applying would do before applying.")
    assert _decisions(sqlite_store) == 0
    said = fns["act_on_campaign"][0](shown_id, *APPLY, seen)
    assert said.startswith("Saved: scam / block_sender applied to 3 items")


def test_the_apply_button_sends_the_page_state(sqlite_store, taxonomy, cfg):
    """The wiring: the button's inputs end with the server-side state the Show callbacks fill."""
    import gradio as gr

    from workbench.ui.campaigns import build_campaigns_tab

    with gr.Blocks() as demo:
        who = gr.Textbox()
        with gr.Tab("Campaigns") as tab:
            build_campaigns_tab(_App(sqlite_store, taxonomy, cfg), tab, who)
    fns = list(demo.fns.values() if isinstance(demo.fns, dict) else demo.fns)
    act = next(f for f in fns if getattr(f.fn, "__name__", "") == "act_on_campaign")
    show = next(f for f in fns if getattr(f.fn, "__name__", "") == "first")
    assert isinstance(act.inputs[-1], gr.State) and act.inputs[-1] is show.outputs[-1]


# --- 2. a hostile campaign id or page ------------------------------------------------------------

@pytest.mark.parametrize("bad", [1e30, 2**63, float("inf"), float("nan"), 0, 2.5])
def test_a_campaign_id_out_of_range_is_refused_in_one_line(any_store, taxonomy, cfg, bad):
    cid = _camp(any_store, taxonomy, cfg, ["m0", "m1"])
    fns = _campaigns(_App(any_store, taxonomy, cfg))
    said = fns["act_on_campaign"][0](bad, *APPLY)
    assert said == f"Warning: Not saved: the campaign id must be a whole number from 1 to 2147483647, not {bad!r}"
    body = fns["first"][0](bad, "lead", None)[0]
    assert body.startswith("Warning: the campaign id must be a whole number") and "SQL" not in body
    assert fns["nxt"][0](cid, bad, "lead", None)[4] in (1, 2)  # a hostile page is page 1 (then the next)
    assert _decisions(any_store) == 0


# --- 3. the Appeals tab reveals only an open appeal it offers ------------------------------------

def _reveals(store) -> list[tuple[str, int]]:
    from sqlalchemy import select

    from core.schema import AuditEvent

    A = AuditEvent.__table__
    with store.read() as conn:
        rows = conn.execute(select(A.c.actor, A.c.payload).where(A.c.action == "text.reveal")).all()
    return [(r.actor, int(r.payload["case_id"])) for r in rows]


def test_the_appeals_tab_reveals_only_an_open_appeal(any_store, taxonomy, cfg):
    from labeling import decisions as DEC
    from labeling.appeals import appeal, resolve_appeal
    from labeling.cases import campaign_case
    from labeling.claims import next_case
    from workbench.ui.appeals import build_appeals_tab

    cid = _camp(any_store, taxonomy, cfg, ["m0", "m1", "m2"])
    own = next_case(any_store, "ann", "fraud", now=T0, config=cfg)
    DEC.decide(any_store, taxonomy, own["id"], "ann", "scam", now=T0, config=cfg)
    filed = appeal(any_store, own["item_id"], "user1", "I am a real shop", taxonomy, now=T0, config=cfg)
    fns = _blocks_fns(lambda who, tab: build_appeals_tab(_App(any_store, taxonomy, cfg), tab, who))
    reveal = fns["reveal"][0]
    shown = reveal(filed["id"], "lou", None)  # the open appeal: revealed, audited, shown
    assert shown[0].startswith(f"**Case {filed['id']}**") and _reveals(any_store) == [("lou", filed["id"])]
    resolve_appeal(any_store, taxonomy, filed["id"], "carol", "confirm", "checked", now=T0, config=cfg)
    for case in (filed["id"], campaign_case(any_store, cid), own["id"]):  # resolved since; never an appeal
        out = reveal(case, "max", None)
        assert out[-1] == (f"**Not revealed:** case {case} is not an open appeal (resolved since, or never "
                           "one): Refresh appeals.")
    assert _reveals(any_store) == [("lou", filed["id"])]  # nothing charged to max's exposure or audited



# --- 4. a chart two people refresh at once is never served half-written --------------------------

def _torn_reads(path: str, draw, times: int = 8) -> tuple[int, int]:
    """Read `path` while another viewer's callback `draw`s it `times` times: (reads, torn reads)."""
    import pathlib
    import threading

    done = threading.Event()

    def other_viewer() -> None:
        try:
            for _ in range(times):
                draw()
        finally:
            done.set()

    threading.Thread(target=other_viewer).start()
    reads = torn = 0
    while not done.is_set():
        data = pathlib.Path(path).read_bytes()
        reads += 1
        torn += not (data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"))
    return reads, torn


def test_the_operations_chart_is_swapped_in_whole(sqlite_store, taxonomy, cfg):
    from workbench.ui.operations import build_operations_tab

    _camp(sqlite_store, taxonomy, cfg, ["m0", "m1", "m2"])
    kpis = _blocks_fns(lambda who, tab: build_operations_tab(_App(sqlite_store, taxonomy, cfg), tab))["kpis"][0]
    reads, torn = _torn_reads(kpis()[-1], kpis)
    assert reads > 0 and torn == 0


def test_the_campaign_timeline_is_swapped_in_whole(sqlite_store, taxonomy, cfg):
    cid = _camp(sqlite_store, taxonomy, cfg, ["m0", "m1", "m2"])
    first = _campaigns(_App(sqlite_store, taxonomy, cfg))["first"][0]
    plot = first(cid, "lead", None)[1]  # the timeline's update (shown, with its file) or its file
    reads, torn = _torn_reads(plot["value"] if isinstance(plot, dict) else plot, lambda: first(cid, "lead", None))
    assert reads > 0 and torn == 0
