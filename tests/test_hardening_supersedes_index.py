"""Every label-of-record look-up asks which decisions supersede a decision: `decisions.supersedes_id`
has an index (migration 0014), which the upgrade adds without changing a row."""
from __future__ import annotations

from alembic import command
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from core.schema import Decision
from core.store import open_store
from labeling.cases import build_cases
from labeling.decisions import correct, decide
from test_queue_support import T0, add_scored, case_ids, quiet

D = Decision.__table__


def _indexed(conn) -> bool:
    return any(ix["column_names"] == ["supersedes_id"] for ix in sa_inspect(conn).get_indexes("decisions"))


def test_the_superseding_look_up_uses_an_index(any_store, taxonomy, queue_config):
    with any_store.read() as conn:
        assert _indexed(conn)
        if any_store.is_sqlite:
            q = "SELECT id FROM decisions WHERE supersedes_id = 5"
            plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {q}"))
            assert "ix_decisions_supersedes" in plan, plan  # was: SCAN decisions


def test_the_upgrade_to_0014_adds_the_index_and_keeps_every_decision(any_store, taxonomy, queue_config):
    cfg = quiet(queue_config)
    add_scored(any_store, taxonomy, [{"id": "a", "label": "spam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    decide(any_store, taxonomy, case_ids(any_store)["a"], "lead", "spam", action="remove", config=cfg)
    with any_store.read() as conn:
        first = conn.execute(select(D.c.id)).scalar_one()
    correct(any_store, taxonomy, first, "lead", "scam", rationale="it asks for a card")
    with any_store.begin() as conn:
        alembic_cfg = any_store._alembic_config()
        alembic_cfg.attributes["connection"] = conn
        command.downgrade(alembic_cfg, "0013")
    with any_store.read() as conn:
        assert not _indexed(conn)
        before = [tuple(r) for r in conn.execute(select(D).order_by(D.c.id)).all()]
    store = open_store(any_store.data_dir, None if any_store.is_sqlite else any_store.url)
    try:
        assert store.schema_revision() == store.head_revision()
        with store.read() as conn:
            assert _indexed(conn)
            assert [tuple(r) for r in conn.execute(select(D).order_by(D.c.id)).all()] == before
    finally:
        store.dispose()
