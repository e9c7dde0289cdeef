"""Escalation packets and the reveals behind them, attacked as a careless or hostile user would.

1. A reveal outlived the permission: the Review screen's packet stayed unmasked for an analyst
   demoted to viewer, or signed in with a token scoped without `reveal`.
2. A review packet asked for at an aware time (any zone) raised a TypeError.
3. A filed packet wrote an item's C1 controls (CSI clears the screen of whoever `cat`s it), bidi
   overrides and line separators raw: `ensure_ascii=False` escapes only C0.
4. The packet's timeline kept the oldest `timeline_events` events: a busy case's hand-off left out
   what happened last (the note the escalation team most needs).
5. A packet that could not be written (the packets folder unusable) raised a traceback after the
   escalation had committed.
6. A case of a merged campaign was escalated: nothing claims, sweeps or decides it, so it waited
   in the escalation queue unseen.
7. A reason `escalate` refuses (a NUL byte, over the length rule) still built the whole packet first.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, update

import labeling.packets as packets
from core.principals import Principal
from core.schema import Campaign, Case
from labeling.cases import build_cases
from labeling.claims import claim_case, release
from labeling.errors import LabelingError, QueueError
from labeling.escalation import escalate
from labeling.masking import mask_text
from labeling.notes import add_note
from labeling.packets import escalate_with_packet, review_packet, reveal_text
from test_queue_support import T0, add_campaign, add_scored, case_ids, case_row, quiet

HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.90, "harassment": 0.03}
SPAM = {"benign": 0.05, "spam": 0.90, "scam": 0.03, "hate": 0.01, "harassment": 0.01}


@pytest.fixture
def cfg(queue_config):
    return quiet(queue_config)


def _one_case(store, taxonomy, cfg, scores, text, **kw) -> int:
    add_scored(store, taxonomy, [{"id": "x", "label": max(scores, key=scores.get), "scores": scores, "text": text,
                                  **kw}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    return case_ids(store)["x"]


# -- 1. a reveal unmasks only while its reader may reveal ------------------------------------------
def test_a_reveal_unmasks_nothing_once_the_reader_lost_reveal(any_store, taxonomy, cfg, review_settings,
                                                              campaign_settings, roles):
    case_id = _one_case(any_store, taxonomy, cfg, HATE, "SECRETSLUR vile")
    reveal_text(any_store, case_id, Principal("ann", "analyst"), taxonomy=taxonomy, settings=review_settings)

    def shown(who):
        p = review_packet(any_store, taxonomy, case_id, review_settings, campaign_settings, viewer=who)
        return p["item"]["text"], p["revealed"]
    assert shown(Principal("ann", "analyst")) == ("SECRETSLUR vile", True)
    hidden = (mask_text("SECRETSLUR vile"), False)
    assert shown(Principal("ann", "viewer")) == hidden  # demoted: was the revealed text
    assert shown(Principal("ann", "analyst", scopes=("read", "claim"))) == hidden  # a token without reveal
    assert shown(Principal("bob", "analyst")) == hidden  # and nobody else's reveal counts


# -- 2. an aware time ---------------------------------------------------------------------------------
def test_a_review_packet_at_an_aware_time_counts_minutes_in_utc(any_store, taxonomy, cfg, review_settings,
                                                                campaign_settings):
    case_id = _one_case(any_store, taxonomy, cfg, HATE, "SECRETSLUR vile")
    at = T0 + dt.timedelta(hours=1)
    naive = review_packet(any_store, taxonomy, case_id, review_settings, campaign_settings, now=at)
    paris = dt.timezone(dt.timedelta(hours=1))
    aware = review_packet(any_store, taxonomy, case_id, review_settings, campaign_settings,
                          now=(at + dt.timedelta(hours=1)).replace(tzinfo=paris))  # the same instant
    assert aware["minutes_left"] == naive["minutes_left"] is not None  # was a TypeError


# -- 3. hostile characters in a filed packet -------------------------------------------------------
HOSTILE = "cheap pills \x9b2J\x1b[31m \x7f \u202etxt.exe\u202c \u2066x\u2069 a\u2028b \U000e0041 <script>x</script> é 日本"


def test_a_filed_packet_writes_controls_and_bidi_as_escapes(sqlite_store, taxonomy, cfg, review_settings,
                                                            campaign_settings):
    case_id = _one_case(sqlite_store, taxonomy, cfg, SPAM, HOSTILE, meta={"subject": "\x9b31m hi"})
    out = escalate_with_packet(sqlite_store, taxonomy, case_id, "ann", "pill wave", cfg, review_settings,
                               campaign_settings)
    assert not out["packet"]["masked"] and out["packet"]["evidence"]["item"]["text"] == HOSTILE
    raw = open(out["packet_path"], encoding="utf-8").read()
    obeyed = [f"U+{ord(c):04X}" for c in raw if c in "\x1b\x7f\x9b\u202e\u202c\u2066\u2069\u2028\U000e0041"]
    assert obeyed == []  # was U+009B twice, U+007F, U+202E, U+202C, U+2066, U+2069, U+2028, U+E0041
    assert "\\u009b2J" in raw and "\\u202etxt.exe" in raw and "\\udb40\\udc41" in raw
    assert "é 日本" in raw and "<script>" in raw  # other text is left readable (JSON is no markup)
    assert json.loads(raw) == json.loads(json.dumps(out["packet"], default=str))  # the same data read back
    again = escalate_with_packet(sqlite_store, taxonomy, case_id, "ann", "pill wave", cfg, review_settings,
                                 campaign_settings)
    assert again["filed"] is False and again["packet"]["evidence"]["item"]["text"] == HOSTILE


# -- 4. the timeline's newest events ---------------------------------------------------------------
def test_the_timeline_keeps_the_newest_events_and_counts_the_rest(any_store, taxonomy, cfg, review_settings,
                                                                  campaign_settings):
    case_id = _one_case(any_store, taxonomy, cfg, SPAM, "cheap pills")
    for i in range(4):  # a case claimed and given back again and again
        claim_case(any_store, case_id, f"a{i}", cfg)
        release(any_store, case_id, f"a{i}", cfg)
    add_note(any_store, "item", "x", "same sender as last week's wave", "ann")
    settings = review_settings.model_copy(update={"timeline_events": 3})
    out = escalate_with_packet(any_store, taxonomy, case_id, "ann", "wave", cfg, settings, campaign_settings)
    timeline = out["packet"]["timeline"]
    assert len(timeline) == 3 and timeline[-1]["action"] == "note.add"  # was the first three claims/releases
    assert timeline[-1]["payload"]["body"] == "same sender as last week's wave"
    assert [e["ts"] for e in timeline] == sorted(e["ts"] for e in timeline)
    assert out["packet"]["timeline_left_out"] == 6


# -- 5. a packet that cannot be written ------------------------------------------------------------
def test_a_packet_that_cannot_be_written_is_one_line_and_a_retry_files_it(sqlite_store, taxonomy, cfg,
                                                                          review_settings, campaign_settings):
    case_id = _one_case(sqlite_store, taxonomy, cfg, SPAM, "cheap pills")
    blocker = sqlite_store.data_dir / "packets"
    blocker.write_text("not a folder")
    with pytest.raises(QueueError) as err:  # was FileExistsError, a traceback
        escalate_with_packet(sqlite_store, taxonomy, case_id, "ann", "wave", cfg, review_settings, campaign_settings)
    msg = str(err.value)
    assert "\n" not in msg and f"case {case_id} is escalated" in msg and str(blocker) in msg
    assert case_row(sqlite_store, case_id)["state"] == "escalated"
    blocker.unlink()
    out = escalate_with_packet(sqlite_store, taxonomy, case_id, "ann", "wave", cfg, review_settings,
                               campaign_settings)
    assert out["filed"] is True and json.loads(open(out["packet_path"], encoding="utf-8").read())["case_id"] == case_id


# -- 6. a merged campaign's case ------------------------------------------------------------------
def test_escalating_a_merged_campaigns_case_is_refused(any_store, taxonomy, cfg, review_settings, campaign_settings):
    ids = add_scored(any_store, taxonomy, [{"id": f"m{i}", "label": "scam", "p": 0.9, "text": f"claim prize {i}"}
                                           for i in range(3)])
    camp = add_campaign(any_store, ids)
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    case_id = case_ids(any_store)["campaign"]
    with any_store.begin() as conn:
        conn.execute(update(Campaign.__table__).where(Campaign.id == camp).values(status="merged"))
    before = case_row(any_store, case_id)
    with pytest.raises(QueueError, match=f"case {case_id} is of campaign {camp}, which is merged"):
        escalate(any_store, taxonomy, case_id, "ann", "whole wave", cfg, now=T0)
    assert case_row(any_store, case_id) == before  # was moved to the escalation queue, where nothing sees it
    with pytest.raises(LabelingError):  # the packet path refuses it too, and files nothing
        escalate_with_packet(any_store, taxonomy, case_id, "ann", "whole wave", cfg, review_settings,
                             campaign_settings)
    with any_store.read() as conn:
        assert conn.execute(select(Case.queue).where(Case.id == case_id)).scalar() == before["queue"]


# -- 7. a refused reason builds nothing ------------------------------------------------------------
@pytest.mark.parametrize("reason, severity, why", [
    ("quotes it\x00", None, "control character"),
    ("x" * 5001, None, "at most 5,000 characters"),
    ("threat", "P9", "unknown severity 'P9'"),
])
def test_a_refused_escalation_builds_no_packet(sqlite_store, taxonomy, cfg, review_settings, campaign_settings,
                                               monkeypatch, reason, severity, why):
    case_id = _one_case(sqlite_store, taxonomy, cfg, HATE, "SECRETSLUR vile")
    built = []
    monkeypatch.setattr(packets, "escalation_packet", lambda *a, **k: built.append(a) or {})
    with pytest.raises(QueueError, match=why):
        escalate_with_packet(sqlite_store, taxonomy, case_id, "ann", reason, cfg, review_settings, campaign_settings,
                             severity=severity)
    assert built == []  # was built (the whole review packet, neighbours searched) and then refused
