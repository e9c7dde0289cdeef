"""Every free-text reason a person writes (a decision's or a correction's rationale, an appeal and
its resolution, an escalation, a promotion's reason) is kept for good in the decision rows and
the audit log: over `core.text.MAX_REASON_CHARS` it is refused with one line naming the field,
and nothing is stored."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.schema import AuditEvent, Decision
from core.text import MAX_REASON_CHARS, reason_length_error
from evaluation.promotion import PromotionError, promote_through_gate
from labeling.appeals import appeal
from labeling.decisions import correct, decide
from labeling.errors import DecisionError, QueueError
from labeling.escalation import escalate
from test_promotion_gate import MODELS, loop  # noqa: F401 (the fixture)

LONG = "x" * (MAX_REASON_CHARS + 1)


def _counts(store):
    with store.read() as conn:
        return (conn.execute(select(func.count()).select_from(Decision)).scalar(),
                conn.execute(select(func.count()).select_from(AuditEvent)).scalar())


def test_the_rule():
    assert reason_length_error("x" * MAX_REASON_CHARS, "a reason") is None
    assert reason_length_error(None, "a reason") is None
    assert reason_length_error(LONG, "a reason") == (
        f"a reason has at most {MAX_REASON_CHARS:,} characters, this one has {MAX_REASON_CHARS + 1:,}")


def test_every_reason_over_the_limit_is_refused_and_nothing_is_stored(loop, taxonomy, queue_config):  # noqa: F811
    store, champ, ids = loop
    from core.schema import Case

    with store.read() as conn:
        case = conn.execute(select(Case.id).where(Case.state == "open", Case.campaign_id.is_(None))).scalar()
        decided = conn.execute(select(Decision.id)).scalar()
    before = _counts(store)
    with pytest.raises(DecisionError, match="a rationale has at most"):
        decide(store, taxonomy, case, "ann", "spam", rationale=LONG, config=queue_config)
    with pytest.raises(DecisionError, match="a rationale has at most"):
        correct(store, taxonomy, decided, "ann", "spam", rationale=LONG)
    with pytest.raises(DecisionError, match="an appeal's reason has at most"):
        appeal(store, ids[100], "someone", LONG, taxonomy, config=queue_config)
    with pytest.raises(QueueError, match="an escalation's reason has at most"):
        escalate(store, taxonomy, case, "ann", LONG, queue_config)
    with pytest.raises(PromotionError, match="a reason has at most"):
        promote_through_gate(store, taxonomy, champ, models_config=MODELS, queue_config=queue_config, actor="eng",
                             force=True, reason=LONG)
    assert _counts(store) == before
