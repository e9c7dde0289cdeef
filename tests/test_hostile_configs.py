"""Hostile or mistyped inputs read from disk: YAML configs with duplicate keys, booleans for
numbers or absurd SLAs and retentions, overflowing annotator votes, and tampered index files.
Each must be one line naming the file (and field), never a traceback or a silent wrong value."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from clustering.campaigns import CampaignGraph
from clustering.index import DELTA_FILE, META_FILE, IndexError_, VectorIndex
from core.config import ConfigError, config_dir
from core.quarantine import load_retention, printable
from core.store import open_store
from core.taxonomy import load_taxonomy
from labeling.queue_config import load_queue_config
from models.config import load_models_config
from workbench.cli import cli


@pytest.fixture
def cfg(tmp_path):
    """A writable copy of the bundled configs."""
    out = tmp_path / "cfg"
    shutil.copytree(config_dir(), out)
    return out


def _edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# -- 1. duplicate keys and booleans for numbers ------------------------------------------------
def test_a_duplicated_key_is_refused_naming_file_line_and_key(cfg):
    _edit(cfg / "taxonomy.yaml", "P0: {name: critical, sla_minutes: 30,",
          "P0: {name: critical, sla_minutes: 30, sla_minutes: 14400,")
    with pytest.raises(ConfigError, match=r"taxonomy\.yaml: line \d+ column \d+: .*duplicate key 'sla_minutes'"):
        load_taxonomy(cfg)


def test_a_second_top_level_section_is_refused_not_merged(cfg):
    with open(cfg / "taxonomy.yaml", "a", encoding="utf-8") as fh:
        fh.write("\nescalation: []\n")
    with pytest.raises(ConfigError, match=r"taxonomy\.yaml: line \d+ .*duplicate key 'escalation' \(first at line"):
        load_taxonomy(cfg)


def test_a_boolean_is_not_read_as_a_number(cfg):
    _edit(cfg / "taxonomy.yaml", "P1: {name: high, sla_minutes: 240,", "P1: {name: high, sla_minutes: true,")
    with pytest.raises(ConfigError, match=r"taxonomy\.yaml: field 'severities\.P1\.sla_minutes': expected a number"):
        load_taxonomy(cfg)
    _edit(cfg / "taxonomy.yaml", "sla_minutes: true,", "sla_minutes: 240,")
    _edit(cfg / "queues.yaml", "lease_seconds: 900", "lease_seconds: true")
    _edit(cfg / "queues.yaml", "qa_share: 0.05", "qa_share: true")
    with pytest.raises(ConfigError) as err:
        load_queue_config(cfg, load_taxonomy(cfg))
    assert str(err.value).splitlines() == [f"{cfg / 'queues.yaml'}: field 'lease_seconds': expected a number, got true",
                                           f"{cfg / 'queues.yaml'}: field 'qa_share': expected a number, got true"]
    _edit(cfg / "queues.yaml", "lease_seconds: true", "lease_seconds: 900")
    _edit(cfg / "queues.yaml", "qa_share: true", "qa_share: 1")  # a YAML int still fills a float field
    assert load_queue_config(cfg, load_taxonomy(cfg)).qa_share == 1.0


# -- 2. absurd SLAs and retentions ---------------------------------------------------------------
def test_an_sla_past_a_year_is_refused(cfg):
    _edit(cfg / "taxonomy.yaml", "P3: {name: low, sla_minutes: 4320,", "P3: {name: low, sla_minutes: 1000000000000000,")
    with pytest.raises(ConfigError, match=r"field 'severities\.P3\.sla_minutes': .*less than or equal to 525600"):
        load_taxonomy(cfg)
    _edit(cfg / "taxonomy.yaml", "sla_minutes: 1000000000000000,", "sla_minutes: 525600,")
    taxonomy = load_taxonomy(cfg)  # a year exactly is allowed
    _edit(cfg / "queues.yaml", "appeal_sla_minutes: 1440", "appeal_sla_minutes: 1000000000000000")
    with pytest.raises(ConfigError, match=r"field 'appeal_sla_minutes': Input should be less than or equal to 525600"):
        load_queue_config(cfg, taxonomy)


def test_a_retention_past_a_century_is_refused_by_config_and_command_line(tmp_path, cfg):
    _edit(cfg / "retention.yaml", "max_age_days: 30", "max_age_days: 1000000000000000")
    with pytest.raises(ConfigError, match=r"retention\.yaml: field 'quarantine\.max_age_days'"):
        load_retention(cfg)
    open_store(tmp_path / "data").dispose()
    data = ["--data-dir", str(tmp_path / "data")]
    res = CliRunner().invoke(cli, [*data, "--config-dir", str(cfg), "quarantine", "purge"])
    assert isinstance(res.exception, SystemExit), res.exception  # a message, not a traceback
    assert res.exit_code == 1 and "quarantine.max_age_days" in res.output
    res = CliRunner().invoke(cli, [*data, "quarantine", "purge", "--older-than", "1000000"])
    assert isinstance(res.exception, SystemExit), res.exception
    assert res.exit_code == 2 and "--older-than" in res.output and "36500" in res.output
    from core.quarantine import MAX_RETENTION_DAYS
    from workbench.cli import quarantine as quarantine_cli
    assert quarantine_cli.MAX_RETENTION_DAYS == MAX_RETENTION_DAYS  # one limit, written twice to keep --help light


# -- 3. annotator votes that overflow ---------------------------------------------------------------
@pytest.mark.parametrize("meta", [
    {"hate_speech": "inf", "offensive_language": 1, "neither": 0},
    {"hate_speech": float("inf"), "offensive_language": 1, "neither": 0},
    {"hate_speech": 1e308, "offensive_language": 1e308, "neither": 0},  # each finite, the sum is not
])
def test_vote_counts_that_are_not_finite_are_unreadable(taxonomy, meta):
    with pytest.raises(ValueError, match="vote count"):
        taxonomy.vote_shares("davidson", meta)


# -- 4. tampered index and campaign-graph files ------------------------------------------------------
@pytest.fixture
def saved_index(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    ix = VectorIndex(8)
    ix.add([f"k{i}" for i in range(6)], x / np.linalg.norm(x, axis=1, keepdims=True))
    ix.save(tmp_path / "ix")
    return tmp_path / "ix"


def _tamper_meta(d, change):
    meta = json.loads((d / META_FILE).read_text())
    meta = change(meta)
    (d / META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize("change, why", [
    (lambda m: [], "expected a JSON object"),
    (lambda m: {k: v for k, v in m.items() if k != "dim"}, "field 'dim'"),
    (lambda m: {**m, "dim": "8"}, "field 'dim'"),
    (lambda m: {**m, "dim": 9}, "shape (n, 9)"),
    (lambda m: {**m, "kind": "ivf"}, "field 'kind'"),
    (lambda m: {**m, "keys_log": "x"}, "field 'keys_log'"),
])
def test_tampered_index_meta_is_one_line_naming_the_file(saved_index, change, why):
    _tamper_meta(saved_index, change)
    with pytest.raises(IndexError_, match="rebuild") as err:
        VectorIndex.load(saved_index)
    assert why in str(err.value) and "\n" not in str(err.value)


def test_a_delta_of_the_wrong_dimension_is_refused(saved_index):
    np.save(saved_index / DELTA_FILE, np.zeros((6, 10), np.float32))
    with pytest.raises(IndexError_, match=r"index_delta\.npy: expected vectors of shape \(n, 8\).*rebuild"):
        VectorIndex.load(saved_index)
    np.save(saved_index / DELTA_FILE, np.zeros(6, np.float32))
    with pytest.raises(IndexError_, match=r"index_delta\.npy"):
        VectorIndex.load(saved_index)


def test_a_base_of_another_dimension_than_index_json_is_refused(tmp_path):
    ix = VectorIndex(8)
    ix.add(["a", "b"], np.eye(2, 8, dtype=np.float32))
    ix.compact()
    ix.save(tmp_path)
    _tamper_meta(tmp_path, lambda m: {**m, "dim": 9})
    np.save(tmp_path / DELTA_FILE, np.zeros((0, 9), np.float32))
    with pytest.raises(IndexError_, match=r"index\.faiss: vectors of dimension 8, index\.json says 9.*rebuild"):
        VectorIndex.load(tmp_path)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"logs": 5}', b"\xff\xfe"])
def test_a_damaged_graph_json_is_one_line_naming_rebuild(saved_index, campaign_settings, content):
    np.savez(saved_index / "graph.npz", **{k: np.zeros(0) for k in ("item_node", "item_time", "edge_a", "edge_b",
                                                                     "edge_sim", "ent_item", "ent_key")})
    path = saved_index / "graph.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(IndexError_, match="rebuild") as err:
        CampaignGraph.load(saved_index, campaign_settings)
    assert "\n" not in str(err.value)


# -- API metadata written to the quarantine ---------------------------------------------------------
def test_printable_walks_deep_input_without_recursion():
    deep: list = []
    node = deep
    for _ in range(5000):
        node.append([])
        node = node[0]
    out = printable({"k": deep, "b\udcff": ("x\udce9", 1)})
    assert out["b\\xff"] == ["x\\xe9", 1]
    depth, node = 0, out["k"]
    while node:
        node, depth = node[0], depth + 1
    assert depth == 5000


# -- non-finite and absurd numbers: `.inf` passes pydantic's `gt=0` bounds -------------------------
@pytest.mark.parametrize("old,new,field", [
    ("human_weight: 10.0", "human_weight: .inf", "learning.human_weight"),
    ("recency_boost: 1.0", "recency_boost: .Inf", "learning.recency_boost"),
    ("max_weight: 20.0", "max_weight: .nan", "learning.max_weight"),
])
def test_a_non_finite_learning_setting_is_refused_by_file_and_field(cfg, old, new, field):
    _edit(cfg / "models.yaml", old, new)
    with pytest.raises(ConfigError) as err:
        load_models_config(cfg)
    msg = str(err.value)
    assert "models.yaml" in msg and field in msg and "\n" not in msg


def test_a_repeat_cap_in_the_millions_is_refused(cfg):
    _edit(cfg / "models.yaml", "max_weight: 20.0", "max_weight: 1000000")
    with pytest.raises(ConfigError, match=r"models\.yaml.*learning\.max_weight"):
        load_models_config(cfg)


def test_infinity_is_refused_in_every_config_loaded_through_the_shared_loader(cfg):
    """The rule sits in `core.config.load_model`, so the queue config refuses it too."""
    _edit(cfg / "queues.yaml", "appeal_sla_minutes: 1440", "appeal_sla_minutes: .inf")
    with pytest.raises(ConfigError, match=r"queues\.yaml.*appeal_sla_minutes"):
        load_queue_config(cfg, load_taxonomy(cfg))


def test_the_shipped_configs_load(cfg):
    assert load_models_config(cfg).learning.max_weight == 20.0
    load_queue_config(cfg, load_taxonomy(cfg))
