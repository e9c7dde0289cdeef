"""A promotion leaves the lead's re-review queue alone (issue 18). Label-error cases show the
scan's out-of-fold suggestion and blind QA re-reviews none; both are created without a model
version. The rescoring after a promotion took them for stale cases: the first promotion wrote the
champion's label over the scan's suggestion, and the second re-planned them into ordinary queues,
so decided items were served again to analysts and the re-review record was lost."""
from __future__ import annotations

from sqlalchemy import insert, select

from core.schema import Case, Decision, utcnow
from labeling.label_errors import find_label_errors
from labeling.rereview import draw_rereviews
from labeling.rescore import rescore_open_cases, stale_open_cases
from test_case_races import _new_champion
from test_promotion_gate import MODELS, make_loop
from test_seeding import BagOfWords

C = Case.__table__
SLIP = {"spam": "hate", "scam": "harassment", "hate": "spam", "harassment": "scam"}
KEPT = ("queue", "state", "predicted_label", "model_version", "priority", "priority_reason", "meta", "is_audit")


def _rereview_rows(store, queue):
    with store.read() as conn:
        return {r["id"]: {k: r[k] for k in KEPT} for r in conn.execute(select(C).where(C.c.queue == queue)).mappings()}


def test_promotions_leave_re_review_cases_as_they_were(sqlite_store, taxonomy, queue_config):
    queue = queue_config.label_errors.queue
    store, _, ids = make_loop(sqlite_store, taxonomy, queue_config)
    D = Decision.__table__
    with store.begin() as conn:  # six slips for the scan to find
        for i in ids[60:66]:
            old = conn.execute(select(D).where(D.c.item_id == i)).mappings().one()
            conn.execute(insert(D).values(item_id=i, label=SLIP.get(old["label"], "spam"),
                                          action="remove", kind="review", reviewer="bob", supersedes_id=old["id"],
                                          taxonomy_version="t", created_at=utcnow()))
    scan = find_label_errors(store, taxonomy, queue_config, "eng", BagOfWords(), max_cases=15)
    blind = draw_rereviews(store, queue_config, "lena", 5, seed=1)
    before = _rereview_rows(store, queue)
    assert scan["queued"] > 0, scan
    assert blind["drawn"] == 5 and len(before) == scan["queued"] + 5
    assert {r["model_version"] for r in before.values()} == {None}
    for _ in range(2):  # the second promotion is the one that used to move them out of the queue
        champ = _new_champion(store, taxonomy, ids)
        out = rescore_open_cases(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                                 progress=False)
        assert out["stale_left"] == 0 and stale_open_cases(store, queue_config) == []
        assert _rereview_rows(store, queue) == before
    with store.read() as conn:  # every other open case carries the new champion's prediction
        others = conn.execute(select(C.c.model_version).where(C.c.state.in_(("open", "claimed")),
                                                              C.c.queue != queue)).scalars().all()
    assert others and set(others) == {champ}
