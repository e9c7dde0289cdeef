"""Hardening (export order): the label export wrote its folder (unmasked texts, authors, notes)
and only then recorded `labels.export`; a store that was busy or failed the commit left the export
on disk with no audit event. Now the folder is swapped in inside the event's transaction and taken
back out if that does not commit. A Hub push went ahead whenever the repo lookup failed in any way,
so a rate limit, 5xx or timeout on the lookup followed by a good push sent everything into an
existing public repo (`push_to_hub` keeps its visibility): only "not found" lets a push go now."""
from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError

import core.audit
from core.schema import AuditEvent, Decision, utcnow
from labeling.export import ExportError, export_labels
from test_models_fixtures import add_items

REPO = "me/labels"


@pytest.fixture
def labelled(any_store):
    ids = add_items(any_store, ["buy cheap pills", "see you at 5"], ["spam", None])
    with any_store.begin() as conn:
        for i, label in zip(ids, ("spam", "benign")):
            conn.execute(insert(Decision.__table__).values(
                item_id=i, label=label, action="remove", kind="review", reviewer="ann", taxonomy_version="t",
                created_at=utcnow()))
    return any_store


def _events(store):
    with store.read() as conn:
        return conn.execute(select(func.count()).select_from(AuditEvent)
                            .where(AuditEvent.action == "labels.export")).scalar()


def _locked(*_a, **_k):
    raise OperationalError("INSERT INTO audit_events ...", {}, Exception("database is locked"))


def _fail(store, monkeypatch, where):
    """Make the `labels.export` event fail to commit at `where`."""
    if where == "record":
        monkeypatch.setattr(core.audit, "record", _locked)
        return
    real = store.begin

    @contextlib.contextmanager
    def begin():
        if where == "begin":
            _locked()
        with real() as conn:
            yield conn
            _locked()  # the body ran (the folder is in place), then the commit fails: rolled back

    monkeypatch.setattr(store, "begin", begin)


@pytest.mark.parametrize("where", ["record", "begin", "commit"])
def test_an_export_whose_audit_event_fails_is_not_left_on_disk(labelled, taxonomy, tmp_path, monkeypatch, where):
    import datasets

    out = tmp_path / "out"
    export_labels(labelled, taxonomy, out)
    (out / "labels.parquet").write_bytes(b"the earlier export")  # to see it kept, byte for byte
    _fail(labelled, monkeypatch, where)
    with pytest.raises(ExportError, match=r"fresh: not exported: its audit event could not be recorded "
                                          r"\(.*database is locked\), so nothing was written$") as err:
        export_labels(labelled, taxonomy, tmp_path / "fresh")  # was: written, unmasked, with no event
    assert "\n" not in str(err.value)
    with pytest.raises(ExportError, match=r"out: not exported: .* and the earlier export is kept$"):
        export_labels(labelled, taxonomy, out, overwrite=True)
    monkeypatch.undo()
    assert not (tmp_path / "fresh").exists() and _events(labelled) == 1
    assert (out / "labels.parquet").read_bytes() == b"the earlier export"
    assert datasets.load_from_disk(str(out / "dataset")).num_rows == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]  # no temporary or old folder left
    assert export_labels(labelled, taxonomy, out, overwrite=True)["replaced"] is True and _events(labelled) == 2


def test_a_push_whose_audit_event_cannot_be_recorded_is_not_pushed(labelled, taxonomy, tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    pushed = []
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", lambda self, repo, **kw: SimpleNamespace(private=True))
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda self, repo, **kw: pushed.append(repo))
    _fail(labelled, monkeypatch, "commit")
    with pytest.raises(ExportError, match=rf"the push to {REPO} could not be recorded \(.*database is locked\), "
                                          r"so nothing was pushed or written$"):
        export_labels(labelled, taxonomy, tmp_path / "out", push_to_hub=REPO)
    assert pushed == [] and not (tmp_path / "out").exists()

def _http(status):
    import httpx2
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    response = httpx2.Response(status, request=httpx2.Request("GET", f"https://huggingface.co/api/datasets/{REPO}"))
    kind = {404: RepositoryNotFoundError, 403: GatedRepoError}.get(status, HfHubHTTPError)
    return kind(f"{status} Client Error for url: https://huggingface.co/api/datasets/{REPO}\nmore detail",
                response=response)


def _timeout():
    import httpx2

    return httpx2.ReadTimeout("The read operation timed out")


@pytest.mark.parametrize("error, said", [
    (lambda: _http(429), "429 Client Error"), (lambda: _http(503), "503 Client Error"),
    (_timeout, "The read operation timed out"), (lambda: _http(403), "403 Client Error")])  # 403: gated, it exists
def test_a_failed_repo_lookup_refuses_the_push(labelled, taxonomy, tmp_path, monkeypatch, error, said):
    """The lookup failed for a reason that says nothing about the repo: it was read as "does not
    exist" and the push went on, into whatever repo was there, public or not."""
    import datasets
    import huggingface_hub

    pushed, lookup = [], {"error": error}

    def repo_info(self, repo, **kw):
        if lookup["error"]:
            raise lookup["error"]()
        return SimpleNamespace(id=repo, private=False)  # the repo that was there all along: public

    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", repo_info)
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda self, repo, **kw: pushed.append((repo, kw)))
    with pytest.raises(ExportError, match=rf"out: written \(2 rows\), but the push to {REPO} failed: could not "
                                          rf"check whether {REPO} is private: .*{said}.*; not pushed$") as err:
        export_labels(labelled, taxonomy, tmp_path / "out", push_to_hub=REPO)
    assert "\n" not in str(err.value) and pushed == []
    assert (tmp_path / "out" / "labels.parquet").is_file() and _events(labelled) == 1  # written, and audited
    with labelled.read() as conn:
        event = conn.execute(select(AuditEvent.payload).where(AuditEvent.action == "labels.export")).scalar()
    assert event["pushed_to"] is None and "could not check whether" in event["push_error"]

    lookup["error"] = lambda: _http(404)  # the Hub says there is no such repo: the push creates it, private
    summary = export_labels(labelled, taxonomy, tmp_path / "new", push_to_hub=REPO)
    assert summary["pushed_to"] == REPO and pushed == [(REPO, {"private": True})]
