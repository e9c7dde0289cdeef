"""The Evaluation tab's Compute report and the Review tab's context panel (note, tag, untag)
showed a PermissionDenied without auditing it: now recorded as permission.denied (surface ui)."""
from __future__ import annotations

import pytest

pytest.importorskip("gradio")
from workbench.context import AppContext  # noqa: E402

from test_hardening_refusalaudit import _events, _signed_in  # noqa: E402
import test_hardening_refusals_ui as _rui  # noqa: E402
from test_hardening_refusals_ui import _people, _seen  # noqa: E402
from test_ui_tabs_fixes import _blocks_fns  # noqa: E402

refuse = _rui.refuse  # the plugin fixture, shared


def test_evaluation_refused_is_audited(sqlite_store, refuse):
    from workbench.ui.evaluation import build_evaluation_tab

    _people(sqlite_store)
    run = _blocks_fns(lambda who, tab: build_evaluation_tab(AppContext(store=sqlite_store), who))["evaluation"][0]
    refuse.rules.add(("vic", "read", "evaluation report"))
    assert "may not read evaluation report" in run("", _signed_in("vic"))
    assert _seen(sqlite_store) == [("vic", "ui", "read evaluation report")]


def test_context_panel_note_and_tag_refused_are_audited(sqlite_store):
    import gradio as gr

    from workbench.ui.context_panel import build_context_panel

    _people(sqlite_store)
    app = AppContext(store=sqlite_store)
    fns = _blocks_fns(lambda who, tab: build_context_panel(app, gr.State(None), who))
    packet = {"case": {"id": 1}, "item": {"id": "platform:x"}}
    vic = _signed_in("vic")  # a viewer: no `note`, no `tag`
    fns["on_note"][0](packet, "item", "same lure", "", vic)
    fns["add_tag_cb"][0](packet, "item", "lure", "", vic)
    fns["remove_tag_cb"][0](packet, "item", "lure", "", vic)
    assert _seen(sqlite_store) == [("vic", "ui", "note on item platform:x"), ("vic", "ui", "tag item platform:x"),
                                   ("vic", "ui", "untag item platform:x")]
    assert len(_events(sqlite_store)) == 3
