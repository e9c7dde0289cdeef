"""Hardening: the Review screen's campaign announcement says what the decision then does.

`labeling.packets.campaign_announcement` (what deciding a campaign case touches, shown before any
key) counted `bulk_counts` without the queue config, so a member whose own case waits in the
appeals queue (no appeal packet on it: only its queue says so) was announced as one the decision
would label, while `decide` (with the config) left it out. `review_packet(config=...)` now hands
the config down, and the Review tab passes its own.
"""
from __future__ import annotations

import pytest
from sqlalchemy import insert

from core.schema import Case
from labeling import decisions as DEC
from labeling import packets
from labeling.cases import build_cases

from test_queue_support import T0, add_campaign, add_scored, case_ids, quiet

C = Case.__table__
N = 6


def _wave(store, taxonomy, cfg, prefix: str) -> tuple[int, int]:
    """A campaign case of `N` members, one of them with its own case in the appeals queue (no
    appeal packet). Its case id and campaign id."""
    ids = [f"{prefix}-{i}" for i in range(N)]
    add_scored(store, taxonomy, [{"id": m, "label": "scam", "p": 0.9} for m in ids])
    cid = add_campaign(store, ids)
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    with store.begin() as conn:
        conn.execute(insert(C).values(item_id=ids[0], queue=cfg.appeals_queue, state="open", created_at=T0,
                                      updated_at=T0, meta={}))
    return case_ids(store, lambda c: f"camp{c}")[f"camp{cid}"], cid


def test_announcement_counts_what_decide_then_does(any_store, taxonomy, queue_config, review_settings,
                                                   campaign_settings):
    """Was: the announcement said 6 members will be decided; `decide` decided 5."""
    s, cfg = any_store, quiet(queue_config)
    case_id, _ = _wave(s, taxonomy, cfg, "a")
    said = packets.review_packet(s, taxonomy, case_id, review_settings, campaign_settings, now=T0, viewer="lead",
                                 config=cfg)["campaign_case"]
    direct = packets.campaign_announcement(s, case_id, "lead", T0, config=cfg)
    assert said == direct and (said["members"], said["will_decide"]) == (N, N - 1), said
    out = DEC.decide(s, taxonomy, case_id, "lead", "scam", now=T0, config=cfg)
    assert len(out["decision_ids"]) == said["will_decide"]
    assert out["bulk"]["skipped_appeal"] == ["a-0"]


def test_announcement_without_a_config_is_as_before(any_store, taxonomy, queue_config, review_settings,
                                                    campaign_settings):
    """No config (a caller without one): only an appeal packet leaves a member out, as before."""
    s, cfg = any_store, quiet(queue_config)
    case_id, _ = _wave(s, taxonomy, cfg, "n")
    said = packets.review_packet(s, taxonomy, case_id, review_settings, campaign_settings, now=T0)["campaign_case"]
    assert said["will_decide"] == N == DEC.bulk_counts(s, case_id, "", now=T0)["will_decide"]


def test_review_tab_announces_with_its_queue_config(any_store, taxonomy, queue_config, monkeypatch):
    """The Review tab's packet (open a case by number) is announced with the app's queue config."""
    gr = pytest.importorskip("gradio")
    from workbench.context import AppContext
    from workbench.ui.review import build_review_tab

    s, cfg = any_store, quiet(queue_config)
    case_id, _ = _wave(s, taxonomy, cfg, "t")
    monkeypatch.setattr("workbench.context.AppContext.queues", lambda self: cfg)
    monkeypatch.setattr("workbench.context.AppContext.taxonomy", lambda self: taxonomy)
    with gr.Blocks() as demo:
        build_review_tab(AppContext(store=s), demo, "lead", None)
    fns = {getattr(f.fn, "__name__", ""): f.fn for f in (demo.fns.values() if isinstance(demo.fns, dict)
                                                          else demo.fns)}
    packet = fns["open_case"]("lead", "spam", str(case_id), None, None, None)[0]
    assert packet is not None and packet["case"]["id"] == case_id
    assert packet["campaign_case"]["will_decide"] == N - 1, packet["campaign_case"]
