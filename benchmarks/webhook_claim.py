"""Webhook claims behind a backlog: claiming 100 due deliveries with 1,000 vs 50,000 older ones in back-off.

After a receiver outage most pending deliveries wait in their back-off while newer events come
due. `core.outbox.claim` holds a delivery back while an older event about one of its items is
still pending for the same endpoint (per-item order). Each size gets a fresh store (SQLite under
benchmarks/.cache/webhook_claim, or a throw-away PostgreSQL database): `--small` / `--large`
events written through `core.outbox.enqueue` (one item each), then `--due` newer ones about
other items, all fanned out to one endpoint; the older deliveries are then put in back-off. The
timed unit is draining the due deliveries through the product's `claim` (batches of 20, one
transaction each, until none is left), leases reset between repetitions; the figure is the
median of `--reps` drains, the two sizes' stores open side by side and taking turns.

The same drains are timed with the previous held check (`previous_held`, the first per-item
order fix: every claim read and parsed the payload of every pending delivery up to the
candidates' outbox id) swapped in, for comparison. `plan_uses_index` says whether the held
query's plan reads `ix_outbox_items_item` (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN after
ANALYZE, where on 1,100 events the planner rightly prefers hashing whole tables; the target is
the large size's plan).

Figures (one JSON line): per backend, the drain's median ms at each size and
`ratio_large_vs_small` (target <= 2.0, the baseline being the small run in the same process),
the same for the previous implementation.

Usage: python benchmarks/webhook_claim.py [--small 1000] [--large 50000] [--due 100] [--reps 9]
                                          [--backends sqlite,postgresql]
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache" / "webhook_claim"
sys.path.insert(0, str(ROOT))

ENDPOINT = "enforcement"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def previous_held(conn, names: list[str], below: int) -> set[int]:  # type: ignore[no-untyped-def]
    """The held check before `outbox_items` (kept verbatim for the comparison)."""
    from sqlalchemy import select

    from core.outbox import WD, O, _items

    pending = conn.execute(
        select(WD.c.id, WD.c.endpoint, O.c.id.label("oid"), O.c.payload).join(O, O.c.event_id == WD.c.event_id)
        .where(WD.c.status == "pending", WD.c.endpoint.in_(names), O.c.id <= below)).mappings().all()
    unfanned = [_items(p) for (p,) in conn.execute(
        select(O.c.payload).where(O.c.fanned_out_at.is_(None), O.c.id < below))] if pending else []
    seen: dict[str, set[str]] = {n: set().union(*unfanned) for n in names}
    held: set[int] = set()
    for r in sorted(pending, key=lambda r: r["oid"]):
        items = _items(r["payload"])
        if items & seen[r["endpoint"]]:
            held.add(r["id"])
        seen[r["endpoint"]] |= items
    return held


def previous_adapter(conn, ids: list[int]) -> set[int]:  # type: ignore[no-untyped-def]
    """`previous_held` called as `claim` called it: the claim's endpoints, the candidates' highest outbox id."""
    from sqlalchemy import func, select

    from core.outbox import WD, O

    below = conn.execute(select(func.max(O.c.id)).join(WD, WD.c.event_id == O.c.event_id)
                         .where(WD.c.id.in_(ids))).scalar_one()
    return previous_held(conn, [ENDPOINT], below) & set(ids)


@contextlib.contextmanager
def scratch_store(backend: str, n: int, pg_admin: str):  # type: ignore[no-untyped-def]
    """A fresh, empty store for one run: a SQLite folder under .cache, or a throw-away PG database."""
    from core.store import open_store

    folder = CACHE / f"{backend}-n{n}"
    shutil.rmtree(folder, ignore_errors=True)
    name = url = None
    admin = pg_admin.replace("postgresql+psycopg://", "postgresql://")
    if backend == "postgresql":
        import psycopg

        name = f"wb_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as c:
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

            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(store, backlog: int, due: int) -> None:  # type: ignore[no-untyped-def]
    """`backlog` older events in back-off, then `due` newer ones due now; one item each."""
    from sqlalchemy import update

    from core import outbox
    from core.schema import WebhookDelivery

    with store.begin() as conn:
        for k in range(backlog + due):
            outbox.enqueue(conn, "decision.created",
                           {"decision_count": 1, "decisions": [{"id": k + 1, "item_id": f"item{k}", "label": "scam",
                                                                "action": "block_sender"}]}, f"decision.created:{k + 1}")
    with store.begin() as conn:
        while outbox.fan_out(conn, {ENDPOINT: outbox.EVENT_TYPES}, limit=5000):
            pass
    with store.begin() as conn:
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id <= backlog)
                     .values(next_attempt_at=dt.datetime(2100, 1, 1), attempts=3))
        conn.exec_driver_sql("ANALYZE")


def drain(store, due: int) -> float:  # type: ignore[no-untyped-def]
    """Ms to claim every due delivery (batches of 20, a transaction each), leases reset first."""
    from sqlalchemy import update

    from core import outbox
    from core.schema import WebhookDelivery

    with store.begin() as conn:
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.lease_owner.is_not(None))
                     .values(lease_owner=None, lease_expires_at=None, attempts=0))
    n, t0 = 0, time.perf_counter()
    while True:
        with store.begin() as conn:
            got = outbox.claim(conn, [ENDPOINT], "bench", 60, limit=20)
        if not got:
            break
        n += len(got)
    assert n == due, f"claimed {n} of {due} due deliveries"
    return (time.perf_counter() - t0) * 1000


def medians(stores: dict, due: int, reps: int) -> dict:
    """Median drain ms per store, the stores taking turns (a load spike on a shared machine
    then hits both sizes alike)."""
    times: dict = {n: [] for n in stores}
    for _ in range(reps):
        for n, store in stores.items():
            times[n].append(drain(store, due))
    return {n: sorted(t)[len(t) // 2] for n, t in times.items()}


def plan_uses_index(store) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    """Whether the held query over a batch of candidates reads `ix_outbox_items_item`."""
    from sqlalchemy import event, select

    from core import outbox
    from core.schema import WebhookDelivery

    seen: list[tuple[str, Any]] = []
    with store.begin() as conn:
        ids = list(conn.execute(select(WebhookDelivery.id).order_by(WebhookDelivery.id.desc()).limit(100)).scalars())

        def grab(c, cur, statement, params, ctx, many):  # type: ignore[no-untyped-def]
            seen.append((statement, params))
        event.listen(conn, "before_cursor_execute", grab)
        outbox._held(conn, ids)
        event.remove(conn, "before_cursor_execute", grab)
        statement, params = seen[-1]
        prefix = "EXPLAIN QUERY PLAN " if store.is_sqlite else "EXPLAIN "
        plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(prefix + statement, params))
    return "ix_outbox_items_item" in plan, plan


def run(backend: str, args: argparse.Namespace, swap: Callable[[Callable], None]) -> dict:
    from core import outbox

    current = outbox._held
    with contextlib.ExitStack() as stack:
        stores = {}
        for n in (args.small, args.large):
            stores[n] = stack.enter_context(scratch_store(backend, n, args.pg_admin))
            t0 = time.perf_counter()
            fill(stores[n], n, args.due)
            log(f"[{backend}] {n:,} in back-off + {args.due} due stored in {time.perf_counter() - t0:.1f}s")
        medians(stores, args.due, 1)  # warm the page caches and the pools
        new = medians(stores, args.due, args.reps)
        swap(previous_adapter)
        try:
            old = medians(stores, args.due, max(1, min(args.reps, 3)))
        finally:
            swap(current)
        out: dict = {}
        for n, store in stores.items():
            uses, plan = plan_uses_index(store)
            log(f"[{backend}] {n:>7,}: drain {new[n]:.1f} ms (previous {old[n]:.1f} ms); index in plan: {uses}")
            out[n] = {"backlog": n, "drain_ms": round(new[n], 2), "previous_drain_ms": round(old[n], 2),
                      "plan_uses_index": uses, **({"plan": plan} if n == args.large and not uses else {})}
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--large", type=int, default=50_000)
    ap.add_argument("--due", type=int, default=100)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--backends", default="sqlite",
                    help="comma-separated: sqlite and/or postgresql (a throw-away database on --pg-admin)")
    ap.add_argument("--pg-admin", default=os.environ.get("WORKBENCH_TEST_PG",
                                                         "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from core import outbox

    def swap(fn: Callable) -> None:
        outbox._held = fn  # type: ignore[assignment]

    started = time.perf_counter()
    out: dict = {"benchmark": "webhook_claim", "due": args.due, "reps": args.reps,
                 "targets": {"ratio_large_vs_small_max": 2.0}, "met": {}}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        got = run(backend, args, swap)
        small, large = got[args.small], got[args.large]
        ratio = large["drain_ms"] / small["drain_ms"]
        out[backend] = {"small": small, "large": large, "ratio_large_vs_small": round(ratio, 3),
                        "previous_ratio_large_vs_small": round(large["previous_drain_ms"] / small["previous_drain_ms"], 1),
                        "speedup_at_large": round(large["previous_drain_ms"] / large["drain_ms"], 1)}
        out["met"][f"{backend}_ratio_le_2x"] = ratio <= 2.0
        out["met"][f"{backend}_plan_uses_index_at_large"] = bool(large["plan_uses_index"])
    out["all_met"] = all(out["met"].values())
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
