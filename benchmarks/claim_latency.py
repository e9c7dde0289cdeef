"""Claim latency: `next_case` with 10k and with 1M open cases on SQLite.

The claim reads the first entry of `ix_cases_claim` (queue, state, priority DESC, id), so its
cost should not grow with the backlog. Each size gets a fresh SQLite store (under
benchmarks/.cache, removed afterwards) filled with cases spread over six queues (85% waiting,
15% decided, seeded priorities); then `--claims` claims are timed one by one through the product's
`next_case` (lease reclaim check, the claim, the audit event, one transaction each).

Figures: median and p95 milliseconds per claim at each size and `ratio_1m_vs_10k` of the medians
(target <= 2.0, the baseline being the 10k run in the same process). For contrast, the same
claim query forced to ignore its index (`NOT INDEXED`) is timed too: that is what a scan costs.

The issue's target is on SQLite (the default); `--backends sqlite,postgresql` also runs the
same measurement on a throw-away database of the local PostgreSQL server.

Usage: python benchmarks/claim_latency.py [--small 10000] [--large 1000000] [--claims 300]
                                          [--backends sqlite,postgresql]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache" / "claim_latency"
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

QUEUES = ("fraud", "hate-harassment", "spam", "general", "low-risk", "campaigns")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fill(store, n: int, seed: int, chunk: int = 50_000) -> None:
    """n cases over six queues; most waiting, some decided; seeded priorities and due times."""
    from tqdm import tqdm

    from core.schema import utcnow

    rng = np.random.default_rng(seed)
    now = utcnow()
    mark = "?" if store.is_sqlite else "%s"
    sql = ("INSERT INTO cases (item_id, queue, state, priority, priority_reason, severity, predicted_label, "
           "due_at, is_audit, created_at, updated_at, meta) VALUES (NULL, " + ", ".join([mark] * 11) + ")")
    meta = json.dumps({"features": {"risk": 0.2, "uncertainty": 0.1, "severity": "P1", "label": "scam"}})
    with store.begin() as conn, tqdm(total=n, desc=f"filling {n:,} cases", unit="case", file=sys.stderr,
                                     mininterval=1, leave=False) as bar:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            q = rng.integers(0, len(QUEUES), m)
            decided = rng.random(m) < 0.15
            pr = rng.random(m)
            rows = [(QUEUES[q[i]], "decided" if decided[i] else "open", float(pr[i]), "bench", "P1", "scam",
                     now, False, now, now, meta) for i in range(m)]
            conn.exec_driver_sql(sql, rows)
            bar.update(m)


@contextlib.contextmanager
def scratch_store(backend: str, n: int, pg_admin: str):
    """A fresh, empty store for one run: a SQLite folder under .cache, or a throw-away PG database."""
    from core.store import open_store

    folder = CACHE / f"{backend}-n{n}"
    shutil.rmtree(folder, ignore_errors=True)
    name = None
    url = None
    if backend == "postgresql":
        import psycopg

        name = f"wb_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_admin.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        url = pg_admin.rsplit("/", 1)[0] + "/" + name
    store = open_store(folder, url)
    try:
        yield store
    finally:
        store.dispose()
        shutil.rmtree(folder, ignore_errors=True)
        if name:
            import psycopg

            with psycopg.connect(pg_admin.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def time_claims(store, claims: int, cfg) -> list[float]:
    try:  # the queue pieces are moving from workbench.queue into labeling.*
        from labeling.claims import next_case
    except ImportError:  # not there yet in this checkout
        from workbench.queue import next_case

    out = []
    for i in range(claims):
        t0 = time.perf_counter()
        got = next_case(store, f"analyst{i % 7}", QUEUES[i % 3], config=cfg, detail=False)
        out.append((time.perf_counter() - t0) * 1000)
        assert got is not None
    return out


def time_scan(store, cfg, reps: int = 5) -> float:
    """Median ms of the claim query with its index out of play (SQLite NOT INDEXED; PostgreSQL
    with index scans disabled): what a scan and sort of the backlog costs."""
    try:
        from labeling.claims import claim_query
    except ImportError:
        from workbench.queue import claim_query

    sql = str(claim_query(cfg, "fraud", "nobody", store.dialect).compile(
        dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
    times = []
    with store.begin() as conn:
        if store.is_sqlite:
            sql = sql.replace("FROM cases", "FROM cases NOT INDEXED", 1)
        else:
            conn.exec_driver_sql("SET LOCAL enable_indexscan = off")
            conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
            conn.exec_driver_sql("SET LOCAL enable_indexonlyscan = off")
        for _ in range(reps):
            t0 = time.perf_counter()
            conn.exec_driver_sql(sql).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def run(backend: str, n: int, claims: int, seed: int, cfg, pg_admin: str) -> dict:
    with scratch_store(backend, n, pg_admin) as store:
        t0 = time.perf_counter()
        fill(store, n, seed)
        with store.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        log(f"[{backend}] {n:,} cases stored in {time.perf_counter() - t0:.1f}s; timing {claims} claims ...")
        time_claims(store, 20, cfg)  # warm the page cache and the connection pool
        ms = time_claims(store, claims, cfg)
        scan = time_scan(store, cfg)
        out = {"cases": n, "median_ms": round(float(np.median(ms)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
               "scan_query_ms": round(scan, 2)}
        log(f"[{backend}] {n:>9,}: claim median {out['median_ms']:.2f} ms, p95 {out['p95_ms']:.2f} ms; "
            f"unindexed query {scan:.1f} ms")
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=1_000_000)
    ap.add_argument("--claims", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--backends", default="sqlite",
                    help="comma-separated: sqlite and/or postgresql (a throw-away database on --pg-admin)")
    ap.add_argument("--pg-admin", default=os.environ.get("WORKBENCH_TEST_PG",
                                                         "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from core.config import config_dir
        from labeling.queue_config import load_queue_config

        cfg = load_queue_config(config_dir())
    except ImportError:  # not there yet in this checkout
        from workbench.queue import load_queue_config

        cfg = load_queue_config()
    started = time.perf_counter()
    out: dict = {"benchmark": "claim_latency", "claims_timed": args.claims, "targets": {"ratio_large_vs_small_max": 2.0},
                 "met": {}}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        small = run(backend, args.small, args.claims, args.seed, cfg, args.pg_admin)
        large = run(backend, args.large, args.claims, args.seed, cfg, args.pg_admin)
        ratio = large["median_ms"] / small["median_ms"]
        out[backend] = {"small": small, "large": large, "ratio_large_vs_small": round(ratio, 3),
                        "scan_ratio_large_vs_small": round(large["scan_query_ms"] / small["scan_query_ms"], 1)}
        out["met"][f"{backend}_ratio_le_2x"] = ratio <= 2.0
    out["all_met"] = all(out["met"].values())
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
