"""Case claims: whose clock decides who holds a case.

A case's lease was set and compared with each app server's own `utcnow()`: a server whose clock
ran ahead by more than the lease saw every live claim as lapsed and handed another analyst's case
to the next `n` (two analysts on one case), decided it over its holder, refused its own holder's
save and heartbeat, and decided a campaign's held member cases; a server whose clock ran behind
kept a lapsed lease alive and wrote leases already over for every other server. Leases are now
set and compared in the store's time (`claims.lease_clock`, `core.lease_clock.lease_now`: the
PostgreSQL server's clock; one host's clock on SQLite). A skewed server is simulated on
PostgreSQL by the process clock the claims module reads (`labeling.claims.utcnow`).

Also found in the audit of `labeling.claims`:
- one analyst's two claims at once (a double-pressed `n`, two tabs) each took a calibration copy
  and wrote the other's off for her: a deadlock on PostgreSQL; and on any queue each found no claim
  of hers to resume and took a case, the second held on no screen. Her claims (and decisions) now
  run one after another (`claims.claims_of`);
- a queue name that was a list or a mapping failed as "unhashable type", not as an unknown queue.
"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from core.config import config_dir
from core.lease_clock import lease_now
from core.schema import Case
from labeling import claims as CL
from labeling import decisions as DEC
from labeling.cases import build_cases, list_cases
from labeling.claims import claim_case, next_case, reclaim_expired, renew
from labeling.errors import QueueError
from labeling.queue_config import CalibrationSet, load_queue_config
from test_queue_support import T0, add_campaign, add_scored, at_once, case_row, meeting

C = Case.__table__
SKEW = dt.timedelta(hours=2)  # far more than any lease (max_lease_seconds)


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(
        update={"qa_share": 0.0, "calibration_sets": []})


def _real() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _skew(monkeypatch, by: dt.timedelta) -> None:
    """This process is now an app server whose clock is `by` off."""
    monkeypatch.setattr("labeling.claims.utcnow", lambda: _real() + by)


def _one_case(store, taxonomy, cfg, item="it1"):
    add_scored(store, taxonomy, [{"id": item, "label": "scam", "p": 0.9}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    return next(c for c in list_cases(store) if c["item_id"] == item)


def _held(store, case_id):
    row = case_row(store, case_id)
    return row["state"], row["claimed_by"]


# -- a server whose clock runs ahead ------------------------------------------------------------------
def test_a_server_ahead_never_hands_a_live_claim_to_the_next_analyst(pg_store, taxonomy, cfg, monkeypatch):
    case = _one_case(pg_store, taxonomy, cfg)
    assert next_case(pg_store, "alice", case["queue"], cfg, detail=False)["id"] == case["id"]
    _skew(monkeypatch, SKEW)
    assert next_case(pg_store, "bob", case["queue"], cfg, detail=False) is None
    assert _held(pg_store, case["id"]) == ("claimed", "alice")


def test_a_server_ahead_never_opens_a_live_claim_by_its_id(pg_store, taxonomy, cfg, monkeypatch):
    case = _one_case(pg_store, taxonomy, cfg)
    claim_case(pg_store, case["id"], "alice", cfg)
    _skew(monkeypatch, SKEW)
    with pytest.raises(QueueError, match=f"case {case['id']} is claimed by alice until"):
        claim_case(pg_store, case["id"], "bob", cfg)
    assert _held(pg_store, case["id"]) == ("claimed", "alice")


def test_a_server_ahead_never_decides_a_case_over_its_holder(pg_store, taxonomy, cfg, monkeypatch):
    case = _one_case(pg_store, taxonomy, cfg)
    claim_case(pg_store, case["id"], "alice", cfg)
    _skew(monkeypatch, SKEW)
    with pytest.raises(QueueError, match="claimed by alice"):
        DEC.decide(pg_store, taxonomy, case["id"], "bob", "scam", config=cfg)
    assert _held(pg_store, case["id"]) == ("claimed", "alice")


def test_a_server_ahead_keeps_the_holders_save_and_heartbeat(pg_store, taxonomy, cfg, monkeypatch):
    case = _one_case(pg_store, taxonomy, cfg)
    claim_case(pg_store, case["id"], "alice", cfg)
    _skew(monkeypatch, SKEW)
    assert renew(pg_store, case["id"], "alice", cfg)["claimed_by"] == "alice"
    out = DEC.decide(pg_store, taxonomy, case["id"], "alice", "scam", config=cfg, holder_only=True)
    assert out["state"] == "decided" and len(out["decision_ids"]) == 1


def test_a_server_ahead_writes_a_lease_in_the_stores_time(pg_store, taxonomy, cfg, monkeypatch):
    """Its lease used to end at its own clock plus the lease: hours after alice left the case."""
    case = _one_case(pg_store, taxonomy, cfg)
    _skew(monkeypatch, SKEW)
    got = next_case(pg_store, "alice", case["queue"], cfg, detail=False)
    with pg_store.read() as conn:
        assert case_row(pg_store, case["id"])["lease_expires_at"] == got["lease_expires_at"] \
            <= lease_now(conn) + dt.timedelta(seconds=cfg.lease_seconds)


def test_a_server_ahead_leaves_a_held_member_out_of_a_campaign_decision(pg_store, taxonomy, cfg, monkeypatch):
    ids = add_scored(pg_store, taxonomy, [{"id": f"m{i}", "label": "scam", "p": 0.9, "text": f"win a prize {i}"}
                                          for i in range(3)])
    build_cases(pg_store, taxonomy, cfg, now=T0, progress=False)
    add_campaign(pg_store, ids)
    build_cases(pg_store, taxonomy, cfg, now=T0, progress=False)
    with pg_store.read() as conn:
        member = conn.execute(select(C.c.id).where(C.c.item_id == "m0", C.c.campaign_id.is_(None))).scalar_one()
        camp = conn.execute(select(C.c.id).where(C.c.campaign_id.is_not(None))).scalar_one()
    claim_case(pg_store, member, "bob", cfg)
    _skew(monkeypatch, SKEW)
    assert DEC.bulk_preview(pg_store, camp, "alice", config=cfg)["held_by_others"] == {"m0": "bob"}
    out = DEC.decide(pg_store, taxonomy, camp, "alice", "scam", config=cfg)
    assert out["bulk"]["skipped_held"] == ["m0"] and len(out["decision_ids"]) == 2
    assert _held(pg_store, member) == ("claimed", "bob")


# -- a server whose clock runs behind -----------------------------------------------------------------
def test_a_server_behind_takes_up_a_lease_that_ran_out_in_the_stores_time(pg_store, taxonomy, cfg, monkeypatch):
    case = _one_case(pg_store, taxonomy, cfg)
    claim_case(pg_store, case["id"], "alice", cfg)
    with pg_store.begin() as conn:
        conn.execute(update(C).where(C.c.id == case["id"]).values(
            lease_expires_at=lease_now(conn) - dt.timedelta(seconds=1)))
    _skew(monkeypatch, -SKEW)
    assert next_case(pg_store, "bob", case["queue"], cfg, detail=False)["id"] == case["id"]
    assert _held(pg_store, case["id"]) == ("claimed", "bob")


def test_a_claim_on_a_server_behind_is_live_for_every_other_server(pg_store, taxonomy, cfg, monkeypatch):
    """Its lease used to end at its own clock plus the lease: already over everywhere else."""
    case = _one_case(pg_store, taxonomy, cfg)
    _skew(monkeypatch, -SKEW)
    claim_case(pg_store, case["id"], "alice", cfg)
    monkeypatch.undo()
    assert next_case(pg_store, "bob", case["queue"], cfg, detail=False) is None
    with pytest.raises(QueueError, match="claimed by alice"):
        claim_case(pg_store, case["id"], "bob", cfg)
    assert _held(pg_store, case["id"]) == ("claimed", "alice")


# -- both stores: the sweeper's clock -------------------------------------------------------------------
def test_the_sweeper_given_no_time_reads_the_stores_clock(any_store, taxonomy, cfg):
    """`reclaim_expired` needed a `now`, which every caller read from its own clock."""
    _one_case(any_store, taxonomy, cfg, "a")
    _one_case(any_store, taxonomy, cfg, "b")
    by = {c["item_id"]: c["id"] for c in list_cases(any_store)}
    for item, who in (("a", "alice"), ("b", "bob")):
        claim_case(any_store, by[item], who, cfg)
    with any_store.begin() as conn:
        conn.execute(update(C).where(C.c.id == by["a"]).values(
            lease_expires_at=lease_now(conn) - dt.timedelta(seconds=1)))
    with any_store.begin() as conn:
        assert reclaim_expired(conn, cfg) == [by["a"]]
    assert _held(any_store, by["a"]) == ("open", None) and _held(any_store, by["b"]) == ("claimed", "bob")



# -- one analyst claiming twice at once (a double-pressed `n`, two tabs) ------------------------------
def _calibration_copies(store, taxonomy, cfg, reviewers):
    cal = cfg.model_copy(update={"calibration_sets": [CalibrationSet(name="c1", share=1.0, reviewers=reviewers)]})
    _one_case(store, taxonomy, cal)
    with store.read() as conn:
        copies = conn.execute(select(C.c.id).where(C.c.calibration_set == "c1").order_by(C.c.id)).scalars().all()
    assert len(copies) == reviewers
    return cal, copies


@pytest.mark.parametrize("reviewers", [2, 3])
def test_one_analyst_claiming_twice_at_once_gets_one_calibration_copy(pg_store, taxonomy, cfg, monkeypatch,
                                                                       reviewers):
    """Both claims took a copy, then each wrote the other's copy off for her: on PostgreSQL each
    waited on the other's locked row (the skip's foreign key), a deadlock, and one claim failed
    with the driver's DeadlockDetected. Serialised, the second claim sees the first's skips."""
    cal, copies = _calibration_copies(pg_store, taxonomy, cfg, reviewers)
    meet, real = meeting(), CL.exclude_calibration_siblings

    def both_claimed(*args, **kwargs):
        meet()  # both claims hold a copy before either writes its siblings off
        return real(*args, **kwargs)

    monkeypatch.setattr(CL, "exclude_calibration_siblings", both_claimed)
    got = at_once(*[lambda: next_case(pg_store, "alice", cal.calibration_queue, cal, detail=False)] * 2)
    assert not [g for g in got if isinstance(g, Exception)], got
    assert sorted(g is None for g in got) == [False, True]
    with pg_store.read() as conn:
        held = conn.execute(select(C.c.id).where(C.c.claimed_by == "alice", C.c.state == "claimed")).scalars().all()
    assert len(held) == 1 and held[0] in copies


def test_a_calibration_copy_decided_while_its_sibling_is_claimed_by_the_same_analyst(pg_store, taxonomy, cfg,
                                                                                      monkeypatch):
    """The command line decides a copy unclaimed; the same analyst's `n` meanwhile: a deadlock."""
    cal, copies = _calibration_copies(pg_store, taxonomy, cfg, 2)
    meet, real = meeting(), CL.exclude_calibration_siblings

    def both_hold(*args, **kwargs):
        meet()
        return real(*args, **kwargs)

    monkeypatch.setattr(CL, "exclude_calibration_siblings", both_hold)
    monkeypatch.setattr(DEC, "exclude_calibration_siblings", both_hold)
    got = at_once(lambda: DEC.decide(pg_store, taxonomy, copies[0], "alice", "scam", config=cal),
                  lambda: next_case(pg_store, "alice", cal.calibration_queue, cal, detail=False, resume=False))
    assert not [g for g in got if isinstance(g, Exception)], got
    assert got[0]["state"] == "decided"


def test_a_double_pressed_n_resumes_one_case_not_two(pg_store, taxonomy, cfg, monkeypatch):
    """Each of two `n` at once found no claim of hers to resume and took a case: the second case
    stayed held, on no screen, until its lease ran out."""
    _one_case(pg_store, taxonomy, cfg, "a")
    _one_case(pg_store, taxonomy, cfg, "b")
    queue = list_cases(pg_store)[0]["queue"]
    meet, real = meeting(), CL.reclaim_expired

    def both_looking(*args, **kwargs):
        out = real(*args, **kwargs)
        meet()  # both are about to look for a claim of hers to resume
        return out

    monkeypatch.setattr(CL, "reclaim_expired", both_looking)
    got = at_once(*[lambda: next_case(pg_store, "alice", queue, cfg, detail=False, resume=True)] * 2)
    assert not [g for g in got if isinstance(g, Exception)], got
    assert got[0]["id"] == got[1]["id"]
    with pg_store.read() as conn:
        held = conn.execute(select(C.c.id).where(C.c.claimed_by == "alice", C.c.state == "claimed")).scalars().all()
    assert held == [got[0]["id"]]


@pytest.mark.parametrize("queue", [["fraud"], {"q": 1}])
def test_a_queue_that_is_not_text_is_refused_in_one_line(sqlite_store, cfg, queue):
    with pytest.raises(QueueError, match=r"^unknown queue .* \(known: ") as err:
        next_case(sqlite_store, "alice", queue, cfg)
    assert "\n" not in str(err.value)


# -- the other doors that compare a lease: escalation and the periodic sweep ----------------------------
def test_a_server_ahead_never_escalates_a_case_over_its_holder(pg_store, taxonomy, cfg, monkeypatch):
    from labeling.escalation import escalate

    case = _one_case(pg_store, taxonomy, cfg)
    claim_case(pg_store, case["id"], "alice", cfg)
    _skew(monkeypatch, SKEW)
    with pytest.raises(QueueError, match="claimed by alice"):
        escalate(pg_store, taxonomy, case["id"], "bob", "needs a lead", cfg)
    assert _held(pg_store, case["id"]) == ("claimed", "alice")


def test_the_sweep_on_a_server_behind_takes_up_a_lapsed_lease(pg_store, taxonomy, cfg, monkeypatch):
    from labeling.escalation import sweep

    case = _one_case(pg_store, taxonomy, cfg)
    claim_case(pg_store, case["id"], "alice", cfg)
    with pg_store.begin() as conn:
        conn.execute(update(C).where(C.c.id == case["id"]).values(
            lease_expires_at=lease_now(conn) - dt.timedelta(seconds=1)))
    _skew(monkeypatch, -SKEW)
    assert sweep(pg_store, taxonomy, cfg)["leases_expired"] == 1
    assert case_row(pg_store, case["id"])["claimed_by"] is None
