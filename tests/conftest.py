"""Shared fixtures: a fresh SQLite store, the real PostgreSQL server, the bundled taxonomy.

PostgreSQL tests create a throw-away database on 127.0.0.1:5432 (override with
`WORKBENCH_TEST_PG`) and drop it afterwards; where no server answers they are skipped with the
reason, so the suite still passes on a machine without one. Under `WORKBENCH_REQUIRE_SERVICES=1`
(set by `.ci/run`: the CI machine has PostgreSQL and Chromium) a missing service fails those
tests instead of skipping them.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from clustering.config import CampaignSettings, load_campaign_settings  # noqa: E402
from core.config import config_dir  # noqa: E402
from core.store import Store, open_store  # noqa: E402
from core.taxonomy import Taxonomy, load_taxonomy  # noqa: E402
from labeling.queue_config import QueueConfig, load_queue_config  # noqa: E402
from labeling.review_config import ReviewSettings, load_review_settings  # noqa: E402

REQUIRE_SERVICES = os.environ.get("WORKBENCH_REQUIRE_SERVICES", "") not in ("", "0")


def skip_or_fail(reason: str) -> None:
    """Skip with the reason, or fail with it where the services are required (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"WORKBENCH_REQUIRE_SERVICES is set but {reason}", pytrace=False)
    pytest.skip(reason)


PG_ADMIN_URL = os.environ.get("WORKBENCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _pg_unavailable_reason() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    dsn = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means: no server to test against
        return f"no PostgreSQL server answers at {dsn}: {str(exc).strip().splitlines()[0]}"


@pytest.fixture(scope="session")
def pg_server_url():
    """Admin URL of the real PostgreSQL server, or skip with the reason."""
    reason = _pg_unavailable_reason()
    if reason:
        skip_or_fail(reason)
    return PG_ADMIN_URL


def _create_pg_database(admin_url: str) -> tuple[str, str]:
    import psycopg

    name = f"wb_test_{uuid.uuid4().hex[:12]}"
    dsn = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def _drop_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    dsn = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_store(tmp_path) -> Store:
    store = open_store(tmp_path / "data")
    yield store
    store.dispose()


@pytest.fixture
def pg_store(pg_server_url, tmp_path) -> Store:
    name, url = _create_pg_database(pg_server_url)
    store = open_store(tmp_path / "data", url)
    yield store
    store.dispose()
    _drop_pg_database(pg_server_url, name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request) -> Store:
    """The same test against SQLite and against the real PostgreSQL server."""
    return request.getfixturevalue("sqlite_store" if request.param == "sqlite" else "pg_store")


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def queue_config(taxonomy) -> "QueueConfig":
    """The bundled `queues.yaml`, checked against the bundled taxonomy."""
    return load_queue_config(config_dir(), taxonomy=taxonomy)


@pytest.fixture(scope="session")
def review_settings(taxonomy) -> "ReviewSettings":
    return load_review_settings(config_dir(), taxonomy=taxonomy)


@pytest.fixture(scope="session")
def campaign_settings() -> "CampaignSettings":
    return load_campaign_settings(config_dir())


@pytest.fixture
def make_scored(tmp_path, taxonomy, queue_config):
    """Ingest `rows` (dicts with id, text, ...), give each a prediction from `scores` (item key ->
    per-policy scores), and build the cases: the state a queue is in after `workbench score`."""
    import json

    from sqlalchemy import insert

    from core.ingest import ColumnMap, ingest_paths
    from core.schema import Prediction, utcnow
    from labeling.cases import build_cases

    def make(store: Store, rows: list[dict], scores: dict[str, dict[str, float]], source: str = "reports",
             columns: "ColumnMap | None" = None, model_version: str = "test-v1", build: bool = True) -> Store:
        src = tmp_path / f"{source}-{uuid.uuid4().hex[:6]}.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        ingest_paths(store, taxonomy, [str(src)], source=source, progress=False,
                     columns=columns or ColumnMap(id="id", author="author" if any("author" in r for r in rows) else None))
        with store.begin() as conn:
            for key, sc in scores.items():
                label = max(sc, key=sc.get)
                conn.execute(insert(Prediction.__table__).values(
                    item_id=f"{source}:{key}", model_version=model_version, label=label, score=sc[label], scores=sc,
                    uncertainty=1 - sc[label], taxonomy_version=taxonomy.version, created_at=utcnow()))
        if build:
            build_cases(store, taxonomy, queue_config, progress=False)
        return store

    return make


CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        skip_or_fail("Playwright for Python is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


@pytest.fixture
def browser_page(browser):
    """One page at the 1366x768 the UI is built for."""
    yield browser.new_page(viewport={"width": 1366, "height": 768})


@pytest.fixture
def roles():
    """The bundled roles.yaml installed as the role policy for one test (removed after); yields its config."""
    from core.hooks import pm
    from core.permissions import RolePolicy, load_roles

    cfg = load_roles(config_dir())
    policy = RolePolicy(cfg).install(pm)
    yield cfg
    if pm.is_registered(policy):
        pm.unregister(policy)
