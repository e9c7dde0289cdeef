"""A calibration copy is blind everywhere its reviewer looks: the review packet (held in the UI's
server-side state) and `workbench next` carried every decision on the item, other reviewers'
calibration answers included, and `next` printed "[QA audit]" on an audit draw."""
from __future__ import annotations

import json

from click.testing import CliRunner

from core.config import config_dir
from labeling import decisions as DEC
from labeling.cases import build_cases, list_cases
from labeling.claims import next_case
from labeling.packets import is_blind, review_packet
from labeling.queue_config import CalibrationSet, load_queue_config
from workbench.cli import cli

from test_queue_support import T0, add_scored


def _calibration_store(store, taxonomy, reviewers=3):
    cfg = load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={
        "qa_share": 0.0, "calibration_sets": [CalibrationSet(name="c", share=1.0, reviewers=reviewers)]})
    add_scored(store, taxonomy, [{"id": "it1", "label": "scam", "p": 0.9}])
    build_cases(store, taxonomy, cfg, now=T0, progress=False)
    return cfg


def test_a_calibration_packet_shows_no_other_answers(sqlite_store, taxonomy, review_settings, campaign_settings):
    cfg = _calibration_store(sqlite_store, taxonomy)
    first = next_case(sqlite_store, "bob", "calibration", config=cfg)
    DEC.decide(sqlite_store, taxonomy, first["id"], "bob", "spam", "remove", rationale="an ad, bob thinks",
               config=cfg)
    second = next_case(sqlite_store, "cat", "calibration", config=cfg)
    assert is_blind(second)
    packet = review_packet(sqlite_store, taxonomy, second["id"], review_settings, campaign_settings, viewer="cat")
    assert packet["decisions"] == []
    assert "bob" not in json.dumps(packet, default=str)
    # an ordinary case on the same item still shows the item's history
    ordinary = next(c for c in list_cases(sqlite_store) if c["queue"] != "calibration")
    assert not is_blind(ordinary)


def test_next_on_the_command_line_is_blind(tmp_path, taxonomy, review_settings):
    from core.store import open_store

    store = open_store(tmp_path)
    cfg = _calibration_store(store, taxonomy)
    first = next_case(store, "bob", "calibration", config=cfg)
    DEC.decide(store, taxonomy, first["id"], "bob", "spam", "remove", rationale="an ad, bob thinks", config=cfg)
    store.dispose()
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "next", "--queue", "calibration", "--as", "cat",
                                   "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert shown["decisions"] == [] and "calibration_set" not in shown and "is_audit" not in shown
    assert "bob" not in res.stdout
