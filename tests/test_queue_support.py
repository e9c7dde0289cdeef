"""Small fixtures for the queue, decision, appeal and KPI tests (no tests of its own).

Items and predictions are written directly, the way batch scoring writes them, so these tests
do not depend on the models package.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import threading
from typing import Any, Callable, Iterable, Iterator, Optional

from sqlalchemy import event, insert, select

from core.schema import Campaign, CampaignMember, Case, Item, Prediction
from core.text import text_hash

T0 = dt.datetime(2026, 11, 25, 8, 0, 0)
MODEL = "test-model-1"


def scores_for(taxonomy, label: str, p: float) -> dict[str, float]:
    """A score vector with `p` on `label` and the rest spread evenly over the other labels."""
    others = [lbl for lbl in taxonomy.labels if lbl != label]
    return {lbl: (p if lbl == label else (1 - p) / len(others)) for lbl in taxonomy.labels}


def add_scored(store, taxonomy, specs: Iterable[dict[str, Any]], model: str = MODEL) -> list[str]:
    """Insert items with one prediction each. A spec: id, label, p, and optionally text, surface,
    source, meta, uncertainty."""
    items, preds = [], []
    for s in specs:
        text = s.get("text", f"message {s['id']}")
        items.append({"id": s["id"], "source": s.get("source", "test"), "surface": s.get("surface", "sms"),
                      "text": text, "text_hash": text_hash(text), "metadata": s.get("meta"), "ingested_at": T0,
                      "created_at": T0, "policy_label": s.get("truth")})
        scores = s.get("scores") or scores_for(taxonomy, s["label"], s["p"])
        preds.append({"item_id": s["id"], "model_version": model, "label": s["label"], "score": scores[s["label"]],
                      "scores": scores, "uncertainty": s.get("uncertainty", 1 - s.get("p", 0.5)),
                      "taxonomy_version": taxonomy.version, "created_at": T0})
    with store.begin() as conn:
        conn.execute(insert(Item.__table__), items)
        conn.execute(insert(Prediction.__table__), preds)
    return [s["id"] for s in specs]


def add_campaign(store, item_ids: list[str], added_at: Optional[dt.datetime] = None) -> int:
    with store.begin() as conn:
        cid = conn.execute(insert(Campaign.__table__).values(
            exemplar_item_id=item_ids[0], size=len(item_ids), first_seen=T0, last_seen=T0, status="active",
            created_at=T0, updated_at=T0).returning(Campaign.__table__.c.id)).scalar_one()
        conn.execute(insert(CampaignMember.__table__), [
            {"item_id": i, "campaign_id": cid, "linked_by": "test", "similarity": 0.95, "added_at": added_at or T0}
            for i in item_ids])
    return int(cid)


def meeting(parties: int = 2, seconds: float = 2.0) -> Callable[[], None]:
    """A wait for `parties` threads to meet, giving up after `seconds`: two writers that meet
    there both read before either wrote; serialised, the second never arrives in time."""
    barrier = threading.Barrier(parties, timeout=seconds)

    def meet() -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
    return meet


def at_once(*calls: Callable[[], Any], catch: tuple[type[BaseException], ...] = (Exception,)) -> list[Any]:
    """Run each call in its own thread at the same time; their results (or the exception of a
    type in `catch`), in call order."""
    out: list[Any] = [None] * len(calls)

    def run(i: int, fn: Callable[[], Any]) -> None:
        try:
            out[i] = fn()
        except catch as exc:
            out[i] = exc
    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def quiet(queue_config):
    """The queue config without QA draws, calibration sets or learning shares: only the cases a
    test builds, planned by their own features."""
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": [],
                                           "learning": queue_config.learning.model_copy(update={"queues": {}})})


def case_row(store, case_id: int) -> dict[str, Any]:
    """One case's stored row."""
    with store.read() as conn:
        return dict(conn.execute(select(Case.__table__).where(Case.id == case_id)).mappings().one())


def case_ids(store, campaign_key: Callable[[int], str] = lambda c: "campaign") -> dict[str, int]:
    """{item id, or `campaign_key(campaign id)` for a campaign case: case id}."""
    with store.read() as conn:
        rows = conn.execute(select(Case.id, Case.item_id, Case.campaign_id)).all()
    return {(campaign_key(r.campaign_id) if r.campaign_id is not None else r.item_id): r.id for r in rows}


@contextlib.contextmanager
def listening(store: Any, hook: Callable[..., None]) -> Iterator[None]:
    """`hook` on every statement either of the store's engines (writes, snapshot reads) runs while inside."""
    engines = {id(e): e for e in (store.engine, getattr(store, "read_engine", store.engine))}.values()
    for e in engines:
        event.listen(e, "before_cursor_execute", hook)
    try:
        yield
    finally:
        for e in engines:
            event.remove(e, "before_cursor_execute", hook)


@contextlib.contextmanager
def asked(store: Any) -> Iterator[list[int]]:
    """[statements run, values bound] while inside: what a read asks of the store, to prove a page
    view bounded (the same for 20 and 2,000 rows) without timing anything."""
    seen = [0, 0]

    def count(conn: Any, cursor: Any, statement: Any, params: Any, context: Any, executemany: Any) -> None:
        seen[0] += 1
        seen[1] += len(params) if isinstance(params, (list, tuple, dict)) else 0

    with listening(store, count):
        yield seen
