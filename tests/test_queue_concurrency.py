"""8 processes claim from one queue of 2,000 cases: every case claimed exactly once, none lost.

Run against SQLite (BEGIN IMMEDIATE serialises the select-then-update across processes) and the
real PostgreSQL server (FOR UPDATE SKIP LOCKED).
"""
from __future__ import annotations

import multiprocessing as mp
from collections import Counter

import pytest
from sqlalchemy import func, insert, select

from core import audit
from core.schema import Case
from core.config import config_dir
from labeling.queue_config import load_queue_config
from core.schema import utcnow

N_CASES = 2000
N_WORKERS = 8


def _claim_all(data_dir: str, url: str | None, config: dict, name: str, start) -> list[int]:
    from labeling.claims import next_case
    from labeling.queue_config import QueueConfig
    from core.store import Store

    store = Store(data_dir, url)
    cfg = QueueConfig.model_validate(config)
    start.wait()  # all workers race from the same moment
    got = []
    try:
        while (c := next_case(store, name, "fraud", config=cfg, detail=False)) is not None:
            got.append(c["id"])
    finally:
        store.dispose()
    return got


def _fill(store) -> None:
    now = utcnow()
    rows = [{"queue": "fraud", "state": "open", "priority": float(i % 97) / 97, "priority_reason": "test",
             "is_audit": False, "created_at": now, "updated_at": now} for i in range(N_CASES)]
    with store.begin() as conn:
        conn.execute(insert(Case.__table__), rows)


def _race(store) -> None:
    cfg = load_queue_config(config_dir())
    _fill(store)
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(N_WORKERS)
        with ctx.Pool(N_WORKERS) as pool:
            url = None if store.is_sqlite else store.url
            jobs = [pool.apply_async(_claim_all, (str(store.data_dir), url, cfg.model_dump(), f"w{i}", start))
                    for i in range(N_WORKERS)]
            results = [j.get(timeout=300) for j in jobs]
    claimed = [cid for r in results for cid in r]
    dupes = [cid for cid, n in Counter(claimed).items() if n > 1]
    assert not dupes, f"claimed twice: {dupes[:10]}"
    assert len(claimed) == N_CASES
    assert sum(1 for r in results if r) >= 2, "only one worker claimed anything: no race was tested"
    with store.read() as conn:
        rows = conn.execute(select(Case.__table__.c.id, Case.__table__.c.state, Case.__table__.c.claimed_by)).all()
        claims = conn.execute(select(func.count()).select_from(audit.AuditEvent.__table__)
                              .where(audit.AuditEvent.__table__.c.action == "case.claim")).scalar()
    assert len(rows) == N_CASES and all(r.state == "claimed" for r in rows)
    owner = {cid: f"w{i}" for i, r in enumerate(results) for cid in r}
    assert all(owner[r.id] == r.claimed_by for r in rows)
    assert claims == N_CASES


def test_eight_processes_claim_each_case_once_sqlite(sqlite_store):
    _race(sqlite_store)


@pytest.mark.postgres
def test_eight_processes_claim_each_case_once_postgresql(pg_store):
    _race(pg_store)
