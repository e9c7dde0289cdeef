"""The model registry: train, list, show, promote and retire versions; exactly one champion.

Each version is a `model_versions` row plus a folder `models/<version>/` in the data directory
holding the saved classifier, its validation metrics (`metrics.json`) and a reliability diagram
(`reliability.png`).

Artifacts are data, checked before they are read (`verify_artifact`): the row's `artifact_path`
(stored relative to the data directory) must resolve, symbolic links followed, to a folder
inside `<data dir>/models/` (an absolute path is accepted only when it does, a `..` never), and
the folder must hash to the row's `artifact_sha256`, recorded at training over every file in it
(sorted relative paths, sizes and bytes, the metrics and diagram included). A changed, missing
or extra file (a planted `linear.pkl`), or a link inside the folder, is a one-line RegistryError
before anything is loaded. Versions registered before digests were recorded have none and are
refused with the advice to retrain them. Training and every role change are written to the audit log in the same
transaction as the row they describe. Promotion demotes the previous champion to challenger
inside one write transaction, so two concurrent promotions can never leave two champions.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from core import audit
from core.hooks import check_permission
from core.predictions import champion_query
from core.principals import SYSTEM, Actor, actor_name
from core.schema import ModelVersion, utcnow
from core.text import free_text_error, text_error

from .base import ModelError, PolicyClassifier
from .embedding_pin import check_embedding_pin
from .kinds import kind_class, load_classifier, make_classifier

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy

    from .config import ModelsConfig
    from .training import TrainingSet

MODELS_DIR = "models"
Echo = Callable[..., None]


class RegistryError(ModelError):
    """A registry operation is not allowed (unknown version, retiring the champion, ...)."""


class ChampionChanged(RegistryError):
    """The champion is no longer the one a gate compared against (see `promote`)."""


ANY_CHAMPION: Any = object()  # `promote(expect_champion=...)` default: whoever is champion now


def _row_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    for k in ("created_at", "promoted_at"):
        if d.get(k) is not None:
            d[k] = d[k].isoformat(timespec="seconds")
    return d


def new_version_id(kind: str) -> str:
    """`<kind>-<UTC yyyymmdd-hhmmss>-<8 hex>`: sortable by time, unique across processes."""
    return f"{kind}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


_ID_TRIES = 10


def _claim_version(store: "Store", kind: str) -> tuple[str, Path]:
    """A fresh version id and its artifact folder, created here: an id already registered, or whose
    folder exists (another training drew it), is drawn again, so no call writes into, or cleans
    up, another version's folder."""
    from sqlalchemy import select

    t = _table()
    (store.data_dir / MODELS_DIR).mkdir(parents=True, exist_ok=True)
    for _ in range(_ID_TRIES):
        version = new_version_id(kind)
        with store.read() as conn:
            if conn.execute(select(t.c.id).where(t.c.id == version)).first() is not None:
                continue
        folder = artifact_dir(store, version)
        try:
            folder.mkdir(exist_ok=False)
        except FileExistsError:
            continue
        return version, folder
    raise RegistryError(f"no free version id for kind {kind!r} after {_ID_TRIES} tries (last {version!r}): "
                        f"check {store.data_dir / MODELS_DIR} for stray folders")


def artifact_dir(store: "Store", version: str) -> Path:
    return store.data_dir / MODELS_DIR / version


def _table() -> Any:
    return ModelVersion.__table__


# -- artifacts: confined to the data directory, hashed at training, checked before loading -----
_CODE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin")  # named when found
# a whole artifact, read and copied when loaded: a fine-tuned transformer is well under 1 GB, the
# linear kinds' arrays are capped at 4 GB unpacked (`linear.MAX_ARRAYS_BYTES`)
MAX_ARTIFACT_BYTES = 8 << 30


def _artifact_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file under `folder`, sorted; a link or a special
    file inside is an error (a digest over what a link points to would follow it anywhere)."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            raise RegistryError(f"{rel} is a link or special file")
        if p.is_file():
            out.append((rel, p))
    return sorted(out)


def artifact_digest(folder: str | Path, copy_to: Optional[Path] = None) -> str:
    """Hex SHA-256 over an artifact folder: each file's relative path, size and bytes, in path order.
    With `copy_to`, the bytes hashed are also written there (a new folder): a copy that holds
    exactly what was hashed, which a file swapped in after the check can no longer change.
    A folder over `MAX_ARTIFACT_BYTES` is refused from its sizes, before a byte is read or copied:
    a planted 10 GB file was hashed whole and copied into the temporary folder first."""
    h = hashlib.sha256()
    files = _artifact_files(Path(folder))
    sizes = [(p.stat().st_size, rel) for rel, p in files]
    if sum(size for size, _ in sizes) > MAX_ARTIFACT_BYTES:
        size, rel = max(sizes)
        raise RegistryError(f"the folder holds {sum(s for s, _ in sizes)} bytes (over {MAX_ARTIFACT_BYTES}; "
                            f"largest: {rel}, {size} bytes)")
    for rel, p in files:
        # O_NOFOLLOW: a file replaced by a link after the listing is an error, not read through
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            h.update(f"{rel}\0{os.fstat(fd).st_size}\0".encode("utf-8", "surrogateescape"))
            out = None
            if copy_to is not None:
                (copy_to / rel).parent.mkdir(parents=True, exist_ok=True)
                out = (copy_to / rel).open("xb")
            try:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                    if out is not None:
                        out.write(block)
            finally:
                if out is not None:
                    out.close()
    return h.hexdigest()


def artifact_folder(store: "Store", row: dict[str, Any]) -> Path:
    """The resolved artifact folder of a registry row, refused unless inside `<data dir>/models/`."""
    raw = str(row.get("artifact_path") or "")
    root = (store.data_dir / MODELS_DIR).resolve()
    path = Path(raw)
    escape = ".." in path.parts or not raw
    resolved = (path if path.is_absolute() else store.data_dir / path).resolve()
    if escape or resolved == root or root not in resolved.parents:
        raise RegistryError(f"model {row.get('id')}: artifact path {raw!r} is outside {root}: refused")
    return resolved


def verify_artifact(store: "Store", row: dict[str, Any], copy_to: Optional[Path] = None) -> Path:
    """The artifact folder of `row` once its place and its SHA-256 check out (see the module doc).
    With `copy_to` (a folder not there yet) the files are copied there as they are hashed, and that
    copy is returned: what is loaded from it is what was checked (no swap after the check)."""
    folder = artifact_folder(store, row)
    version = row.get("id")
    if not folder.is_dir():
        raise RegistryError(f"model {version}: artifact folder {folder} is missing")
    expected = row.get("artifact_sha256")
    if not expected:
        raise RegistryError(f"model {version} has no recorded artifact digest (registered before digests were "
                            "kept): refused; retrain it with `workbench models train`")
    try:
        actual = artifact_digest(folder, copy_to)
    except (RegistryError, OSError) as exc:
        raise RegistryError(f"model {version}: artifact folder {folder} cannot be checked ({exc}): refused") from None
    if actual != expected:
        odd = [rel for rel, _ in _artifact_files(folder) if rel.lower().endswith(_CODE_SUFFIXES)]
        unexpected = f"; unexpected: {', '.join(odd)}" if odd else ""
        raise RegistryError(f"model {version}: artifact folder {folder} does not match its recorded SHA-256 "
                            f"(a file was changed, added or removed{unexpected}): refused; retrain it")
    return folder if copy_to is None else copy_to


# -- queries ---------------------------------------------------------------------------------
def list_models(store: "Store", include_retired: bool = True) -> list[dict[str, Any]]:
    """All versions, newest first, as dicts (metrics included)."""
    from sqlalchemy import select

    t = _table()
    q = select(t).order_by(t.c.created_at.desc(), t.c.id.desc())
    if not include_retired:
        q = q.where(t.c.role != "retired")
    with store.read() as conn:
        return [_row_dict(r) for r in conn.execute(q)]


_VERSION_MAX = 100  # model_versions.id is a String(100)


def check_version_name(version: Any) -> str:
    """`version` once it can name a registry row: a string of at most 100 characters, without
    control characters (a NUL is a DataError on PostgreSQL), path separators or dot-only names
    (a version names its artifact folder); RegistryError otherwise, the name cut short."""
    if (not isinstance(version, str) or not version or len(version) > _VERSION_MAX or version.strip(".") == ""
            or any(c in version for c in "/\\")
            or any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in version)):
        shown = repr(version[:60]) + ("..." if len(version) > 60 else "") if isinstance(version, str) else repr(version)
        raise RegistryError(f"not a model version name: {shown} (see `workbench models list`)")
    return version


def get_model(store: "Store", version: str) -> dict[str, Any]:
    """One version's row as a dict; RegistryError when unknown. `champion` names the champion."""
    from sqlalchemy import select

    check_version_name(version)
    t = _table()
    with store.read() as conn:
        if version == "champion":
            row = conn.execute(select(t).where(t.c.id == champion_query().scalar_subquery())).first()
            if row is None:
                raise RegistryError("there is no champion model yet: train one with `workbench models train`")
        else:
            row = conn.execute(select(t).where(t.c.id == version)).first()
            if row is None:
                raise RegistryError(f"unknown model version {version!r} (see `workbench models list`)")
    return _row_dict(row)


def champion(store: "Store") -> Optional[dict[str, Any]]:
    """The champion's row, or None when no model has been promoted."""
    try:
        return get_model(store, "champion")
    except RegistryError:
        return None


def load_model_version(store: "Store", version: str | None = None) -> tuple[PolicyClassifier, dict[str, Any]]:
    """The classifier of `version` (default: the champion) and its registry row.

    Loaded from a private copy made while the digest is computed (`verify_artifact(copy_to=)`),
    so a file replaced in the models folder between the check and the load is never read; the
    loaded model must then be of the row's kind and labels (in order: a reordered label list
    would put every score on the wrong policy)."""
    row = get_model(store, version or "champion")
    with tempfile.TemporaryDirectory(prefix="workbench-model-") as tmp:
        copy = verify_artifact(store, row, Path(tmp) / "artifact")
        try:
            model = load_classifier(copy)
        except ModelError as exc:  # named by the registered folder, not the private copy
            where = str(artifact_folder(store, row))
            raise RegistryError(f"model {row.get('id')}: {str(exc).replace(str(copy), where)}") from None
    if model.kind != row.get("kind") or list(model.labels) != list(row.get("labels") or []):
        raise RegistryError(f"model {row.get('id')}: its saved files are a {model.kind} over {model.labels}, the "
                            f"registry says a {row.get('kind')} over {row.get('labels')}: refused; retrain it")
    try:  # trained on other vectors than its embedding model now gives: every score would be wrong
        check_embedding_pin(model, str(row.get("id")))
    except ModelError as exc:
        raise RegistryError(str(exc)) from None
    return model, row


# -- role changes ----------------------------------------------------------------------------
def promote(store: "Store", version: str, actor: Actor = SYSTEM["system"], reason: str = "",
            expect_champion: Any = ANY_CHAMPION) -> dict[str, Any]:
    """Make `version` the champion; the previous champion becomes a challenger. Audited.

    Needs `promote`; who approved it is recorded on the row (`promoted_by`) and in the event.
    `expect_champion` (a version id, or None for "no champion yet") makes it a compare-and-swap
    under the registry's row lock: a gate compared `version` with one champion, and when another
    promotion ran meanwhile (a second retrain, `serve`'s automatic one, another host) promoting
    now would put it over a champion it was never compared with, so `ChampionChanged` is raised
    and nothing changes (unless `version` is the champion already, e.g. a concurrent promotion of
    it won: nothing to refuse, `changed` is False). The artifact is verified first (`verify_artifact`): a version that
    cannot be loaded never becomes champion, whichever path promotes it."""
    from sqlalchemy import select, update

    check_version_name(version)
    check_permission(actor, "promote", f"model_version {version}")
    # kept for good in the audit log (`retire` refused such a reason, `promote` stored it on both
    # stores); no length rule here: the gate's reason wraps the one a person wrote
    if isinstance(reason, str) and (bad := text_error(reason, "a promotion's reason")) is not None:
        raise RegistryError(bad)
    try:  # before the row lock: hashing a large artifact must not hold it
        verify_artifact(store, get_model(store, version))
    except RegistryError as exc:
        raise RegistryError(f"{exc} (not promoted)") from None
    approver = actor_name(actor)
    t = _table()
    with store.begin() as conn:
        rows = conn.execute(select(t.c.id, t.c.role).with_for_update()).all()
        roles = dict(rows)
        if version not in roles:
            raise RegistryError(f"unknown model version {version!r} (see `workbench models list`)")
        current = next((v for v, r in roles.items() if r == "champion"), None)
        previous = [v for v, r in roles.items() if r == "champion" and v != version]
        if roles[version] == "champion" and not previous:  # a concurrent promotion of it won: no refusal
            return {"champion": version, "previous": None, "changed": False}
        if roles[version] == "retired":  # under the lock: a retire that won the race is seen
            raise RegistryError(f"{version} is retired (kept for the record, never used to score): "
                                f"not promoted; train or pick another version")
        if expect_champion is not ANY_CHAMPION and current != expect_champion:
            raise ChampionChanged(
                f"the champion is now {current or 'none'}, not {expect_champion or 'none'} that {version} was "
                f"compared with (another promotion ran meanwhile): nothing promoted; run the gate again "
                f"(`workbench models promote {version}`)")
        if previous:
            conn.execute(update(t).where(t.c.id.in_(previous)).values(role="challenger"))
        conn.execute(update(t).where(t.c.id == version).values(role="champion", promoted_at=utcnow(),
                                                               promoted_by=approver))
        audit.record(conn, actor, "model.promote", "model_version", version,
                     {"previous_champion": previous[0] if previous else None, "from_role": roles[version],
                      "reason": reason or None, "approved_by": approver})
    return {"champion": version, "previous": previous[0] if previous else None, "changed": True}


def retire(store: "Store", version: str, actor: Actor = SYSTEM["system"], reason: str = "") -> dict[str, Any]:
    """Mark a version retired (kept for the record, never used to score). Not the champion. Needs `retire`."""
    from sqlalchemy import select, update

    check_version_name(version)
    check_permission(actor, "retire", f"model_version {version}")
    if (bad := free_text_error(reason, "a retirement's reason")) is not None:  # kept for good in the audit log
        raise RegistryError(bad)
    t = _table()
    with store.begin() as conn:
        role = conn.execute(select(t.c.role).where(t.c.id == version).with_for_update()).scalar()
        if role is None:
            raise RegistryError(f"unknown model version {version!r} (see `workbench models list`)")
        if role == "champion":
            raise RegistryError(f"{version} is the champion: promote another version before retiring it")
        if role == "retired":
            return {"retired": version, "changed": False}
        conn.execute(update(t).where(t.c.id == version).values(role="retired"))
        audit.record(conn, actor, "model.retire", "model_version", version,
                     {"from_role": role, "reason": reason or None})
    return {"retired": version, "changed": True}


# -- training --------------------------------------------------------------------------------
def evaluate(model: PolicyClassifier, texts: Sequence[str], labels: Sequence[str],
             embeddings: np.ndarray | None = None, n_bins: int = 15) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(metrics, proba, y) of a fitted model on labelled texts, over the labels that occur."""
    from .metrics import classification_summary

    proba = model.predict_proba(list(texts), embeddings)
    index = {lab: i for i, lab in enumerate(model.labels)}
    y = np.array([index[lab] for lab in labels])
    pred = model.predict_from_proba(proba)
    summary = classification_summary(y, pred, model.labels, proba, n_bins=n_bins)
    summary["labels"] = model.labels
    return summary, proba, y


def embeddings_for(store: "Store", model: PolicyClassifier, texts: Sequence[str],
                   show_progress: bool = True, config: Optional["ModelsConfig"] = None) -> np.ndarray | None:
    """Cached sentence embeddings for a kind that reads them (None for the others)."""
    if not getattr(model, "needs_embeddings", model.uses_embeddings):
        return None
    from .embeddings import Embedder, EmbeddingCache, embed_texts

    embedder = model.embedder() if hasattr(model, "embedder") else Embedder()
    if config is not None:
        embedder.batch_size = config.embedding.batch_size
    return embed_texts(list(texts), embedder, EmbeddingCache(store, embedder.model_id), show_progress=show_progress)


def check_training_args(taxonomy: "Taxonomy", config: "ModelsConfig", kind: Optional[str] = None,
                        params: Optional[dict[str, Any]] = None) -> str:
    """The kind `train_model` would train (default: `training.default_kind`), once it and its
    parameters are valid (a one-line ModelError otherwise): callers check before any work that
    stores something, such as the train/test sides `labeling.training_data` records."""
    kind = kind or config.training.default_kind
    make_classifier(kind, taxonomy.labels, **{**config.kind_params(kind), **(params or {})})
    return kind


def train_model(store: "Store", taxonomy: "Taxonomy", kind: Optional[str] = None,
                params: Optional[dict[str, Any]] = None, *, config: "ModelsConfig",
                sources: Optional[Sequence[str]] = None, parent: Optional[str] = None,
                promote_if: str = "no_champion", actor: Actor = SYSTEM["system"], data: Optional["TrainingSet"] = None,
                validation: Optional["TrainingSet"] = None, train_side_only: bool = False,
                decisions_through: Optional[int] = None, show_progress: bool = True,
                echo: Echo = lambda *a, **k: None) -> dict[str, Any]:
    """Train a new version on the store's labelled items, validate it, register it. Audited.

    Splits the examples with the configured seed (80/20 by default), fits on the training side,
    measures on the validation side, saves the artefact + metrics + reliability diagram, and
    inserts the registry row. `promote_if`: "never", "always" or "no_champion" (promote when
    there is none yet, so a fresh store gets a champion from its first model). Needs `train`
    (and `promote` when it promotes). With `validation` (a held-out set the caller split, e.g.
    the campaign-grouped test side of `labeling.training_data`), the model fits on all of `data`
    and is measured on `validation` instead of a seeded split of `data`. `train_side_only`:
    `data` is the store's grouped train side (`LearningData.fit_sets`), recorded in the metrics
    so that the gate knows this version never saw a test-side item, even when the test side was
    still empty and a seeded split of `data` validated it. `decisions_through`: the store's
    last decision id when `data` was assembled (`LearningData.stats`), recorded so that the gate
    knows which later human labels this version never saw (`evaluation.cross_fit`).
    """
    from sqlalchemy import insert

    from .embedding_pin import record_embedding_pin
    from .metrics import plot_reliability
    from .training import stratified_split, training_examples

    check_permission(actor, "train", kind or "default kind")
    if promote_if == "always":
        check_permission(actor, "promote", "the new version")
    if promote_if not in ("never", "always", "no_champion"):
        raise ModelError(f"promote_if must be never, always or no_champion, not {promote_if!r}")
    cfg = config
    kind = kind or cfg.training.default_kind
    merged = {**cfg.kind_params(kind), **(params or {})}
    if parent is not None:  # raises for an unknown parent; `champion` is recorded as the version it names now
        parent = get_model(store, parent)["id"]
    if data is None:
        data = training_examples(store, taxonomy, sources=sources,
                                 min_examples_per_label=cfg.training.min_examples_per_label)
    if len(data) == 0 or len(set(data.labels)) < 2:
        raise ModelError("no labelled items to train on (need two or more policy labels): "
                         "ingest a labelled dataset first, e.g. `workbench ingest FILE --preset sms_spam`")
    if "checkpoint_dir" in kind_class(kind).param_names() and not merged.get("checkpoint_dir"):
        # Same kind, parameters and data after a kill: the transformer resumes from here.
        merged["checkpoint_dir"] = str(store.path("checkpoints", f"{kind}-{data.fingerprint()[:16]}", "x").parent)
    model = make_classifier(kind, taxonomy.labels, **merged)
    seed = cfg.training.seed
    if validation is not None and len(validation):
        train, val = data, validation
        all_texts = list(data.texts) + list(validation.texts)
        train_idx, val_idx = np.arange(len(data)), np.arange(len(data), len(all_texts))
    else:
        train_idx, val_idx = stratified_split(data.ids, data.labels, cfg.training.validation_fraction, seed)
        train, val = data.subset(train_idx), data.subset(val_idx)
        all_texts = data.texts
    if len(val) == 0:  # every label once: evaluating nothing was an IndexError, after the fit
        raise ModelError(f"nothing to validate {kind} on: no label has two or more distinct items "
                         f"({', '.join(f'{k}={v}' for k, v in data.label_counts().items())}); label more items")
    echo(f"  training {kind} on {len(train)} items, validating on {len(val)} "
         f"({', '.join(f'{k}={v}' for k, v in data.label_counts().items())})")
    emb_all = embeddings_for(store, model, all_texts, show_progress=show_progress, config=cfg)
    model.fit(train.texts, train.labels, embeddings=None if emb_all is None else emb_all[train_idx],
              show_progress=show_progress, targets=train.targets(model.labels))
    record_embedding_pin(model)  # the embedding folder's contents, in model.json: under the artifact digest
    metrics, proba, y = evaluate(model, val.texts, val.labels,
                                 None if emb_all is None else emb_all[val_idx], cfg.training.reliability_bins)
    metrics.update({"n_train": len(train), "n_validation": len(val),
                    "split_seed": None if validation is not None and len(validation) else seed,
                    "train_side_only": bool(train_side_only),
                    "decisions_through": int(decisions_through) if train_side_only and decisions_through is not None
                    else None,
                    "validation_fraction": cfg.training.validation_fraction,
                    "label_counts": data.label_counts(), "dropped": data.dropped,
                    "labels_from_decisions": sum(1 for o in data.origin if o == "decision")})
    version, folder = _claim_version(store, kind)
    try:  # the folder is this call's own (`_claim_version`): removing it on failure touches no other version
        model.save(folder)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_reliability(proba, y, str(folder / "reliability.png"),
                         title=f"{version} on validation split", n_bins=cfg.training.reliability_bins)
        digest = artifact_digest(folder)
        t = _table()
        with store.begin() as conn:
            conn.execute(insert(t).values(
                id=version, kind=kind, artifact_path=f"{MODELS_DIR}/{version}", artifact_sha256=digest,
                parent_id=parent,
                role="challenger", labels=model.labels, params=model.get_params(),
                data_fingerprint=data.fingerprint(), metrics=metrics, taxonomy_version=taxonomy.version))
            audit.record(conn, actor, "model.train", "model_version", version,
                         {"kind": kind, "parent": parent, "data_fingerprint": data.fingerprint(),
                          "artifact_sha256": digest,
                          "n_train": len(train), "n_validation": len(val),
                          "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "ece": metrics["ece"]})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    result = get_model(store, version)
    if promote_if == "always":
        promote(store, version, actor=actor)
        result = get_model(store, version)
    elif promote_if == "no_champion" and champion(store) is None:
        try:  # another process may have made the first champion since: then this one stays a challenger
            promote(store, version, actor=actor, reason="first model", expect_champion=None)
        except ChampionChanged as exc:
            echo(f"not promoted: {exc}")
        result = get_model(store, version)
    result["reliability_png"] = str(folder / "reliability.png")
    return result
