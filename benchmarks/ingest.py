"""Ingest throughput and memory: 100k and 1M rows resampled from the shared data into SQLite.

Prints one JSON line. Each size runs in a fresh child process and a fresh data directory, so
peak RSS is that run's own. Figures:
- rows_per_s at 1M (target >= 20,000) and peak_rss_mb at 1M (target < 600),
- per_row_cost_ratio = (seconds per row at 1M) / (seconds per row at 100k) (target <= 1.5),
- vs_raw_sqlite: our rows/s as a share of a bare sqlite3 executemany of the same rows into a
  table with the same primary key (the floor cost of storing, no parsing or validation).

Usage: python benchmarks/ingest.py [--rows 1000000] [--small 100000]
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
sys.path.insert(0, str(ROOT))


def generate(n: int, path: Path) -> Path:
    """n rows resampled (seeded) from both shared datasets, with ids, authors and times."""
    if path.exists():
        return path
    from tqdm import tqdm

    from core.sources import load_labelled

    pool = []
    for name in ("sms_spam", "davidson"):
        df = load_labelled(name)
        pool += list(zip(df["text"], df["policy_label"]))
    rng = random.Random(42)
    start = dt.datetime(2026, 1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "author", "created_at", "label", "country"])
        for i in tqdm(range(n), desc=f"generate {n:,} rows", unit=" rows", mininterval=1):
            text, label = pool[rng.randrange(len(pool))]
            ts = start + dt.timedelta(seconds=rng.randrange(30 * 86400))
            w.writerow([f"r{i}", text, f"user{rng.randrange(50_000)}", ts.isoformat(), label,
                        rng.choice(("GB", "US", "IN", "NG", "BR"))])
    tmp.rename(path)
    return path


def child(path: str, data_dir: str) -> None:
    """Run one ingest and print its own timing and peak memory."""
    from core.ingest import ColumnMap, ingest_paths
    from core.store import open_store
    from core.taxonomy import load_taxonomy

    store = open_store(data_dir)
    tax = load_taxonomy()
    cols = ColumnMap(id="id", text="text", author="author", created="created_at", label="label", meta=["country"])
    t0 = time.perf_counter()
    summary = ingest_paths(store, tax, [path], source="bench", columns=cols, actor="benchmark", progress=True)
    secs = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": secs, "stored": summary.total("stored"), "read": summary.total("read"),
                      "quarantined": summary.total("quarantined"), "peak_rss_mb": rss_mb}))


def run_child(path: Path) -> dict:
    data_dir = tempfile.mkdtemp(prefix="wb-bench-ingest-")
    try:
        out = subprocess.run([sys.executable, __file__, "--child", str(path), data_dir],
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def raw_sqlite_rows_per_s(path: Path, limit: int) -> float:
    """The floor: bare executemany of pre-parsed rows into a table keyed like ours."""
    with open(path, newline="", encoding="utf-8") as fh:
        r = csv.reader(fh)
        next(r)
        rows = [row for _, row in zip(range(limit), r)]
    d = tempfile.mkdtemp(prefix="wb-bench-raw-")
    try:
        db = sqlite3.connect(os.path.join(d, "raw.db"))
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, text TEXT, author TEXT, created TEXT, label TEXT, country TEXT)")
        t0 = time.perf_counter()
        for i in range(0, len(rows), 5000):
            db.executemany("INSERT OR IGNORE INTO t VALUES (?,?,?,?,?,?)", rows[i:i + 5000])
            db.commit()
        secs = time.perf_counter() - t0
        db.close()
        return len(rows) / secs
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--child", nargs=2, metavar=("PATH", "DATA_DIR"))
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return

    big = generate(args.rows, CACHE / f"ingest_{args.rows}.csv")
    small = CACHE / f"ingest_{args.small}.csv"
    if not small.exists():
        with open(big, encoding="utf-8", newline="") as src, open(small, "w", encoding="utf-8", newline="") as dst:
            r, w = csv.reader(src), csv.writer(dst)
            w.writerows(row for _, row in zip(range(args.small + 1), r))

    print(f"ingesting {args.small:,} rows ...", file=sys.stderr)
    s = run_child(small)
    print(f"ingesting {args.rows:,} rows ...", file=sys.stderr)
    b = run_child(big)
    raw = raw_sqlite_rows_per_s(small, args.small)

    rps_big = b["stored"] / b["seconds"]
    rps_small = s["stored"] / s["seconds"]
    cost_ratio = (b["seconds"] / b["stored"]) / (s["seconds"] / s["stored"])
    result = {
        "benchmark": "ingest",
        "rows": b["stored"], "seconds": round(b["seconds"], 1),
        "rows_per_s": round(rps_big), "rows_per_s_100k": round(rps_small),
        "peak_rss_mb": round(b["peak_rss_mb"]), "peak_rss_mb_100k": round(s["peak_rss_mb"]),
        "per_row_cost_ratio_1m_vs_100k": round(cost_ratio, 3),
        "raw_sqlite_rows_per_s": round(raw), "vs_raw_sqlite": round(rps_small / raw, 3),
        "quarantined": b["quarantined"],
        "targets": {"rows_per_s>=20000": rps_big >= 20_000, "peak_rss_mb<600": b["peak_rss_mb"] < 600,
                    "per_row_cost_ratio<=1.5": cost_ratio <= 1.5},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
