"""The structure that keeps the code workable: floors, no cycles, small modules, migrations that
match the data model, and a CI switch under which missing services fail instead of skipping."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "models", "clustering", "labeling", "evaluation", "workbench")
MAX_LINES = 600


def test_import_contracts_hold():
    """import-linter (configured in pyproject.toml): layers down only, no cycles among siblings."""
    exe = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_no_module_is_oversized():
    big = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            n = path.read_text(encoding="utf-8").count("\n")
            if n > MAX_LINES:
                big[str(path.relative_to(ROOT))] = n
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_migrations_produce_exactly_the_data_model(any_store):
    """Alembic's autogenerate comparison of the migrated database with `core.schema` finds nothing."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from core.schema import metadata

    with any_store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_required_services_fail_instead_of_skipping(tmp_path):
    """With WORKBENCH_REQUIRE_SERVICES=1 an unreachable PostgreSQL is a failure, not a skip."""
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_needs_pg(pg_server_url):\n    pass\n", encoding="utf-8")
    env = dict(os.environ, WORKBENCH_TEST_PG="postgresql+psycopg://nobody@127.0.0.1:9/none")
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
            "--confcutdir", str(ROOT / "tests"), "-c", str(ROOT / "pyproject.toml"), str(probe)]
    conftest = (ROOT / "tests" / "conftest.py").read_text(encoding="utf-8")
    (tmp_path / "conftest.py").write_text(conftest, encoding="utf-8")
    skipped = subprocess.run(base, cwd=tmp_path, env={**env, "WORKBENCH_REQUIRE_SERVICES": "0"},
                             capture_output=True, text=True)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout[-2000:]
    failed = subprocess.run(base, cwd=tmp_path, env={**env, "WORKBENCH_REQUIRE_SERVICES": "1"},
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "WORKBENCH_REQUIRE_SERVICES" in failed.stdout, failed.stdout[-2000:]


@pytest.mark.parametrize("module", ["core.hooks", "workbench.context", "workbench.cli"])
def test_light_modules_import_no_heavy_library(module):
    code = (f"import sys, {module}; "
            "print([m for m in ('torch', 'sentence_transformers', 'gradio', 'sklearn', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"
