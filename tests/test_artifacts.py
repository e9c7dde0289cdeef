"""Model artifacts are data, not code: their folder must lie inside `<data dir>/models/` and hash
to the SHA-256 recorded at training, or nothing of them is loaded (issue 15)."""
from __future__ import annotations

import os
import pickle
import shutil

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from core.schema import ModelVersion
from models import registry
from models.config import load_models_config
from models.registry import RegistryError, artifact_digest, get_model, load_model_version, train_model
from test_models_fixtures import add_items, toy_corpus

MODELS = load_models_config()


class _Planted:
    """Unpickling this runs code: it writes a marker file (a stand-in for a shell command)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


@pytest.fixture
def trained(sqlite_store, taxonomy):
    texts, ys = toy_corpus(8)
    add_items(sqlite_store, texts, ys)
    row = train_model(sqlite_store, taxonomy, config=MODELS, kind="tfidf_lr", params={"min_df": 1}, show_progress=False)
    return sqlite_store, row


@pytest.fixture
def nothing_loads(monkeypatch):
    """Fail the test if the registry ever hands a folder to the loader."""
    def refuse(path):  # type: ignore[no-untyped-def]
        raise AssertionError(f"loaded {path} although it should have been refused first")

    monkeypatch.setattr(registry, "load_classifier", refuse)


def _set(store, version: str, **values) -> None:
    with store.begin() as conn:
        conn.execute(update(ModelVersion.__table__).where(ModelVersion.id == version).values(**values))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_training_records_the_digest_and_loading_checks_it(trained):
    store, row = trained
    folder = store.data_dir / row["artifact_path"]
    assert not os.path.isabs(row["artifact_path"]) and row["artifact_sha256"] == artifact_digest(folder)
    assert {p.name for p in folder.iterdir()} >= {"model.json", "metrics.json", "reliability.png"}
    model, got = load_model_version(store, row["id"])
    assert got["id"] == row["id"] and model.is_fitted
    # A legacy absolute path is still read when it lies inside the data directory's models folder.
    _set(store, row["id"], artifact_path=str(folder.resolve()))
    assert load_model_version(store, row["id"])[0].is_fitted


def test_a_planted_pickle_is_refused_before_anything_is_loaded(trained, nothing_loads, tmp_path):
    store, row = trained
    folder = store.data_dir / row["artifact_path"]
    marker = tmp_path / "pwned"
    (folder / "linear.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
    with pytest.raises(RegistryError) as exc:
        load_model_version(store, row["id"])
    msg = _one_line(exc)
    assert row["id"] in msg and "SHA-256" in msg and "linear.pkl" in msg and "refused" in msg
    assert not marker.exists()


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink", "data_dir", "models_root"])
def test_a_path_outside_the_models_folder_is_refused(trained, nothing_loads, tmp_path, where):
    store, row = trained
    folder = store.data_dir / row["artifact_path"]
    outside = tmp_path / "elsewhere" / row["id"]
    shutil.copytree(folder, outside)  # an intact copy, digest and all: the place alone refuses it
    path = {"absolute": str(outside), "dotdot": f"models/../../elsewhere/{row['id']}",
            "symlink": "models/link", "data_dir": ".", "models_root": "models"}[where]
    if where == "symlink":
        (store.data_dir / "models" / "link").symlink_to(outside, target_is_directory=True)
    if where == "dotdot":
        assert (store.data_dir / path).resolve() == outside.resolve()  # it names the intact copy
    _set(store, row["id"], artifact_path=path)
    with pytest.raises(RegistryError) as exc:
        load_model_version(store, row["id"])
    msg = _one_line(exc)
    assert row["id"] in msg and repr(path) in msg and "outside" in msg


@pytest.mark.parametrize("damage", ["flip_byte", "missing_file", "link_inside"])
def test_a_tampered_artifact_fails_the_digest_check(trained, nothing_loads, tmp_path, damage):
    store, row = trained
    folder = store.data_dir / row["artifact_path"]
    if damage == "flip_byte":
        target = max((p for p in folder.iterdir() if p.suffix in (".npz", ".json") and p.name != "metrics.json"),
                     key=lambda p: p.stat().st_size)
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
    elif damage == "missing_file":
        (folder / "metrics.json").unlink()
    else:
        (tmp_path / "x.json").write_text("{}")
        (folder / "extra.json").symlink_to(tmp_path / "x.json")
    with pytest.raises(RegistryError) as exc:
        load_model_version(store, row["id"])
    msg = _one_line(exc)
    assert row["id"] in msg and "refused" in msg
    assert ("SHA-256" in msg) if damage != "link_inside" else ("link" in msg)


def test_a_version_without_a_digest_is_refused_with_advice(trained, nothing_loads):
    store, row = trained
    _set(store, row["id"], artifact_sha256=None)
    with pytest.raises(RegistryError, match="no recorded artifact digest.*retrain") as exc:
        load_model_version(store, row["id"])
    _one_line(exc)


def test_cli_scoring_with_a_tampered_champion_is_a_one_line_error(trained, taxonomy):
    from workbench.cli import cli

    store, row = trained
    (store.data_dir / row["artifact_path"] / "linear.pkl").write_bytes(b"\x80\x04N.")
    r = CliRunner().invoke(cli, ["--data-dir", str(store.data_dir), "score"])
    assert r.exit_code != 0 and r.output.startswith("Error:") and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and "linear.pkl" in r.output
    assert get_model(store, "champion")["id"] == row["id"]
