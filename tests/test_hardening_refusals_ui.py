"""Refusals the web UI's action callbacks showed but did not audit (found in review): the API, the
CLI and the tab reads (`tab_access.check_reader`) record a PermissionDenied as `permission.denied`,
but the Review tab's keys (n, open, decide, escalate, skip, release, reveal, undo), the Models
tab's Refresh, report, Promote and Retrain, the Campaigns tab's bulk Apply and the Search tab's
search only showed it: a signed-in account probing those actions left nothing in the log. Each now
goes through `tab_access.refused` (surface `ui`, the action tried as the event's entity id, one
budget per principal); an ordinary validation error records nothing.
"""
from __future__ import annotations

import pytest

pytest.importorskip("gradio")
from sqlalchemy import select  # noqa: E402

from core.accounts import add_user  # noqa: E402
from core.config import config_dir  # noqa: E402
from core.hooks import hookimpl, pm  # noqa: E402
from core.permissions import load_roles  # noqa: E402
from core.schema import Case  # noqa: E402
from workbench.context import AppContext  # noqa: E402

from test_hardening_refusalaudit import _accounts, _events, _signed_in  # noqa: E402
from test_review_screen import seed  # noqa: E402
from test_ui_tabs_fixes import _blocks_fns  # noqa: E402

PACKET, LABEL_ERR, RATIONALE_ERR, BUTTONS_ERR, AHEAD = 0, 8, 9, 10, 12  # review.wired's outputs


class _Refuse:
    """A plugin refusing one account some actions (as a site's policy may): `rules` holds
    (account, action, resource or None for any)."""

    def __init__(self) -> None:
        self.rules: set[tuple[str, str, object]] = set()

    @hookimpl
    def permission_allowed(self, actor, action, resource):
        name = getattr(actor, "name", None)
        hit = any(n == name and a == action and r in (None, resource) for n, a, r in self.rules)
        return False if hit else None


@pytest.fixture
def refuse():
    plugin = _Refuse()
    pm.register(plugin)
    yield plugin
    pm.unregister(plugin)


def _people(store) -> None:
    """root (admin), vic (viewer), ben (engineer), ana (analyst) and lee (lead)."""
    _accounts(store)
    roles = load_roles(config_dir())
    add_user(store, "ana", "analyst", actor="setup", roles=roles)
    add_user(store, "lee", "lead", actor="setup", roles=roles)


def _seen(store) -> list[tuple[str, str, str]]:
    return [(e["actor"], e["entity_type"], e["entity_id"]) for e in _events(store)]


def _review(app, queue: str = "spam") -> dict:
    import gradio as gr

    from workbench.ui.review import build_review_tab

    with gr.Blocks() as demo:
        build_review_tab(app, demo, "", queue)
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    return {getattr(f.fn, "__name__", ""): f.fn for f in fns}


def test_review_keys_refused_are_audited_and_validation_errors_are_not(any_store, make_scored, taxonomy,
                                                                       queue_config, refuse):
    store = seed(any_store, make_scored, taxonomy, queue_config)
    _people(store)
    fns = _review(AppContext(store=store))
    vic, ana = _signed_in("vic"), _signed_in("ana")
    out = fns["claim"]("", "spam", None, None, vic)  # a viewer presses n: no `claim`
    assert out[PACKET] is None and "may not claim" in out[BUTTONS_ERR]
    with store.read() as conn:
        some_case = conn.execute(select(Case.id).where(Case.campaign_id.is_(None)).limit(1)).scalar()
    fns["open_case"]("", "spam", str(some_case), None, None, vic)
    assert _seen(store) == [("vic", "ui", "claim next case of queue spam"),
                            ("vic", "ui", f"open case {some_case}")]  # was []: shown, never audited

    out = fns["claim"]("", "spam", None, None, ana)  # an analyst decides one case (allowed: nothing recorded)
    first = out[PACKET]["case"]["id"]
    out = fns["submit"](out[PACKET], None, "", "spam", "spam", "remove", "", "clear spam", out[AHEAD], str(first),
                        first, ana)
    packet, ahead = out[PACKET], out[AHEAD]
    case = packet["case"]["id"]
    assert case != first and len(_events(store)) == 2

    out = fns["submit"](packet, None, "", "spam", "", "", "", "", ahead, str(case), case, ana)  # no label: validation
    assert "pick a label first" in out[LABEL_ERR]
    out = fns["escalate"](packet, None, "", "spam", "", ahead, str(case), case, ana)  # no reason: validation
    assert "say why you escalate" in out[RATIONALE_ERR] + out[BUTTONS_ERR]
    assert len(_events(store)) == 2  # ordinary validation errors are not refusals

    refuse.rules |= {("ana", a, None) for a in ("decide", "escalate", "skip", "release", "reveal", "correct")}
    out = fns["submit"](packet, None, "", "spam", "spam", "remove", "", "clear spam", ahead, str(case), case, ana)
    assert "may not decide" in out[LABEL_ERR] + out[RATIONALE_ERR] + out[BUTTONS_ERR]
    fns["escalate"](packet, None, "", "spam", "looks like a scam", ahead, str(case), case, ana)
    fns["reveal"](packet, "", "spam", str(case), ana)
    fns["skip_case"](packet, "", "spam", ahead, str(case), case, ana)
    fns["release_case"](packet, "", "spam", ahead, str(case), case, ana)
    out = fns["undo"](packet, "", "spam", ahead, str(case), case, ana)
    assert "may not correct" in out[LABEL_ERR] + out[RATIONALE_ERR] + out[BUTTONS_ERR]
    assert _seen(store)[2:] == [("ana", "ui", f"{what} case {case}") for what in
                                ("decide", "escalate", "reveal", "skip", "release")] + [
                                    ("ana", "ui", "undo last decision")]
    events = _events(store)
    assert "may not decide" in events[2]["payload"]["detail"] and events[2]["payload"]["role"] == "analyst"


def _models(app) -> dict:
    from workbench.ui.models import build_models_tab

    return {k: v[0] for k, v in _blocks_fns(lambda who, tab: build_models_tab(app, tab, who)).items()}


def test_models_tab_refusals_are_audited(sqlite_store, refuse):
    _people(sqlite_store)
    fns = _models(AppContext(store=sqlite_store))
    vic = _signed_in("vic")
    out = fns["promote"]("tfidf-v1", False, "", "", vic)  # a viewer: no `promote`
    assert out[0].startswith("**Not promoted:**") and "may not promote" in out[0], out[0]
    out = fns["retrain"]("", vic)
    assert out[0].startswith("**Not started:**") and "may not train" in out[0], out[0]
    out = fns["promote"]("bad/name", False, "", "", vic)  # not a version name: a validation error, not recorded
    assert "not a model version name" in out[0]
    assert _seen(sqlite_store) == [("vic", "ui", "promote model tfidf-v1"), ("vic", "ui", "retrain a challenger")]
    refuse.rules.add(("vic", "read", "models"))  # a site's policy: models are not for viewers
    assert "may not read models" in fns["report"]("tfidf-v1", "", vic)[0]
    assert "may not read models" in fns["listing"]("", vic)[0]
    assert _seen(sqlite_store)[2:] == [("vic", "ui", "read the report of model tfidf-v1"), ("vic", "ui", "read models")]
    assert fns["listing"]("", _signed_in("root"))[0] and len(_events(sqlite_store)) == 4  # allowed: nothing


def test_campaign_bulk_apply_refused_is_audited(any_store, make_scored, taxonomy, queue_config, refuse):
    from workbench.ui.campaigns import build_campaigns_tab

    store = seed(any_store, make_scored, taxonomy, queue_config)
    _people(store)
    app = AppContext(store=store)
    apply = _blocks_fns(lambda who, tab: build_campaigns_tab(app, tab, who))["act_on_campaign"][0]
    with store.read() as conn:
        cid = conn.execute(select(Case.campaign_id).where(Case.campaign_id.is_not(None)).limit(1)).scalar()
    out = apply(cid, "", "spam", "remove", "one wave", False, _signed_in("ana"), None)  # an analyst: no `bulk`
    assert out.startswith("Warning: Not saved:") and "may not bulk" in out, out
    assert apply("1e400", "", "spam", "remove", "x", False, _signed_in("ana"), None).startswith("Warning: Not saved")
    assert _seen(store) == [("ana", "ui", f"bulk campaign {cid}")]  # the bad id: validation, not recorded
    refuse.rules.add(("lee", "decide", None))  # a lead may bulk, but a site's policy refuses the decision itself
    out = apply(cid, "", "spam", "remove", "one wave", False, _signed_in("lee"), None)
    assert "may not decide" in out, out
    assert _seen(store)[1:] == [("lee", "ui", f"bulk campaign {cid}")]


def test_a_search_refused_is_audited_without_its_query(sqlite_store, refuse):
    from workbench.ui.search import build_search_tab

    _people(sqlite_store)
    first = _blocks_fns(lambda who, tab: build_search_tab(AppContext(store=sqlite_store), who))["first"][0]
    refuse.rules.add(("vic", "read", "search"))
    out = first("author:someone-private", "", _signed_in("vic"))
    assert out[0].startswith("**Not searched:**") and "may not read search" in out[0], out[0]
    assert _seen(sqlite_store) == [("vic", "ui", "search")]
    assert first("anything", "", _signed_in("root"))[0] and len(_events(sqlite_store)) == 1
