"""Where `evaluation.promotion.retrain_due` starts counting: the last decision a retrain saw.

The automatic retrain counts the human decisions made after the champion's training data and
after the latest gate verdict (a refused retrain is not repeated on the same evidence). "After"
is the store's order, the decision id (`core.labels.record_key`), never `created_at`: that is the
clock of the web server that wrote the decision, and a server 5 minutes behind the trainer wrote
decisions stamped before the champion or the verdict although they came after it; they never
counted toward the retrain or the override alarm. So each mark records the last decision id its
data held (`decisions_through`: in the champion's metrics at training, in the `model.gate`
payload at the verdict), and the mark events themselves are ordered by their audit ids (the
chain's insertion order). A row written before the id was recorded (or a hand-edited one that is
no decision id) falls back to the time rule: decisions stamped after its time.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import Connection, ColumnElement, and_, select, true

from core.schema import AuditEvent, Decision, ModelVersion

GATE_ACTION = "model.gate"
TRAIN_ACTION = "model.train"


@dataclass(frozen=True)
class Mark:
    """One point the count starts after: the champion's training or a gate verdict."""

    time: Optional[dt.datetime]        # its stored time: the time rule, and the drift window's test
    decision_id: Optional[int] = None  # the last decision id its data held; None: the time rule
    audit_id: Optional[int] = None     # its audit event (orders marks and failures); None: by time

    def decisions_after(self, decision_id: Any, created_at: Any) -> ColumnElement[bool]:
        if self.decision_id is not None:
            return decision_id > self.decision_id
        return created_at > self.time if self.time is not None else true()

    def events_after(self, event_id: Any, ts: Any) -> ColumnElement[bool]:
        if self.audit_id is not None:
            return event_id > self.audit_id
        return ts > self.time if self.time is not None else true()


def decision_id(value: Any) -> Optional[int]:
    """A recorded `decisions_through` as a decision id, or None (absent, or a hand edit: "abc",
    true, a float, a negative number) so that the time rule applies instead."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def counting_marks(conn: Connection, champ: dict[str, Any]) -> tuple[Mark, Optional[Mark]]:
    """(the later mark, the earlier one when it too has a decision id): the champion's training
    and the latest gate verdict, the later by audit id where both have an event (else by stored
    time, the old rule). A decision counts when it comes after both (`after_marks`)."""
    MV, AE = ModelVersion.__table__, AuditEvent.__table__
    metrics = champ.get("metrics") or {}
    trained = conn.execute(select(MV.c.created_at).where(MV.c.id == champ["id"])).scalar()  # the stored time itself
    train_event = conn.execute(select(AE.c.id).where(AE.c.action == TRAIN_ACTION, AE.c.entity_id == champ["id"])
                               .order_by(AE.c.id.desc()).limit(1)).scalar()
    champion = Mark(trained, decision_id(metrics.get("decisions_through")) if metrics.get("train_side_only") else None,
                    train_event)
    g = conn.execute(select(AE.c.id, AE.c.ts, AE.c.payload).where(AE.c.action == GATE_ACTION)
                     .order_by(AE.c.id.desc()).limit(1)).first()
    if g is None:
        return champion, None
    payload = g.payload if isinstance(g.payload, dict) else {}
    gate = Mark(g.ts, decision_id(payload.get("decisions_through")), g.id)
    if champion.audit_id is not None:
        gate_later = g.id > champion.audit_id
    else:  # a registry row without its training event: by the stored times, as before
        gate_later = trained is None or naive_utc(g.ts) > naive_utc(trained)
    later, earlier = (gate, champion) if gate_later else (champion, gate)
    return later, earlier if earlier.decision_id is not None else None


def after_marks(later: Mark, earlier: Optional[Mark]) -> ColumnElement[bool]:
    """The decisions made after both marks (the earlier one only by its decision id)."""
    D = Decision.__table__
    cond = later.decisions_after(D.c.id, D.c.created_at)
    return and_(cond, D.c.id > earlier.decision_id) if earlier is not None and earlier.decision_id is not None else cond


def naive_utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo is not None else t
