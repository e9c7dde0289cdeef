"""Where one service's rule reaches the other doors: a rationale or escalation reason the store
cannot keep (a NUL, a lone surrogate) or a terminal would obey (an escape sequence) is refused by
the same rule as notes and appeals; an API reveal counts toward the reader's exposure; the app
context checks review.yaml's timers against the queues; `workbench notes` masks what a masked
text's notes quote."""
from __future__ import annotations

import json
import shutil
import types

import pytest
from click.testing import CliRunner

from core.config import ConfigError, config_dir
from core.principals import Principal
from core.store import open_store
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import claim_case
from labeling.errors import DecisionError, QueueError
from labeling.escalation import escalate
from labeling.masking import mask_text
from labeling.notes import add_note
from labeling.wellbeing import exposure
from test_hardening_appeals2 import HATE, SCAM, WORD, _case_of
from test_queue_support import add_scored
from workbench.api import item_view
from workbench.cli import cli
from workbench.context import AppContext


@pytest.fixture
def cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


@pytest.mark.parametrize("bad, what", [("a\x00b", "control character"), ("a\ud800b", "lone surrogate"),
                                       ("a\x1b[2Jb", "control character")])
def test_a_rationale_or_escalation_reason_follows_the_free_text_rule(any_store, taxonomy, cfg, bad, what):
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "scores": SCAM, "text": "claim your prize"}])
    build_cases(any_store, taxonomy, cfg, progress=False)
    case = _case_of(any_store, "a")
    claim_case(any_store, case, "ann", cfg)
    with pytest.raises(DecisionError, match=f"a rationale holds a {what} at character 2"):
        DEC.decide(any_store, taxonomy, case, "ann", "benign", rationale=bad, config=cfg)
    with pytest.raises((DecisionError, QueueError), match=f"an escalation's reason holds a {what} at character 2"):
        escalate(any_store, taxonomy, case, "ann", bad, cfg)
    done = DEC.decide(any_store, taxonomy, case, "ann", "scam", rationale="a lure", config=cfg)
    with pytest.raises(DecisionError, match=f"a rationale holds a {what} at character 2"):
        DEC.correct(any_store, taxonomy, done["decision_ids"][0], "ann", "spam", rationale=bad)


def test_an_api_reveal_counts_toward_the_readers_exposure(sqlite_store, taxonomy, cfg, review_settings):
    """30 severe texts read through `GET /api/v1/items/{id}?reveal=true` left exposure at 0."""
    add_scored(sqlite_store, taxonomy, [{"id": f"v{i}", "label": "hate", "scores": HATE, "text": f"vile text {i}"}
                                        for i in range(3)] + [{"id": "loose", "label": "hate", "scores": HATE,
                                                               "text": "no case yet"}])
    build_cases(sqlite_store, taxonomy, cfg, progress=False)
    app = types.SimpleNamespace(store=lambda: sqlite_store, review=lambda: review_settings, taxonomy=lambda: taxonomy)
    ann = Principal("ann", "analyst")
    for i in (0, 1, 2, 2):  # the second read of v2 is one reveal of its case
        assert item_view(app, f"v{i}", ann, reveal=True)["text"] == f"vile text {i}"
    assert exposure(sqlite_store, ann, review_settings)["revealed"] == 3


def test_the_app_context_checks_review_timers_against_the_queues(tmp_path):
    cfg_dir = tmp_path / "cfg"
    shutil.copytree(config_dir(), cfg_dir)
    path = cfg_dir / "review.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("heartbeat_seconds: 60", "heartbeat_seconds: 1200", 1),
                    encoding="utf-8")
    ctx = AppContext(store=open_store(tmp_path / "data"), config_dir_=cfg_dir)
    with pytest.raises(ConfigError, match="heartbeat"):
        ctx.review()


def test_workbench_notes_masks_a_masked_texts_notes(tmp_path, taxonomy):
    store = open_store(tmp_path / "data")
    add_scored(store, taxonomy, [{"id": "vile", "label": "hate", "scores": HATE, "text": f"you {WORD} people"}])
    add_note(store, "item", "vile", f"author wrote {WORD}", "ann")
    store.dispose()
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "notes", "item", "vile", "--json"])
    assert res.exit_code == 0, res.output
    assert [n["body"] for n in json.loads(res.stdout)["notes"]] == [mask_text(f"author wrote {WORD}")]
