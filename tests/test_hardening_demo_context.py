"""`workbench demo` as a careless user on a fresh machine runs it, and the application context
it is handed: a dataset file that ingests nothing (another header, UTF-16, empty) stops the demo
in one line instead of running the loop on half the data; a missing dataset is found before
anything is written; a --skip typo or --limit 0 is refused; a full disk, an unloadable embedding
model or Ctrl-C in a step says which step; a rerun tops the simulated decisions up instead of
deciding as many again, and does not retrain on nothing new; two contexts with their own
roles.yaml each check under their own; a data dir that cannot be created is one line."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from core.schema import Decision, Item, ModelVersion, utcnow
from labeling.cases import build_cases
from test_queue_support import add_scored
from workbench.context import AppContext
from workbench.demo import DemoError, collect_steps, run_demo

LATER = frozenset(s.name for s in collect_steps())  # every step after ingest


@pytest.fixture
def tiny_shared(tmp_path, shared_data) -> Path:
    """The first 120 rows of both shared datasets, laid out like ../shared/data."""
    import csv

    out = tmp_path / "shared"
    sms, dav = "sms_spam_collection/SMSSpamCollection", "davidson_hate_offensive/labeled_data.csv"
    for name in (sms, dav):
        (out / name).parent.mkdir(parents=True)
    with open(shared_data / sms, encoding="utf-8") as src:
        (out / sms).write_text("".join(line for _, line in zip(range(121), src)), encoding="utf-8")
    with open(shared_data / dav, encoding="utf-8", newline="") as src, \
            open(out / dav, "w", encoding="utf-8", newline="") as dst:
        csv.writer(dst).writerows(row for _, row in zip(range(121), csv.reader(src)))
    return out


def _quiet(*_a, **_k) -> None:
    pass


def _items(store) -> int:
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(Item)).scalar()


def _sms(root: Path) -> Path:
    return root / "sms_spam_collection" / "SMSSpamCollection"


@pytest.mark.parametrize("spoil, says", [
    (lambda p: p.write_text("v1\tv2\nham\thello there\n", encoding="utf-8"), "no column 'SMS' in the header"),
    (lambda p: p.write_bytes(p.read_text(encoding="utf-8").encode("utf-16")), "UTF-16"),
    (lambda p: p.write_text("", encoding="utf-8"), "no rows"),
])
def test_a_dataset_file_that_ingests_nothing_stops_the_demo_in_one_line(any_store, tiny_shared, spoil, says):
    """Each went on to `demo done` (exit 0) with the SMS data missing from every later step."""
    spoil(_sms(tiny_shared))
    app = AppContext(store=any_store)
    with pytest.raises(DemoError) as err:
        run_demo(app, shared_data=str(tiny_shared), skip=LATER, echo=_quiet)
    msg = str(err.value)
    assert "\n" not in msg and "'sms_spam'" in msg and str(_sms(tiny_shared)) in msg and says in msg


def test_a_missing_dataset_is_found_before_anything_is_ingested(any_store, tiny_shared, monkeypatch):
    """The SMS file was ingested (120 items) before the missing Davidson file stopped the demo."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    shutil.rmtree(tiny_shared / "davidson_hate_offensive")
    with pytest.raises(DemoError, match="dataset 'davidson' not found"):
        run_demo(AppContext(store=any_store), shared_data=str(tiny_shared), skip=LATER, echo=_quiet)
    assert _items(any_store) == 0


@pytest.mark.parametrize("kwargs, says", [({"skip": {"ingst"} | LATER}, "--skip ingst: no such demo step"),
                                          ({"limit": 0, "skip": LATER}, "--limit 0: must be at least 1")])
def test_a_skip_typo_or_a_limit_below_one_is_refused(sqlite_store, tiny_shared, kwargs, says):
    """`--skip ingst` ran the ingest it meant to skip; `--limit 0` ingested nothing and went on."""
    with pytest.raises(DemoError, match=says):
        run_demo(AppContext(store=sqlite_store), shared_data=str(tiny_shared), echo=_quiet, **kwargs)
    assert _items(sqlite_store) == 0


def test_a_full_disk_or_an_unloadable_model_in_a_step_names_the_step(sqlite_store, tiny_shared, monkeypatch):
    import clustering.service
    from models.base import ModelError

    app = AppContext(store=sqlite_store)
    run_demo(app, shared_data=str(tiny_shared), skip=LATER, echo=_quiet)
    for exc, says in [(OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
                      (ModelError("embedding model /nope cannot be loaded"), "/nope cannot be loaded")]:
        def broken(*_a, exc=exc, **_k):
            raise exc
        monkeypatch.setattr(clustering.service, "cluster", broken)
        with pytest.raises(DemoError) as err:  # was the OSError's / ModelError's traceback
            run_demo(app, shared_data=str(tiny_shared), skip=LATER - {"campaigns"}, echo=_quiet)
        assert str(err.value).startswith("demo step 'campaigns' stopped: ") and says in str(err.value)


def test_ctrl_c_in_a_step_says_which_and_a_rerun_goes_on(sqlite_store, tiny_shared, monkeypatch):
    import clustering.service

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt
    monkeypatch.setattr(clustering.service, "cluster", interrupted)
    app, lines = AppContext(store=sqlite_store), []
    with pytest.raises(KeyboardInterrupt):
        run_demo(app, shared_data=str(tiny_shared), skip=LATER - {"campaigns"}, echo=lines.append)
    assert lines[-1].startswith("interrupted in step 'campaigns'") and "rerun `workbench demo`" in lines[-1]
    again = run_demo(app, shared_data=str(tiny_shared), skip=LATER, echo=_quiet)["steps"]["ingest"]
    assert again["sms_spam"]["stored"] == 0 and again["sms_spam"]["duplicate"] == 120 and _items(sqlite_store) == 240


@pytest.fixture
def decidable(any_store, taxonomy, queue_config):
    """24 scored items with source labels, in cases of the work queues."""
    cfg = queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})
    add_scored(any_store, taxonomy, [{"id": f"b{i}", "label": "benign", "p": 0.9, "truth": "benign",
                                      "text": f"see you at lunch {i}"} for i in range(24)])
    build_cases(any_store, taxonomy, cfg, progress=False)
    app = AppContext(store=any_store)
    app._configs["queues"] = cfg
    return app


def test_a_rerun_tops_the_simulated_decisions_up_instead_of_deciding_as_many_again(decidable, monkeypatch):
    """Interrupted after 3 of 6 cases, the rerun decided 6 more (9); a clean rerun decided 6 more each time."""
    import labeling.decisions
    from workbench import demo_loop

    def team_cases(store) -> int:
        with store.read() as conn:
            return conn.execute(select(func.count(Decision.case_id.distinct()))
                                .where(Decision.reviewer.in_(["sim-ana", "sim-ben", "sim-lea"]))).scalar()

    monkeypatch.setattr(demo_loop, "DECISIONS", 6)
    real, calls = labeling.decisions.decide, []

    def decide(*a, **k):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(labeling.decisions, "decide", decide)
    with pytest.raises(KeyboardInterrupt):
        demo_loop.decisions_step(decidable, _quiet)
    monkeypatch.setattr(labeling.decisions, "decide", real)
    store = decidable.store()
    assert team_cases(store) == 3
    lines: list[str] = []
    out = demo_loop.decisions_step(decidable, lines.append)
    assert out["cases"] == 3 and team_cases(store) == 6
    assert "3 more in an earlier run" in lines[0]
    again = demo_loop.decisions_step(decidable, _quiet)
    assert again["cases"] == 0 and team_cases(store) == 6
    with store.read() as conn:
        assert conn.execute(select(func.count(Decision.case_id.distinct()))).scalar() == 6


def test_a_rerun_does_not_retrain_on_nothing_new(any_store, taxonomy, monkeypatch):
    """Every rerun trained one more challenger on the same data (3 reruns: 3 model versions)."""
    import evaluation.promotion
    from workbench import demo_loop

    with any_store.begin() as conn:
        conn.execute(insert(ModelVersion.__table__).values(
            id="m1", kind="tfidf_lr", artifact_path="x", artifact_sha256="0" * 64, role="champion",
            labels=list(taxonomy.labels), taxonomy_version=taxonomy.version, created_at=utcnow()))
    calls = []
    monkeypatch.setattr(evaluation.promotion, "retrain_and_gate", lambda *a, **k: calls.append(k) or 1 / 0)
    lines: list[str] = []
    out = demo_loop.retrain_step(AppContext(store=any_store), lines.append)
    assert out == {"skipped": "no new decisions"} and not calls
    assert "nothing new to learn from" in lines[0]


def test_two_contexts_each_check_permissions_under_their_own_roles(tmp_path):
    """A second context's roles.yaml (viewers may export) replaced the first's for the whole process."""
    from core.config import config_dir
    from core.hooks import PermissionDenied, check_permission
    from core.principals import Principal

    lax = tmp_path / "lax"
    shutil.copytree(config_dir(), lax)
    roles = lax / "roles.yaml"
    roles.write_text(roles.read_text(encoding="utf-8").replace("allow: [read]", "allow: [read, export]", 1),
                     encoding="utf-8")
    strict, loose = AppContext(tmp_path / "a"), AppContext(tmp_path / "b", config_dir_=lax)
    viewer = Principal("vic", "viewer", "local")
    try:
        loose.roles()
        check_permission(viewer, "export", "items")  # allowed under the lax roles
        strict.roles()
        with pytest.raises(PermissionDenied):
            check_permission(viewer, "export", "items")
        loose.roles()
        check_permission(viewer, "export", "items")
    finally:
        AppContext(tmp_path / "c").roles()  # the bundled roles again for the tests after this one


def test_a_data_dir_that_cannot_be_created_is_one_line(tmp_path):
    """A data dir under a file (as under a read-only folder) was an OSError traceback."""
    from core.store import StoreError

    (tmp_path / "file").write_text("x")
    app = AppContext(tmp_path / "file" / "data")
    with pytest.raises(StoreError) as err:
        app.store()
    assert "\n" not in str(err.value) and str(tmp_path / "file" / "data") in str(err.value)
