"""A campaign too big to read for every case view is counted up to the cap, never read whole:
`term_evidence` read every member id (100,000 on a real scam wave) before comparing with the cap."""
from __future__ import annotations

import clustering.explore as explore
from test_queue_support import add_campaign, add_scored


def test_an_oversized_campaign_is_not_read_for_its_terms(any_store, taxonomy, monkeypatch):
    ids = add_scored(any_store, taxonomy, [{"id": f"m{i}", "label": "spam", "p": 0.9, "text": f"cheap watches {i}"}
                                           for i in range(12)])
    cid = add_campaign(any_store, ids)
    with any_store.read() as conn:
        full = explore.term_evidence(conn, cid)  # under the cap: read and judged

    def read_all(*a, **k):
        raise AssertionError("every member id was read for a campaign over the cap")

    monkeypatch.setattr(explore, "_member_ids", read_all)
    with any_store.read() as conn:
        terms, per_term = explore.term_evidence(conn, cid, max_members=8)
    assert terms == full[0] and all(e["unscored"] == 1 for e in per_term)  # each term unknown: masked
    with any_store.read() as conn:  # exactly at the cap it is still read
        try:
            explore.term_evidence(conn, cid, max_members=12)
        except AssertionError as exc:
            assert "every member id" in str(exc)
        else:
            raise AssertionError("a campaign at the cap was not read")
