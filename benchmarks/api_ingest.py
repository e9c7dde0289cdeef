"""Batch ingest through the HTTP API vs file ingest of the same rows.

Generates N rows (seeded: ids, texts, authors, times), ingests them once from a JSONL file
(`core.ingest.ingest_paths`, the `workbench ingest` path) into a fresh SQLite store, and once
through `POST /api/v1/items` in batches (FastAPI's TestClient in process, a real bearer token,
JSON encoding and validation included, `score=false`) into another fresh store. Both stores must
end with the same item ids and texts. Prints one JSON line: rows/s of each and their ratio
(target >= 0.5).

Usage: python benchmarks/api_ingest.py [--rows 20000] [--batch 1000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ("free prize claim now account bank verify click link hello friend meeting tomorrow lunch "
         "offer winner urgent password update delivery parcel refund love great game").split()


def rows(n: int) -> list[dict]:
    rng = random.Random(42)
    start = dt.datetime(2026, 1, 1)
    return [{"id": f"r{i}", "text": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 30))),
             "author": f"user{rng.randrange(5000)}",
             "created_at": (start + dt.timedelta(seconds=rng.randrange(30 * 86400))).isoformat()}
            for i in range(n)]


def contents(store) -> dict[str, str]:
    from sqlalchemy import select

    from core.schema import Item

    with store.read() as conn:
        return dict(conn.execute(select(Item.id, Item.text)).all())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from core.accounts import add_user, create_token
    from core.config import config_dir
    from core.ingest import ColumnMap, ingest_paths
    from core.permissions import load_roles
    from core.store import open_store
    from core.taxonomy import load_taxonomy
    from workbench.api import create_app
    from workbench.context import AppContext

    data = rows(args.rows)
    taxonomy = load_taxonomy()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        # warm-up of both paths in a throwaway store (imports, first-call costs), not timed
        warm = tmp_path / "warm.jsonl"
        warm.write_text("".join(json.dumps(r) + "\n" for r in data[:200]), encoding="utf-8")
        warm_store = open_store(tmp_path / "warm")
        ingest_paths(warm_store, taxonomy, [str(warm)], source="warm", progress=False,
                     columns=ColumnMap(id="id", author="author", created="created_at"))
        add_user(warm_store, "ada", "admin", actor="setup", roles=load_roles(config_dir()), password="benchmark pw 1")
        TestClient(create_app(AppContext(store=warm_store))).post(
            "/api/v1/items?score=false", json={"source": "warm2", "items": data[:200]},
            headers={"Authorization": f"Bearer {create_token(warm_store, 'ada', actor='setup')['token']}"},
        ).raise_for_status()
        warm_store.dispose()

        # file ingest
        src = tmp_path / "platform.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
        file_store = open_store(tmp_path / "file")
        t0 = time.perf_counter()
        summary = ingest_paths(file_store, taxonomy, [str(src)], source="platform", progress=False,
                               columns=ColumnMap(id="id", author="author", created="created_at"))
        file_s = time.perf_counter() - t0
        assert summary.total("stored") == args.rows, summary.describe()

        # the API
        api_store = open_store(tmp_path / "api")
        roles = load_roles(config_dir())
        add_user(api_store, "ada", "admin", actor="setup", roles=roles, password="benchmark pw 1")  # the first
        add_user(api_store, "eng", "engineer", actor="setup", roles=roles, password="benchmark pw 2")
        token = create_token(api_store, "eng", actor="setup")["token"]
        client = TestClient(create_app(AppContext(store=api_store)))
        headers = {"Authorization": f"Bearer {token}"}
        stored = 0
        t0 = time.perf_counter()
        for i in range(0, len(data), args.batch):
            r = client.post("/api/v1/items?score=false", headers=headers,
                            json={"source": "platform", "items": data[i:i + args.batch]})
            r.raise_for_status()
            stored += r.json()["stored"]
        api_s = time.perf_counter() - t0

        same = contents(file_store) == contents(api_store)
        file_store.dispose()
        api_store.dispose()
    file_rps, api_rps = args.rows / file_s, args.rows / api_s
    print(json.dumps({"benchmark": "api_ingest", "rows": args.rows, "batch": args.batch,
                      "file_rows_per_s": round(file_rps), "api_rows_per_s": round(api_rps),
                      "api_vs_file": round(api_rps / file_rps, 3), "target": 0.5,
                      "meets_target": api_rps / file_rps >= 0.5, "api_stored": stored,
                      "same_items": same}))


if __name__ == "__main__":
    main()
