"""Audit chain hardening (the durability audit): no write ever seals over a head this key did not
sign, a missing key file is not silently replaced, PostgreSQL's skipped ids and READ COMMITTED
moments raise no false alarms, an empty store's checkpoint is the genesis, and processes starting
at once on an empty PostgreSQL database migrate one after the other."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text

from core import audit
from core.config import config_dir
from core.schema import AuditEvent, Decision
from core.store import Store
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.queue_config import load_queue_config

from test_queue_support import T0, add_scored
from test_tamper import _sql as _attacker_sql

E = AuditEvent.__table__
D = Decision.__table__
ROOT = Path(__file__).resolve().parents[1]


def _url(store: Store) -> str | None:
    return None if store.is_sqlite else store.engine.url.render_as_string(hide_password=False)


def _events(store: Store, n: int = 3) -> list[str]:
    heads = []
    for i in range(n):
        with store.begin() as conn:
            heads.append(audit.record(conn, "ann", "case.claim", "case", i, {"n": i}))
    return heads


def _count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(E)).scalar_one())


def _verify(store: Store, **kw) -> audit.VerifyResult:
    with store.read() as conn:
        return audit.verify(conn, **kw)


def _sql(store: Store, *statements: str) -> None:
    """SQL as someone with database access (a plain connection on SQLite), triggers dropped."""
    names = [f"{t}_no_{v}" for t in ("decisions", "audit_events") for v in ("update", "delete", "replace", "truncate")]
    drops = [f"DROP TRIGGER IF EXISTS {n}" + ("" if store.is_sqlite else f" ON {n.split('_no_')[0]}") for n in names]
    _attacker_sql(store, *drops, *statements)


def _plain_hash(prev: str, r: dict) -> str:
    return audit.event_hash(prev, r["ts"], r["actor"], r["action"], r["entity_type"], r["entity_id"], r["payload"])


# -- 1. no write seals over a head this key did not sign ------------------------------------------
def test_next_write_does_not_launder_a_chain_recomputed_without_the_key(any_store, taxonomy):
    """The auditor's attack: edit a decision, drop its event, recompute the chain with plain
    SHA-256. The next ordinary write (a fresh process) refuses instead of sealing the forgery."""
    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"qa_share": 0.0,
                                                                                "calibration_sets": []})
    add_scored(any_store, taxonomy, [{"id": i, "label": "scam", "p": 0.9, "text": f"claim your prize {i}"}
                                     for i in ("a", "b")])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    ids = []
    for _ in range(2):
        c = next_case(any_store, "ann", "fraud", now=T0, config=cfg)
        ids += DEC.decide(any_store, taxonomy, c["id"], "ann", "scam", "block_sender", rationale="prize lure",
                          now=T0 + dt.timedelta(minutes=5), config=cfg)["decision_ids"]
    with any_store.read() as conn:
        rows = [dict(r) for r in conn.execute(select(E).order_by(E.c.id)).mappings()]
    rows = [r for r in rows if str(ids[1]) not in ((r["payload"] or {}).get("bound") or {})]
    _sql(any_store, f"UPDATE decisions SET label = 'benign', action = 'no_action' WHERE id = {ids[1]}",
         "DELETE FROM audit_events")
    prev = audit.GENESIS
    with any_store.engine.begin() as conn:
        for i, r in enumerate(rows, 1):
            r = dict(r, id=i, prev_hash=prev, payload={k: v for k, v in (r["payload"] or {}).items() if k != "bound"})
            r["hash"] = prev = _plain_hash(prev, r)
            conn.execute(insert(E).values(**r))
    assert not _verify(any_store).ok
    again = Store(any_store.data_dir, _url(any_store))
    try:
        with pytest.raises(audit.AuditError, match=r"^the audit chain's head \(event \d+\) is not signed with "
                                                   r"this store's key: run `workbench audit verify`$"):
            with again.begin() as conn:
                audit.record(conn, "ann", "case.claim", "case", 1)
        assert _count(again) == len(rows)  # nothing written: no seal, no event
        assert not _verify(again).ok
    finally:
        again.dispose()


def test_another_key_neither_writes_nor_seals(any_store):
    """A process holding a different key refuses to write, and its migrate seals nothing."""
    heads = _events(any_store)
    other = Store(any_store.data_dir, _url(any_store), audit_key="another-secret-entirely-0002")
    try:
        other.migrate()
        with pytest.raises(audit.AuditError, match="not signed with this store's key"), other.begin() as conn:
            audit.record(conn, "bob", "case.claim", "case", 9)
    finally:
        other.dispose()
    result = _verify(any_store)
    assert result.ok and result.events == 3 and result.head == heads[-1]


def test_migrate_never_seals_a_chain_that_holds_keyed_events(any_store):
    """Unkeyed events appended after keyed ones are tampering: reported, never sealed."""
    heads = _events(any_store)
    with any_store.read() as conn:
        last = dict(conn.execute(select(E).order_by(E.c.id.desc()).limit(1)).mappings().one())
    forged = dict(last, id=last["id"] + 1, prev_hash=heads[-1], actor="mallory")
    forged["hash"] = _plain_hash(heads[-1], forged)
    with any_store.engine.begin() as conn:
        conn.execute(insert(E).values(**forged))
    any_store.migrate()
    assert _count(any_store) == 4
    assert "contents do not match its keyed hash" in "\n".join(_verify(any_store).problems)
    with pytest.raises(audit.AuditError, match="not signed"), any_store.begin() as conn:
        audit.record(conn, "ann", "case.claim", "case", 5)


# -- 2. a missing key file is not silently replaced -------------------------------------------------
def test_missing_key_file_is_not_created_over_a_keyed_chain(any_store, tmp_path):
    """A second host on the same database without the key file: a one-line error naming where the
    key is expected, no new key file, nothing written."""
    _events(any_store)
    missing = tmp_path / "host-b" / "audit.key"
    other = Store(any_store.data_dir, _url(any_store), audit_key_file=missing)
    try:
        other.migrate()
        with pytest.raises(audit.AuditError) as err, other.begin() as conn:
            audit.record(conn, "bob", "case.claim", "case", 9)
        msg = str(err.value)
        assert "\n" not in msg and f"no audit key file at {missing}" in msg and "--audit-key-file" in msg
        with pytest.raises(audit.AuditError, match="no audit key file"), other.read() as conn:
            audit.verify(conn)
    finally:
        other.dispose()
    assert not missing.exists()
    assert _count(any_store) == 3 and _verify(any_store).ok


# -- 3. skipped ids are no alarm; deletions still are -----------------------------------------------
def test_rolled_back_event_leaves_no_alarm(any_store):
    """PostgreSQL's sequence skips the id of a rolled-back insert: not a deletion."""
    _events(any_store, 1)
    with pytest.raises(RuntimeError), any_store.begin() as conn:
        audit.record(conn, "ann", "case.claim", "case", 2)
        raise RuntimeError("the change the event describes failed")
    _events(any_store, 1)
    result = _verify(any_store)
    assert result.ok, result.problems
    assert result.events == 2


def test_deleted_first_middle_and_tail_events_are_still_found(any_store):
    heads = _events(any_store, 5)
    with any_store.read() as conn:
        ids = list(conn.execute(select(E.c.id).order_by(E.c.id)).scalars())
    _sql(any_store, f"DELETE FROM audit_events WHERE id IN ({ids[0]}, {ids[2]}, {ids[4]})")
    problems = "\n".join(_verify(any_store, expect_head=heads[-1]).problems)
    assert f"event {ids[1]}: prev_hash does not match the event before it (events deleted" in problems
    assert f"event {ids[3]}: prev_hash" in problems
    assert "expected head" in problems and "is not in the chain" in problems


# -- 4. verify sees one moment on PostgreSQL ---------------------------------------------------------
def _decide_elsewhere(store: Store) -> None:
    """A decision and its binding event, committed by another transaction."""
    with store.begin() as conn:
        did = conn.execute(insert(D).values(reviewer="ann", kind="review", label="scam", action="remove",
                                            is_override=False, taxonomy_version="t", created_at=T0)
                           .returning(D.c.id)).scalar_one()
        audit.record(conn, "ann", "decision.create", "decision", did, {"bound": audit.bind(conn, [did])})


def test_verify_is_one_snapshot_while_analysts_decide(any_store, monkeypatch):
    """A decision committed between verify's event scan and its decision scan is no false alarm."""
    _events(any_store)
    check = audit._check_decisions

    def commit_one_then_check(*args, **kw):
        _decide_elsewhere(any_store)
        return check(*args, **kw)

    monkeypatch.setattr(audit, "_check_decisions", commit_one_then_check)
    result = _verify(any_store)
    assert result.ok, result.problems


def test_verify_then_head_read_one_moment(any_store):
    """`audit checkpoint` verifies, then reads the head, in one plain `read()`: the head it keeps
    is the one it verified, even when an event is committed in between."""
    _events(any_store)
    with any_store.read() as conn:
        result = audit.verify(conn)
        _events(any_store, 1)
        cp = audit.head(conn)
    assert result.ok and (cp["head"], cp["count"]) == (result.head, result.events)


def test_snapshot_read_and_a_verify_after_other_queries(any_store):
    _events(any_store)
    with any_store.read(snapshot=True) as conn:
        conn.execute(select(func.count()).select_from(E)).scalar_one()
        if not any_store.is_sqlite:
            assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "repeatable read"
        assert audit.verify(conn).ok
    with any_store.read() as conn:  # a query ran first: verify cannot change the isolation, and must not fail
        conn.execute(text("SELECT 1"))
        assert audit.verify(conn).ok


# -- 5. an empty store's checkpoint is the genesis ---------------------------------------------------
def test_empty_store_checkpoint_and_genesis_head_match(sqlite_store, tmp_path):
    with sqlite_store.read() as conn:
        cp = audit.head(conn)
    assert cp["count"] == 0 and cp["head"] == audit.GENESIS
    cps = audit.read_checkpoints(audit.append_checkpoint(tmp_path / "cp.jsonl", cp))
    assert _verify(sqlite_store, checkpoints=cps, expect_head=audit.GENESIS).ok
    _events(sqlite_store, 2)
    assert _verify(sqlite_store, checkpoints=cps, expect_head=audit.GENESIS).ok
    bad = [dict(cps[0], head="f" * 64)]
    assert "event #0 is not the one checkpointed" in "\n".join(_verify(sqlite_store, checkpoints=bad).problems)
    (tmp_path / "neg.jsonl").write_text(json.dumps({"head": audit.GENESIS, "count": -1, "time": "t"}) + "\n")
    with pytest.raises(audit.AuditError, match=r"neg.jsonl:1: a checkpoint's count cannot be negative \(-1\)"):
        audit.read_checkpoints(tmp_path / "neg.jsonl")


def test_cli_checkpoint_on_an_empty_store_does_not_block_checkpointing(tmp_path):
    from click.testing import CliRunner

    from workbench.cli import cli

    def run(*args):
        res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res

    run("init")
    run("audit", "checkpoint")
    (tmp_path / "p0.jsonl").write_text('{"text": "hello"}\n', encoding="utf-8")
    run("ingest", str(tmp_path / "p0.jsonl"))
    run("audit", "verify", "--checkpoint", str(tmp_path / "data" / audit.CHECKPOINT_FILE))
    run("audit", "checkpoint")
    run("audit", "verify", "--expect-head", audit.GENESIS)


# -- 6. concurrent first start on an empty PostgreSQL database --------------------------------------
_OPENER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from core.store import open_store
Path(sys.argv[1] + ".ready").touch()
while not Path({go!r}).exists():
    time.sleep(0.01)
store = open_store(sys.argv[2], {url!r})
print(store.schema_revision())
store.dispose()
"""


@pytest.mark.postgres
def test_processes_starting_at_once_on_an_empty_database_all_open_it(pg_server_url, tmp_path):
    from conftest import _create_pg_database, _drop_pg_database

    name, url = _create_pg_database(pg_server_url)
    go = tmp_path / "go"
    script = _OPENER.format(root=str(ROOT), go=str(go), url=url)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"p{i}"), str(tmp_path / "data")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    try:
        deadline = time.time() + 120
        while not all((tmp_path / f"p{i}.ready").exists() for i in range(3)) and time.time() < deadline:
            time.sleep(0.05)
        go.touch()
        outs = [p.communicate(timeout=180) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err.strip().splitlines()[-1:]
        head = Store(tmp_path / "data", url)
        try:
            assert {out.strip() for out, _ in outs} == {head.head_revision()}
        finally:
            head.dispose()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        _drop_pg_database(pg_server_url, name)
