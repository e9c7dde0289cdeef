"""The learning loop on PostgreSQL, the team deployment (issue 18): retrain, the gate, promotion
and rescoring, and the gated `models promote` through the CLI (`--db`), against the real server.
The SQLite runs of the same behaviours are in test_promotion_gate.py and test_manual_promotion.py."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core.predictions import champion_version, predictions_of_record
from core.schema import AuditEvent, Case
from evaluation.promotion import retrain_and_gate
from labeling.rescore import stale_open_cases
from models.registry import get_model
from test_manual_promotion import _versions
from test_promotion_gate import MODELS, make_loop

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_loop(pg_store, taxonomy, queue_config):
    return make_loop(pg_store, taxonomy, queue_config)


def _cli(store, *args):
    from workbench.cli import cli

    return CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), "--db", store.url, *args],
                              catch_exceptions=False)


def test_retrain_promotes_a_better_challenger_and_rescores_on_postgresql(pg_loop, taxonomy, queue_config, tmp_path):
    store, champ, _ = pg_loop
    assert not store.is_sqlite
    out = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                           report_dir=str(tmp_path / "report"), show_progress=False)
    assert out["champion"] == champ and out["promoted"] and out["gate"]["sets"]["test_split"]["lower"] > 0
    new = out["challenger"]
    assert get_model(store, new)["role"] == "champion"
    assert out["rescore"]["stale_left"] == 0 and stale_open_cases(store) == []
    with store.read() as conn:
        assert champion_version(conn) == new
        open_cases = conn.execute(select(Case.item_id, Case.model_version)
                                  .where(Case.state.in_(("open", "claimed", "escalated", "appealed")))).all()
        record = predictions_of_record(conn, [c.item_id for c in open_cases if c.item_id])
    assert open_cases and {c.model_version for c in open_cases} == {new}
    assert all(record[c.item_id]["model_version"] == new for c in open_cases if c.item_id)
    # The same data again is an equal challenger: refused, the champion stays.
    again = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                             show_progress=False)
    assert not again["promoted"] and again["gate"]["sets"]["test_split"]["delta"] == 0
    with store.read() as conn:
        assert champion_version(conn) == new


def test_models_promote_is_gated_and_a_forced_rollback_audited_on_postgresql(pg_loop, taxonomy):
    store, champ, ids = pg_loop
    good, bad = _versions(store, taxonomy, ids)
    res = _cli(store, "models", "promote", bad)
    assert res.exit_code == 1 and "not promoted" in res.output, res.output
    res = _cli(store, "models", "promote", good, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["champion"] == good and stale_open_cases(store) == []
    res = _cli(store, "models", "promote", champ, "--force", "--reason", "roll back for the audit")
    assert res.exit_code == 0, res.output
    with store.read() as conn:
        assert champion_version(conn) == champ
        why = conn.execute(select(AuditEvent.payload).where(AuditEvent.action == "model.force_promote",
                                                            AuditEvent.entity_id == champ)).scalar_one()
    assert "roll back for the audit" in json.dumps(why)
