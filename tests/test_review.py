import json

import pytest
from sqlalchemy import select

from core.schema import AuditEvent
from labeling import packets
from labeling.masking import mask_text, should_mask


def _case_of(store, item_id):
    from core.schema import Case

    with store.read() as conn:
        return conn.execute(select(Case.id).where(Case.item_id == item_id)).scalar()


HATE = {"benign": 0.1, "spam": 0.0, "scam": 0.0, "hate": 0.7, "harassment": 0.2}
SPAM = {"benign": 0.05, "spam": 0.9, "scam": 0.05, "hate": 0.0, "harassment": 0.0}


def test_mask_text_keeps_shape():
    assert mask_text("you are vile, call 0906 now http://x.co") == "y•• a•• v•••, c••• 0906 n•• h•••://x.c•"


def test_should_mask(review_settings):
    s = review_settings
    assert should_mask(s, HATE, None)
    assert not should_mask(s, SPAM, None)
    assert should_mask(s, SPAM, "harassment")  # the source says so
    assert should_mask(s, None, None)  # unknown content is treated as sensitive


def test_packet_masks_and_reveal_is_audited(sqlite_store, taxonomy, make_scored, review_settings, campaign_settings):
    make_scored(sqlite_store,
          [{"id": "h", "text": "they are vermin", "author": "u9"}, {"id": "s", "text": "cheap pills", "author": "u9"}],
          {"h": HATE, "s": SPAM})
    case_id = _case_of(sqlite_store, "reports:h")
    packet = packets.review_packet(sqlite_store, taxonomy, case_id, review_settings, campaign_settings)
    assert packet["masked"] and "vermin" not in packet["item"]["text"]
    assert packet["suggested_label"] == "hate"
    assert packet["choices"]["hate"]["default_action"] == taxonomy.policies["hate"].default_action
    assert packet["author"]["items"] == 1 and packet["author"]["recent"][0]["item_id"] == "reports:s"
    assert packets.reveal_text(sqlite_store, case_id, "alice", taxonomy=taxonomy,
                               settings=review_settings) == "they are vermin"
    with sqlite_store.read() as conn:
        ev = conn.execute(select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id.desc())).first()
    assert tuple(ev) == ("alice", "text.reveal")
    unmasked = packets.review_packet(sqlite_store, taxonomy, _case_of(sqlite_store, "reports:s"), review_settings,
                                      campaign_settings)
    assert not unmasked["masked"] and unmasked["item"]["text"] == "cheap pills"


def test_similar_decisions_include_exact_copies(sqlite_store, taxonomy, make_scored, queue_config, review_settings,
                                                campaign_settings):
    from labeling.decisions import decide

    make_scored(sqlite_store,
          [{"id": "1", "text": "Cheap pills!"}, {"id": "2", "text": "cheap   PILLS!"}], {"1": SPAM, "2": SPAM})
    decide(sqlite_store, taxonomy, _case_of(sqlite_store, "reports:1"), "bob", "spam", action="remove",
           config=queue_config)
    packet = packets.review_packet(sqlite_store, taxonomy, _case_of(sqlite_store, "reports:2"), review_settings,
                                   campaign_settings)
    assert [(d["item_id"], d["label"], d["reviewer"]) for d in packet["similar_decisions"]] == [("reports:1", "spam", "bob")]


def test_escalation_packet_is_complete_and_filed(sqlite_store, taxonomy, make_scored, queue_config, review_settings,
                                                 campaign_settings):
    make_scored(sqlite_store, [{"id": "t", "text": "I will kill you tomorrow", "author": "u1"}],
          {"t": HATE})
    from labeling.claims import next_case

    case_id = _case_of(sqlite_store, "reports:t")
    claimed = next_case(sqlite_store, "alice", "escalation", queue_config, detail=False) or next_case(
        sqlite_store, "alice", "hate-harassment", queue_config, detail=False)
    assert claimed["id"] == case_id
    out = packets.escalate_with_packet(sqlite_store, taxonomy, case_id, "alice", "credible threat", queue_config,
                                       review_settings, campaign_settings)
    packet = out["packet"]
    assert {"summary", "evidence", "timeline", "campaign", "recommended_next_step"} <= set(packet)
    # the packet leaves the tool: its text is masked like the screen's, the author is a reference
    assert packet["masked"] and packet["evidence"]["item"]["text"] == mask_text("I will kill you tomorrow")
    assert "author_id" not in json.dumps(packet) and packet["author"]["author_ref"].startswith("author-")
    assert "u1" not in json.dumps(packet["evidence"])
    import os
    import stat

    assert stat.S_IMODE(os.stat(out["packet_path"]).st_mode) == 0o600
    assert "credible_threat" in [c["id"] for c in packet["evidence"]["escalation_criteria"]]
    assert packet["recommended_next_step"]["action"] == "refer_law_enforcement"
    assert json.loads(open(out["packet_path"], encoding="utf-8").read())["case_id"] == case_id
    assert out["case"]["state"] == "escalated"
    assert [e["action"] for e in packet["timeline"]][-1] == "case.claim"
    assert packet["timeline"][-1]["actor"] == "alice"


def test_broken_review_config(tmp_path, taxonomy):
    from core.config import ConfigError

    p = tmp_path / "review.yaml"
    p.write_text("version: 1\nmask_policies: [nonsense]\n")
    from labeling.review_config import load_review_settings

    with pytest.raises(ConfigError, match="mask_policies"):
        load_review_settings(p, taxonomy)


def test_packets_filed_in_the_same_second_never_overwrite(sqlite_store, taxonomy, make_scored, queue_config,
                                                          review_settings, campaign_settings):
    make_scored(sqlite_store, [{"id": str(i), "text": f"cheap pills {i}", "author": "u1"} for i in range(3)],
                {str(i): SPAM for i in range(3)})
    paths = {packets.escalate_with_packet(sqlite_store, taxonomy, _case_of(sqlite_store, f"reports:{i}"), "alice",
                                          "wave", queue_config, review_settings, campaign_settings)["packet_path"]
             for i in range(3)}
    assert len(paths) == 3


def test_show_case_masks_unless_revealed_and_the_reveal_is_audited(sqlite_store, taxonomy, make_scored,
                                                                   review_settings):
    make_scored(sqlite_store, [{"id": "h", "text": "they are vermin", "author": "u9"}], {"h": HATE})
    case_id = _case_of(sqlite_store, "reports:h")
    shown = packets.show_case(sqlite_store, case_id, review_settings)
    assert shown["masked"] and "vermin" not in shown["item"]["text"]
    revealed = packets.show_case(sqlite_store, case_id, review_settings, reveal_by="lead", taxonomy=taxonomy)
    assert revealed["item"]["text"] == "they are vermin"
    with sqlite_store.read() as conn:
        ev = conn.execute(select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id.desc())).first()
    assert tuple(ev) == ("lead", "text.reveal")


def test_author_history_and_similar_texts_are_masked_too(sqlite_store, taxonomy, make_scored, queue_config,
                                                         review_settings, campaign_settings):
    from labeling.decisions import decide

    make_scored(sqlite_store, [{"id": "1", "text": "they are vermin", "author": "u7"},
                               {"id": "2", "text": "they are   VERMIN", "author": "u7"}], {"1": HATE, "2": HATE})
    decide(sqlite_store, taxonomy, _case_of(sqlite_store, "reports:1"), "bob", "hate", config=queue_config)
    packet = packets.review_packet(sqlite_store, taxonomy, _case_of(sqlite_store, "reports:2"), review_settings,
                                   campaign_settings)
    assert "vermin" not in json.dumps(packet).lower()
