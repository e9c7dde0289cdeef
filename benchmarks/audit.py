"""Audit chain cost: verifying a keyed chain against reading it, and decisions per second with the
keyed chain and decision binding against the unkeyed chain without binding (issue 15).

1. A fresh SQLite store (under benchmarks/.cache, removed afterwards) is filled with `--events`
   keyed events, one in four a `decision.create` that binds a decision row (so verify also
   checks decisions both ways). `read_s` is the time to read every event and every decision row
   through the same SQLAlchemy path verify uses; `verify_s` is `audit.verify` over them.
   Figure: `verify_vs_read` = verify_s / read_s (target <= 3.0).
2. Two stores with the same cases; `--decisions` cases are decided through the product's
   `decide` in alternating rounds: one store with today's chain (HMAC-SHA256 + the decision's
   content hash in its event), the other with the chain before issue 15 (plain SHA-256 of the
   head, no binding; the old `record` restored for that store only). Claims are not timed.
   Figure: `decide_ratio` = keyed decisions/s / unkeyed decisions/s (target >= 0.8), same process.

The default is 200,000 events, not 1,000,000: on the two shared cores of the development
machine a million takes minutes to fill; pass `--events 1000000` for the full size.

Usage: python benchmarks/audit.py [--events 200000] [--decisions 400] [--rounds 4]
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache" / "audit"
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fill_chain(store, n: int, chunk: int = 20_000) -> int:
    """n keyed events, every fourth binding a fresh decision row; returns the number of decisions."""
    from sqlalchemy import insert

    from core import audit
    from core.schema import AuditEvent, Decision

    E, D = AuditEvent.__table__, Decision.__table__
    key = store.audit_key.get()
    prev, t0, made = audit.GENESIS, dt.datetime(2026, 11, 1), 0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        with store.begin() as conn:
            n_dec = sum(1 for i in range(start, start + m) if i % 4 == 3)
            ids = []
            if n_dec:
                ids = conn.execute(insert(D).returning(D.c.id, sort_by_parameter_order=True), [
                    dict(case_id=None, item_id=None, reviewer=f"analyst{j % 7}", kind="review", label="scam",
                         action="block_sender", severity="P1", policy_ref="TS-FRAUD-2.1", rationale=None,
                         model_version="m1", model_label="scam", model_score=0.91, is_override=False,
                         taxonomy_version="2026.11.1", created_at=t0 + dt.timedelta(seconds=start + j))
                    for j in range(n_dec)]).scalars().all()
            digests = audit.bind(conn, ids)
            rows, k = [], 0
            for i in range(start, start + m):
                ts = t0 + dt.timedelta(seconds=i, microseconds=i % 999_983)
                if i % 4 == 3:
                    did = ids[k]
                    k += 1
                    action, etype, payload = "decision.create", "case", {
                        "decisions": [did], "kind": "review", "label": "scam", "action": "block_sender",
                        "bound": {str(did): digests[str(did)]}}
                else:
                    action, etype, payload = "case.claim", "case", {"queue": "fraud", "lease_seconds": 900}
                h = audit.keyed_hash(key, prev, ts, f"analyst{i % 7}", action, etype, str(i), payload)
                rows.append(dict(ts=ts, actor=f"analyst{i % 7}", action=action, entity_type=etype, entity_id=str(i),
                                 payload=payload, prev_hash=prev, hash=h))
                prev = h
            conn.execute(insert(E), rows)
            made += len(ids)
        log(f"  filled {start + m:,} / {n:,} events")
    return made


def time_read_and_verify(store) -> tuple[float, float, dict]:
    from sqlalchemy import select

    from core import audit
    from core.schema import AuditEvent, Decision

    E, D = AuditEvent.__table__, Decision.__table__
    with store.read() as conn:
        t = time.perf_counter()
        n = sum(1 for _ in conn.execute(select(E).order_by(E.c.id).execution_options(yield_per=10000)).mappings())
        n += sum(1 for _ in conn.execute(select(D).order_by(D.c.id).execution_options(yield_per=10000)).mappings())
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        result = audit.verify(conn)
        verify_s = time.perf_counter() - t
    assert result.ok, result.problems
    return read_s, verify_s, result.as_dict() | {"rows_read": n}


def legacy_record(conn, actor, action, entity_type=None, entity_id=None, payload=None):
    """`core.audit.record` as it was before issue 15: plain SHA-256 over the head hash."""
    from sqlalchemy import insert, select, text

    from core import audit
    from core.schema import utcnow

    T = audit.AuditEvent.__table__
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit._LOCK_KEY})
    prev = conn.execute(select(T.c.hash).order_by(T.c.id.desc()).limit(1)).scalar() or audit.GENESIS
    ts = utcnow()
    eid = None if entity_id is None else str(entity_id)
    payload = json.loads(json.dumps(payload, default=str)) if payload is not None else None
    digest = audit.event_hash(prev, ts, actor, action, entity_type, eid, payload)
    conn.execute(insert(T).values(ts=ts, actor=actor, action=action, entity_type=entity_type,
                                  entity_id=eid, payload=payload, prev_hash=prev, hash=digest))
    return digest


def prepare_cases(store, taxonomy, cfg, n: int) -> None:
    from sqlalchemy import insert

    from core.schema import Item, Prediction, utcnow
    from labeling.cases import build_cases

    now = utcnow()
    others = [lbl for lbl in taxonomy.labels if lbl != "scam"]
    scores = {lbl: (0.9 if lbl == "scam" else 0.1 / len(others)) for lbl in taxonomy.labels}
    with store.begin() as conn:
        conn.execute(insert(Item.__table__), [dict(
            id=f"i{i}", source="bench", surface="sms", text=f"claim your prize {i}",
            text_hash=hashlib.sha1(str(i).encode()).hexdigest(), ingested_at=now, created_at=now) for i in range(n)])
        conn.execute(insert(Prediction.__table__), [dict(
            item_id=f"i{i}", model_version="bench-1", label="scam", score=0.9, scores=scores, uncertainty=0.1,
            taxonomy_version=taxonomy.version, created_at=now) for i in range(n)])
    build_cases(store, taxonomy, cfg, now=now, progress=False)


def decide_round(store, taxonomy, cfg, n: int, legacy: bool) -> tuple[int, float]:
    from core import audit
    from labeling import decisions as DEC
    from labeling.claims import next_case

    real_record, real_bind = audit.record, audit.bind
    done, spent = 0, 0.0
    try:
        if legacy:
            audit.record, audit.bind = legacy_record, (lambda conn, ids: {})
        for _ in range(n):
            case = next_case(store, "ann", "fraud", config=cfg)
            if case is None:
                break
            t = time.perf_counter()
            DEC.decide(store, taxonomy, case["id"], "ann", "scam", "block_sender", config=cfg)
            spent += time.perf_counter() - t
            done += 1
    finally:
        audit.record, audit.bind = real_record, real_bind
    return done, spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--decisions", type=int, default=400, help="decisions per store in part 2")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()

    from core.config import config_dir
    from core.store import Store
    from core.taxonomy import load_taxonomy
    from labeling.queue_config import load_queue_config

    run_dir = CACHE / uuid.uuid4().hex[:8]
    out: dict = {"benchmark": "audit", "backend": "sqlite", "events": args.events}
    try:
        log(f"part 1: {args.events:,} keyed events")
        store = Store(run_dir / "chain")
        store.migrate()
        t = time.perf_counter()
        out["decisions_in_chain"] = fill_chain(store, args.events)
        out["fill_s"] = round(time.perf_counter() - t, 1)
        read_s, verify_s, res = time_read_and_verify(store)
        store.dispose()
        out.update(read_s=round(read_s, 2), verify_s=round(verify_s, 2), verify_vs_read=round(verify_s / read_s, 2),
                   target_verify_vs_read=3.0, verify_events_per_s=round(args.events / verify_s))

        log(f"part 2: {args.decisions} decisions per store, {args.rounds} alternating rounds")
        taxonomy = load_taxonomy()
        cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(
            update={"qa_share": 0.0, "calibration_sets": []})
        stores = {}
        for mode in ("keyed", "unkeyed"):
            stores[mode] = Store(run_dir / mode)
            stores[mode].migrate()
            prepare_cases(stores[mode], taxonomy, cfg, args.decisions)
        totals = {m: [0, 0.0] for m in stores}
        per_round = max(1, args.decisions // args.rounds)
        for r in range(args.rounds):
            for mode in (("keyed", "unkeyed") if r % 2 == 0 else ("unkeyed", "keyed")):
                n, s = decide_round(stores[mode], taxonomy, cfg, per_round, legacy=mode == "unkeyed")
                totals[mode][0] += n
                totals[mode][1] += s
        with stores["keyed"].read() as conn:
            from core import audit
            assert audit.verify(conn).ok
        for s in stores.values():
            s.dispose()
        rate = {m: totals[m][0] / totals[m][1] for m in totals}
        out.update(decide_keyed_per_s=round(rate["keyed"], 1), decide_unkeyed_per_s=round(rate["unkeyed"], 1),
                   decisions_timed=totals["keyed"][0], decide_ratio=round(rate["keyed"] / rate["unkeyed"], 3),
                   target_decide_ratio=0.8)
        out["ok"] = out["verify_vs_read"] <= 3.0 and out["decide_ratio"] >= 0.8
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
