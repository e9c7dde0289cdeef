import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from workbench.cli import cli

HEAVY = ("torch", "sentence_transformers", "gradio", "faiss", "sklearn", "transformers", "pandas", "datasets",
         "numpy", "sqlalchemy", "pydantic")


def run(tmp_path, *args, ok=True):
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def tiny_shared(tmp_path, shared_data):
    """A copy of the first rows of both shared datasets, laid out like ../shared/data."""
    import csv

    out = tmp_path / "shared"
    sms, dav = "sms_spam_collection/SMSSpamCollection", "davidson_hate_offensive/labeled_data.csv"
    (out / sms).parent.mkdir(parents=True)
    (out / dav).parent.mkdir(parents=True)
    with open(shared_data / sms, encoding="utf-8") as src:
        (out / sms).write_text("".join(line for _, line in zip(range(121), src)), encoding="utf-8")
    with open(shared_data / dav, encoding="utf-8", newline="") as src, \
            open(out / dav, "w", encoding="utf-8", newline="") as dst:
        csv.writer(dst).writerows(row for _, row in zip(range(151), csv.reader(src)))
    return out


def test_help_is_light():
    code = ("import sys, contextlib, io, workbench.cli\n"
            "sys.argv = ['workbench', '--help']\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    workbench.cli.main()\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_command_has_help_with_an_example():
    def walk(group, prefix=()):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from walk(cmd, prefix + (name,))
            else:
                yield prefix + (name,), cmd
    for path, cmd in walk(cli):
        assert cmd.help and "xample" in cmd.help, f"`workbench {' '.join(path)}` --help has no example"


def test_init_and_status(tmp_path):
    out = json.loads(run(tmp_path, "init", "--json").stdout)
    assert out["schema_revision"] and "benign" in out["policies"]
    status = json.loads(run(tmp_path, "status", "--json").stdout)
    assert status["items"] == 0


def test_ingest_status_items(tmp_path):
    src = tmp_path / "posts.jsonl"
    src.write_text('{"id": 1, "text": "hello there", "label": "spam"}\n{"id": 2, "text": ""}\n', encoding="utf-8")
    res = run(tmp_path, "ingest", str(src), "--label-column", "label", "--id-column", "id", "--json")
    summary = json.loads(res.stdout)
    assert (summary["stored"], summary["quarantined"]) == (1, 1)
    status = json.loads(run(tmp_path, "status", "--json").stdout)
    assert status["items"] == 1 and status["by_label"] == {"spam": 1}
    lines = run(tmp_path, "items", "--json").stdout.strip().splitlines()
    item = json.loads(lines[0])
    assert item["id"] == "posts:1" and item["source_label"] == "spam"
    assert {"prediction", "campaign_id", "case"} <= set(item)


def test_missing_file_is_one_line_not_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "--data-dir", str(tmp_path / "d"),
                           "ingest", str(tmp_path / "nope.csv")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_ingest_exit_code_when_nothing_stored(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": ""}\n', encoding="utf-8")
    res = run(tmp_path, "ingest", str(src), ok=False)
    assert res.exit_code == 1 and "quarantined 1" in res.output


def test_broken_config_is_a_clear_error(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "taxonomy.yaml").write_text("version: 1\npolicies: {}\n")
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "--data-dir", str(tmp_path / "d"),
                           "--config-dir", str(tmp_path / "cfg"), "init"], capture_output=True, text=True)
    assert proc.returncode == 2 and "taxonomy.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_audit_verify_after_ingest(tmp_path):
    src = tmp_path / "posts.jsonl"
    src.write_text('{"text": "hello"}\n', encoding="utf-8")
    run(tmp_path, "ingest", str(src))
    out = json.loads(run(tmp_path, "audit", "verify", "--json").stdout)
    assert out["ok"] and out["events"] == 1


def test_demo_ingests_both_datasets_and_is_idempotent(tmp_path, tiny_shared):
    from workbench.demo import collect_steps

    skip = [arg for step in collect_steps() for arg in ("--skip", step.name)]  # later steps have their own tests
    args = ["demo", "--shared-data", str(tiny_shared), "--json", *skip]
    first = json.loads(run(tmp_path, *args).stdout.splitlines()[-1])["steps"]["ingest"]
    assert first["sms_spam"]["stored"] == 120 and first["davidson"]["stored"] == 150
    again = json.loads(run(tmp_path, *args).stdout.splitlines()[-1])["steps"]["ingest"]
    assert again["sms_spam"]["stored"] == 0 and again["sms_spam"]["duplicate"] == 120


def test_demo_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "demo", "--shared-data", str(tmp_path / "empty")])
    assert res.exit_code != 0
    assert "SMSSpamCollection" in res.output and "ucirvine/sms_spam" in res.output


def test_config_dir_option_reaches_the_demo_steps_without_the_environment(tmp_path, monkeypatch):
    """`--config-dir` governs every step, passed down in the application context, not an env var."""
    import os

    from core.config import config_dir

    monkeypatch.delenv("WORKBENCH_CONFIG_DIR", raising=False)
    cfg = tmp_path / "cfg"
    shutil.copytree(config_dir(), cfg)
    (cfg / "queues.yaml").write_text((cfg / "queues.yaml").read_text().replace("lease_seconds:", "lease_seconds: -5 #"))
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "--config-dir", str(cfg), "demo",
                                   "--skip", "ingest", "--skip", "models", "--skip", "campaigns"])
    assert res.exit_code != 0
    assert str(cfg / "queues.yaml") in str(res.exception or res.output) or "lease_seconds" in res.output
    assert "WORKBENCH_CONFIG_DIR" not in os.environ
    assert config_dir() != cfg.resolve()  # the bundled folder stays the default for everyone else
