"""For the lead: the Review screen's similar past decisions and the Appeals tab (labeling.packets,
labeling.appeals) name a peer only to a lead; append to tests/test_hardening_decisions_privacy.py."""
from __future__ import annotations

from core.principals import Principal
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.decisions import decide
from labeling.reviewer_names import reviewer_pseudonym

import test_context
from test_queue_support import add_scored

world = test_context.world


def test_similar_decisions_name_peers_to_leads_only(any_store, taxonomy, queue_config, review_settings,
                                                    campaign_settings, roles):
    from labeling.packets import review_packet

    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    add_scored(any_store, taxonomy, [{"id": f"s{i}", "label": "spam", "p": 0.9, "text": "win a prize"} for i in range(2)])
    build_cases(any_store, taxonomy, cfg, progress=False)
    first = next_case(any_store, "bob", "spam", config=cfg)
    decide(any_store, taxonomy, first["id"], "bob", "spam", config=cfg)
    other = next_case(any_store, "ann", "spam", config=cfg)

    def by(viewer):
        p = review_packet(any_store, taxonomy, other["id"], review_settings, campaign_settings, viewer=viewer, config=cfg)
        return [r["reviewer"] for r in p["similar_decisions"]]

    assert by(Principal("lea", "lead")) == ["bob"] and by(Principal("bob", "analyst")) == ["bob"]
    assert by(Principal("ann", "analyst")) == [reviewer_pseudonym(any_store.audit_key.get(), "bob")]


def test_open_appeals_name_the_decider_to_leads_only(world, taxonomy, review_settings, roles):
    from labeling.appeals import appeal, open_appeals

    store, cfg = world
    appeal(store, "old1", "u9", "I was quoting a song", taxonomy, config=cfg)
    [lead] = open_appeals(store, review_settings, config=cfg, principal=Principal("lea", "lead"))
    [peer] = open_appeals(store, review_settings, config=cfg, principal=Principal("bob", "analyst"))
    assert lead["decision"]["reviewer"] == "lee"
    assert peer["decision"]["reviewer"] == reviewer_pseudonym(store.audit_key.get(), "lee")
