"""Hardening (hold cap): no review tab holds a case forever.

Each test reproduces a defect found in an audit of `labeling.claims` and the Review tab:
- a tab left open kept sending heartbeats and `claims.renew` extended the lease each time with no
  cap on the whole hold: one idle tab sat on a case for days and starved its queue and SLA. A claim
  now records when it began (`cases.claimed_at`, migration 0013) and renewals stop at queues.yaml's
  `max_hold_seconds` after it (also a claim by id, or a resume, of a case the analyst holds);
- the heartbeat compared `(idle_ms or 0) / 1000 > idle_seconds`: NaN (and a negative or infinite
  time, a text) sent by a broken or hostile page counted as "active" and renewed the hold.
Times are passed in (`now=`) where a test steps through hours; no test sleeps.
"""
from __future__ import annotations

import datetime as dt
import math
import shutil

import pytest
from sqlalchemy import select, update
from sqlalchemy import inspect as sa_inspect

from core.config import ConfigError, config_dir
from core.lease_clock import lease_now
from core.schema import Case
from core.store import open_store
from labeling.cases import build_cases
from labeling.claims import claim_case, next_case, release, renew
from labeling.errors import QueueError
from labeling.queue_config import load_queue_config
from test_queue_support import T0, add_scored, case_ids, case_row, quiet

C = Case.__table__
SEC = dt.timedelta(seconds=1)


@pytest.fixture
def cfg(queue_config):
    return quiet(queue_config)


def _cases(store, taxonomy, cfg, n: int = 1) -> list[int]:
    add_scored(store, taxonomy, [{"id": f"it{i}", "label": "scam", "p": 0.9 - i / 100} for i in range(n)])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    ids = case_ids(store)
    return [ids[f"it{i}"] for i in range(n)]


def _queue(store, case_id: int) -> str:
    return case_row(store, case_id)["queue"]


def _heartbeats(store, case_id: int, cfg, start: dt.datetime, until: dt.datetime) -> dt.datetime:
    """Renew as the screen does, every half lease from `start` while before `until`; the last lease end."""
    at, last = start, None
    step = dt.timedelta(seconds=cfg.lease_seconds // 2)
    while at < until:
        last = renew(store, case_id, "alice", cfg, now=at)["lease_expires_at"]
        at += step
    return last


# -- the cap on a whole hold ----------------------------------------------------------------------------
def test_renewal_is_refused_once_the_hold_reaches_the_cap(any_store, taxonomy, cfg):
    (cid,) = _cases(any_store, taxonomy, cfg)
    assert next_case(any_store, "alice", _queue(any_store, cid), cfg, now=T0, detail=False)["id"] == cid
    cap = T0 + dt.timedelta(seconds=cfg.max_hold_seconds)
    _heartbeats(any_store, cid, cfg, T0, cap - SEC)
    assert renew(any_store, cid, "alice", cfg, now=cap - SEC)["lease_expires_at"] == cap
    before = case_row(any_store, cid)
    for late in (cap, cap + dt.timedelta(hours=30)):
        with pytest.raises(QueueError) as err:
            renew(any_store, cid, "alice", cfg, now=late)
        msg = str(err.value)
        assert f"case {cid} has been held by alice for" in msg and "max_hold_seconds" in msg \
            and str(cfg.max_hold_seconds) in msg and "\n" not in msg
    assert "for 4 h 0 min" in str(pytest.raises(QueueError, renew, any_store, cid, "alice", cfg, now=cap).value)
    assert case_row(any_store, cid) == before  # a refusal writes nothing
    assert cfg.max_hold_seconds == 14400 >= cfg.max_lease_seconds


def test_a_hold_that_lapsed_early_is_not_blamed_on_the_cap(any_store, taxonomy, cfg):
    (cid,) = _cases(any_store, taxonomy, cfg)
    claim_case(any_store, cid, "alice", cfg, now=T0)
    with pytest.raises(QueueError) as err:
        renew(any_store, cid, "alice", cfg, now=T0 + dt.timedelta(seconds=cfg.max_hold_seconds + 3600))
    assert "the hold lapsed" in str(err.value) and "max_hold_seconds" not in str(err.value)


def test_a_lease_is_never_renewed_past_the_cap(any_store, taxonomy, cfg):
    small = cfg.model_copy(update={"max_hold_seconds": 1800})
    (cid,) = _cases(any_store, taxonomy, small)
    claim_case(any_store, cid, "alice", small, now=T0)
    assert renew(any_store, cid, "alice", small, now=T0 + dt.timedelta(seconds=600))["lease_expires_at"] \
        == T0 + dt.timedelta(seconds=1500)
    out = renew(any_store, cid, "alice", small, now=T0 + dt.timedelta(seconds=1200))
    assert out["lease_expires_at"] == T0 + dt.timedelta(seconds=1800)  # not 1200 + 900
    assert case_row(any_store, cid)["lease_expires_at"] == T0 + dt.timedelta(seconds=1800)
    assert case_row(any_store, cid)["claimed_at"] == T0  # a renewal keeps the claim's start


def test_claiming_a_case_one_holds_again_by_id_or_resuming_it_keeps_the_cap(any_store, taxonomy, cfg):
    (cid,) = _cases(any_store, taxonomy, cfg)
    cap = T0 + dt.timedelta(seconds=cfg.max_hold_seconds)
    claim_case(any_store, cid, "alice", cfg, now=T0)
    _heartbeats(any_store, cid, cfg, T0, cap - dt.timedelta(seconds=100))
    assert claim_case(any_store, cid, "alice", cfg, now=cap - SEC)["lease_expires_at"] == cap
    got = next_case(any_store, "alice", _queue(any_store, cid), cfg, now=cap - SEC, resume=True, detail=False)
    assert got["id"] == cid and got["lease_expires_at"] == cap
    assert case_row(any_store, cid)["claimed_at"] == T0
    lower = cfg.model_copy(update={"max_hold_seconds": 3600})  # the cap lowered while the lease is live
    with pytest.raises(QueueError, match=f"case {cid} has been held by alice for .*max_hold_seconds"):
        claim_case(any_store, cid, "alice", lower, now=cap - SEC)
    assert next_case(any_store, "alice", _queue(any_store, cid), lower, now=cap - SEC, resume=True) is None


def test_a_fresh_claim_starts_a_new_cap(any_store, taxonomy, cfg):
    (cid,) = _cases(any_store, taxonomy, cfg)
    cap = T0 + dt.timedelta(seconds=cfg.max_hold_seconds)
    claim_case(any_store, cid, "alice", cfg, now=T0)
    _heartbeats(any_store, cid, cfg, T0, cap - dt.timedelta(seconds=100))
    release(any_store, cid, "alice", cfg, now=cap - SEC)
    claim_case(any_store, cid, "alice", cfg, now=cap)  # released: claimed anew
    assert case_row(any_store, cid)["claimed_at"] == cap
    later = cap + dt.timedelta(hours=3)
    _heartbeats(any_store, cid, cfg, cap, later)
    assert renew(any_store, cid, "alice", cfg, now=later)["lease_expires_at"] == later + dt.timedelta(
        seconds=cfg.lease_seconds)
    # the hold lapsed at its cap: the next `n` claims it anew, its cap from then
    end = cap + dt.timedelta(seconds=cfg.max_hold_seconds)
    _heartbeats(any_store, cid, cfg, later, end - SEC)
    renew(any_store, cid, "alice", cfg, now=end - SEC)
    assert next_case(any_store, "bob", _queue(any_store, cid), cfg, now=end + SEC, detail=False)["id"] == cid
    assert case_row(any_store, cid)["claimed_at"] == end + SEC and case_row(any_store, cid)["claimed_by"] == "bob"


def test_a_claim_records_its_start_in_the_stores_clock(any_store, taxonomy, cfg):
    a, b = _cases(any_store, taxonomy, cfg, 2)
    with any_store.read() as conn:
        before = lease_now(conn)
    assert next_case(any_store, "alice", _queue(any_store, a), cfg, detail=False)["id"] == a
    claim_case(any_store, b, "bob", cfg)
    with any_store.read() as conn:
        after = lease_now(conn)
    for cid in (a, b):
        assert before <= case_row(any_store, cid)["claimed_at"] <= after


def test_a_case_claimed_before_the_column_existed_still_renews_and_starts_its_cap(any_store, taxonomy, cfg):
    """A live hold of an old row (claimed_at NULL) is never refused for it: its cap starts now."""
    (cid,) = _cases(any_store, taxonomy, cfg)
    claim_case(any_store, cid, "alice", cfg, now=T0)
    late = T0 + dt.timedelta(hours=10)
    with any_store.begin() as conn:  # as 0013 leaves a row claimed long ago, its lease still live
        conn.execute(update(C).where(C.c.id == cid).values(claimed_at=None, lease_expires_at=late + SEC))
    out = renew(any_store, cid, "alice", cfg, now=late)
    assert out["lease_expires_at"] == late + dt.timedelta(seconds=cfg.lease_seconds)
    assert case_row(any_store, cid)["claimed_at"] == late
    cap = late + dt.timedelta(seconds=cfg.max_hold_seconds)
    _heartbeats(any_store, cid, cfg, late, cap - SEC)
    with pytest.raises(QueueError, match="max_hold_seconds"):
        renew(any_store, cid, "alice", cfg, now=cap)


# -- the setting ---------------------------------------------------------------------------------------------
def test_a_cap_shorter_than_the_longest_lease_is_refused_on_load(tmp_path, taxonomy):
    cfg_dir = tmp_path / "cfg"
    shutil.copytree(config_dir(), cfg_dir)
    path = cfg_dir / "queues.yaml"
    text = path.read_text(encoding="utf-8")
    assert "\nmax_hold_seconds: 14400\n" in text
    path.write_text(text.replace("\nmax_hold_seconds: 14400\n", "\nmax_hold_seconds: 600\n", 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_queue_config(cfg_dir, taxonomy=taxonomy)
    assert "max_hold_seconds: 600 is under max_lease_seconds 14400" in str(err.value) and "\n" not in str(err.value)


# -- the migration -----------------------------------------------------------------------------------------
def test_the_upgrade_to_0013_keeps_every_case_and_an_old_claim_still_renews(any_store, taxonomy, cfg):
    from alembic import command

    a, b = _cases(any_store, taxonomy, cfg, 2)
    with any_store.begin() as conn:
        cfg_a = any_store._alembic_config()
        cfg_a.attributes["connection"] = conn
        command.downgrade(cfg_a, "0012")
        now = lease_now(conn)
        conn.execute(update(C).where(C.c.id == a).values(state="claimed", claimed_by="alice",
                                                         lease_expires_at=now + dt.timedelta(seconds=600)))
    assert any_store.schema_revision() == "0012"
    with any_store.read() as conn:
        assert "claimed_at" not in {c["name"] for c in sa_inspect(conn).get_columns("cases")}
        cols = [C.c[c["name"]] for c in sa_inspect(conn).get_columns("cases")]
        before = [tuple(r) for r in conn.execute(select(*cols).order_by(C.c.id)).all()]
    store = open_store(any_store.data_dir, None if any_store.is_sqlite else any_store.url)
    try:
        assert store.schema_revision() == store.head_revision()
        with store.read() as conn:
            assert [tuple(r) for r in conn.execute(select(*cols).order_by(C.c.id)).all()] == before
            assert conn.execute(select(C.c.claimed_at).where(C.c.id.in_([a, b]))).scalars().all() == [None, None]
        assert renew(store, a, "alice", cfg)["claimed_by"] == "alice"
        assert case_row(store, a)["claimed_at"] is not None
    finally:
        store.dispose()


# -- the heartbeat's idle time -------------------------------------------------------------------------------
@pytest.mark.parametrize("idle_ms, idle", [
    (0, False), (1500.5, False), (300_000, False), (300_001, True), (10**400, True),
    (math.nan, True), (-math.nan, True), (math.inf, True), (-math.inf, True), (-1, True), (-0.5, True),
    ("0", True), ("nan", True), (None, True), (True, True), ([0], True), ({"ms": 0}, True),
])
def test_only_a_finite_non_negative_idle_time_under_the_limit_counts_as_active(idle_ms, idle):
    from workbench.ui.review_hold import idle_now

    assert idle_now(idle_ms, 300) is idle


def _tab(store):
    import gradio as gr

    from workbench.context import AppContext
    from workbench.ui.review import build_review_tab

    with gr.Blocks() as demo:
        build_review_tab(AppContext(store=store), demo, "alice", "spam")
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    return {getattr(f.fn, "__name__", ""): f.fn for f in fns}


@pytest.mark.parametrize("idle_ms", [math.nan, -5, math.inf, "abc"])
def test_the_heartbeat_never_renews_on_an_idle_time_that_is_not_a_number(sqlite_store, taxonomy, cfg, idle_ms):
    add_scored(sqlite_store, taxonomy, [{"id": f"s{i}", "label": "spam", "p": 0.9 - i / 100} for i in range(3)])
    build_cases(sqlite_store, taxonomy, cfg, now=T0, progress=False)
    fns = _tab(sqlite_store)
    out = fns["claim"]("alice", "spam", None, None, None)
    packet, ahead = out[0], out[12]
    shown = packet["case"]["id"]
    held = {cid: case_row(sqlite_store, cid)["lease_expires_at"] for cid in (shown, ahead)}
    lease, *_ = fns["heartbeat"](packet, None, ahead, "alice", idle_ms, None)
    assert "data-idle='1'" in str(lease) and "renewal paused" in str(lease)
    assert {cid: case_row(sqlite_store, cid)["lease_expires_at"] for cid in held} == held
    lease, *_ = fns["heartbeat"](packet, None, ahead, "alice", 0, None)  # active: renewed
    assert "data-idle='0'" in str(lease) and case_row(sqlite_store, shown)["lease_expires_at"] >= held[shown]


def test_an_undo_near_the_cap_gives_back_a_whole_new_hold(any_store, taxonomy, cfg):
    """Undo puts a case back claimed: a new hold, whose cap counts from the undo (it kept the claim
    before the decision, so an undo 4 h after that claim was refused at its first heartbeat)."""
    from labeling.decisions import decide
    from labeling.undo import undo_last

    (cid,) = _cases(any_store, taxonomy, cfg)
    assert next_case(any_store, "alice", _queue(any_store, cid), cfg, now=T0, detail=False)["id"] == cid
    late = T0 + dt.timedelta(seconds=cfg.max_hold_seconds - 60)
    _heartbeats(any_store, cid, cfg, T0, late)
    decide(any_store, taxonomy, cid, "alice", "scam", action="remove", config=cfg, now=late)
    undone = undo_last(any_store, "alice", cfg, 120, now=late + SEC)
    assert undone["lease_expires_at"] == late + SEC + dt.timedelta(seconds=cfg.lease_seconds)
    after = late + dt.timedelta(seconds=cfg.lease_seconds // 2)
    assert renew(any_store, cid, "alice", cfg, now=after)["lease_expires_at"] == \
        after + dt.timedelta(seconds=cfg.lease_seconds)
