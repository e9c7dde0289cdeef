"""One estimator interface for every model kind, and the registry dict the kinds join.

A `PolicyClassifier` is a small scikit-learn-style object: parameters in the constructor (which
only stores them; `_validate_params` checks them against the kind's `_parameter_constraints`, see
`params`), `fit(texts, labels)`, `predict_proba(texts)` with one column per policy label in
taxonomy order, `save(folder)` / `load_classifier(folder)`. Kinds that read sentence embeddings
accept them precomputed (`embeddings=`), so the caller can serve them from the text-hash cache;
otherwise they encode with their own lazily loaded `Embedder`.

This module knows no kind: each kind module registers its classes with `register_kind`, and
`models.kinds` imports them all and offers the lookups (`kind_names`, `kind_class`,
`make_classifier`, `load_classifier`) to the rest of the project.

`fit` also takes optional soft `targets`, an (n, labels) array of label distributions (the
annotators' vote shares, see `training.target_matrix`); kinds built with `soft_labels=True`
learn from them, the others ignore them. `y` stays the hard label: splits, calibration and
decision weights are fitted against what the model will be judged on.

`predict` may differ from the arg-max of `predict_proba`: kinds can learn per-label decision
weights (on held-out training data) that trade a little accuracy for recall on rare, severe
policies such as hate; the probabilities themselves stay calibrated.
"""
from __future__ import annotations

import inspect
import json
import numbers
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import numpy as np

from .metrics import UNCERTAINTY
from .params import Interval, unmet

META_FILE = "model.json"
KINDS: dict[str, type["PolicyClassifier"]] = {}


class ModelError(ValueError):
    """A model cannot be built, trained or loaded as asked (the message says why)."""


def register_kind(cls: type["PolicyClassifier"]) -> type["PolicyClassifier"]:
    """Class decorator: make a kind available by name to `make_classifier` / `load_classifier`."""
    KINDS[cls.kind] = cls
    return cls


# -- lookups among the kinds registered so far ------------------------------------------------
# `models.kinds` imports every kind module and is the public entry point (kind_names, kind_class,
# make_classifier, load_classifier); the functions below only see kinds whose module has been
# imported, which is what a composite kind (the ensemble) needs without importing models.kinds.
def registered_class(kind: str) -> type["PolicyClassifier"]:
    try:
        return KINDS[kind]
    except (KeyError, TypeError):
        raise ModelError(f"unknown model kind {kind!r} (known: {', '.join(sorted(KINDS))})") from None


def new_registered(kind: str, labels: Sequence[str], **params: Any) -> "PolicyClassifier":
    """A fresh, unfitted, validated classifier of a registered `kind` (see `kinds.make_classifier`)."""
    cls = registered_class(kind)
    allowed = set(cls.param_names())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ModelError(f"kind {kind!r} has no parameter(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(allowed - {'labels'}))})")
    model = cls(labels=labels, **params)
    model._validate_params()
    return model


def load_registered(path: str | Path) -> "PolicyClassifier":
    """A classifier saved by `save`, of a registered kind (see `kinds.load_classifier`). The folder
    is hostile input: a link inside it (to /etc/passwd, to another model's weights) is refused
    before anything is read, and each kind checks its arrays' types, shapes and finiteness."""
    folder = Path(path)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise ModelError(f"{folder}: not a saved model (no {META_FILE})")
    refuse_links(folder)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{folder}: unreadable {META_FILE} ({_first_line(exc)})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("params", {}), dict):
        raise ModelError(f"{folder}: {META_FILE} is not a model description")
    model = new_registered(meta.get("kind"), meta.get("labels") or [], **meta.get("params", {}))
    model._load_state(folder, meta)
    model.is_fitted = True
    return model


class PolicyClassifier:
    """Base class: subclasses implement `fit`, `predict_proba`, `_save_state`, `_load_state`."""

    kind: ClassVar[str] = ""
    uses_embeddings: ClassVar[bool] = False
    # {parameter: [constraint, ...]} (see models.params); a value must satisfy one of its list.
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

    def __init__(self, labels: Sequence[str]) -> None:
        # Constructors only store their parameters (checked by `_validate_params`) and set up the
        # state of an unfitted model.
        self.labels = labels
        self.is_fitted = False
        self.decision_weights: Optional[np.ndarray] = None  # set by fit / load (None: plain arg-max)
        self.fit_info: dict[str, Any] = {}

    # -- parameters (scikit-learn style) -------------------------------------------------
    def _validate_params(self) -> None:
        """Check every constructor parameter against `_parameter_constraints`, then the checks
        that involve several parameters (`_validate_combination`); ModelError names the kind, the
        parameter and the value. Run by `make_classifier` and at the start of `fit`."""
        labels = self.labels
        if (not isinstance(labels, (list, tuple)) or len(labels) < 2 or len(set(labels)) != len(labels)
                or not all(isinstance(lab, str) for lab in labels)):
            raise ModelError(f"{self.kind}: need two or more distinct labels, got {labels!r}")
        self.labels = list(labels)
        for name in self.param_names():
            if name == "labels":
                continue
            constraints = self._parameter_constraints.get(name)
            if constraints is None:
                raise ModelError(f"{self.kind}: parameter {name!r} has no declared constraints")
            problem = unmet(getattr(self, name), constraints)
            if problem:
                raise ModelError(f"{self.kind}: parameter {name!r} {problem}")
        self._validate_combination()

    def _validate_combination(self) -> None:
        """Checks across parameters (each valid on its own); raise ModelError naming them."""

    # -- parameters (scikit-learn style) -------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [n for n, p in sig.parameters.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """Constructor defaults except `labels` (JSON-ready)."""
        sig = inspect.signature(cls.__init__)
        return {n: _jsonable(p.default) for n, p in sig.parameters.items()
                if n not in ("self", "labels") and p.default is not p.empty}

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters except `labels` (JSON-ready), as they were given."""
        return {n: _jsonable(getattr(self, n)) for n in self.param_names() if n != "labels"}

    def typed_params(self) -> dict[str, Any]:
        """`get_params` with each number as the type its constraints declare (4 -> 4.0 for a float
        parameter): what the model computes with, for fingerprints that must not depend on spelling."""
        out = {}
        for name, value in self.get_params().items():
            kinds = {c.type for c in self._parameter_constraints.get(name, []) if isinstance(c, Interval)}
            if kinds == {numbers.Real} and isinstance(value, numbers.Real) and not isinstance(value, bool):
                value = float(value)
            out[name] = value
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- the contract --------------------------------------------------------------------
    def fit(self, texts: Sequence[str], y: Sequence[str], embeddings: np.ndarray | None = None,
            show_progress: bool = False, targets: np.ndarray | None = None) -> "PolicyClassifier":
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """(n, len(labels)) calibrated probabilities, columns in `labels` order."""
        raise NotImplementedError

    def predict_from_proba(self, proba: np.ndarray) -> np.ndarray:
        """(n,) label indices: arg-max of probabilities times the learned decision weights."""
        proba = np.asarray(proba)
        if self.decision_weights is None:
            return np.argmax(proba, axis=1)
        return np.argmax(proba * self.decision_weights[None, :], axis=1)

    def predict(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> list[str]:
        idx = self.predict_from_proba(self.predict_proba(texts, embeddings))
        return [self.labels[i] for i in idx]

    def uncertainty(self, proba: np.ndarray, method: str = "margin") -> np.ndarray:
        """(n,) uncertainty per prediction (see `metrics.margin_uncertainty` / `entropy_uncertainty`)."""
        try:
            return UNCERTAINTY[method](proba)
        except KeyError:
            raise ModelError(f"unknown uncertainty {method!r} (known: {', '.join(UNCERTAINTY)})") from None

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted model into folder `path` (created); returns it."""
        if not self.is_fitted:
            raise ModelError("cannot save a model that has not been fitted")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "labels": self.labels, "params": self.get_params(),
                "decision_weights": self._decision_weights().tolist(), "fit_info": _jsonable(self.fit_info)}
        self._save_state(folder)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))
        return folder

    def _decision_weights(self) -> np.ndarray:
        return np.ones(len(self.labels)) if self.decision_weights is None else self.decision_weights

    def _save_state(self, folder: Path) -> None:
        raise NotImplementedError

    def _load_state(self, folder: Path, meta: dict[str, Any]) -> None:
        saved = meta.get("decision_weights")
        weights = real_array(np.ones(len(self.labels)) if saved is None else saved, f"{folder}: {META_FILE} "
                             "decision_weights", (len(self.labels),))
        if (weights <= 0).any():  # a zero or negative weight silently never (or inversely) predicts a label
            raise ModelError(f"{folder}: {META_FILE} decision_weights must all be > 0, got {weights.tolist()}")
        self.decision_weights = weights
        self.fit_info = meta.get("fit_info", {})

    def _checked_proba(self, proba: Any, n: int) -> np.ndarray:
        """`proba` once it is an (n, labels) array of distributions (finite, in [0, 1], rows summing to
        1): what a model hands to scoring is stored as the record, so a broken model (NaN or zero
        temperature, an overflow) is one ModelError here instead of NaN or lopsided scores there."""
        proba = np.asarray(proba, dtype=float)
        k = len(self.labels)
        if proba.shape != (n, k):
            raise ModelError(f"{self.kind}: probabilities of shape {proba.shape}, not ({n}, {k}): the model is broken")
        bad = (~np.isfinite(proba).all(axis=1) | (proba < -_PROBA_TOL).any(axis=1) | (proba > 1 + _PROBA_TOL).any(axis=1)
               | (np.abs(proba.sum(axis=1) - 1.0) > _PROBA_TOL))
        if n and bad.all():
            raise ModelError(f"{self.kind}: every text got scores that are not probabilities "
                             f"({np.round(proba[0], 6).tolist()}): the model is broken, nothing scored with it")
        # some rows only (one text overflowed): those become NaN rows, which scoring leaves
        # unwritten and names (`core.predictions.prediction_problem`), so one hostile text cannot
        # stop the batch
        proba[bad] = np.nan
        return np.clip(proba, 0.0, 1.0)

    # -- helpers for subclasses ------------------------------------------------------------
    def _encode_labels(self, y: Sequence[str]) -> np.ndarray:
        index = {lab: i for i, lab in enumerate(self.labels)}
        bad = sorted({lab for lab in y if lab not in index})
        if bad:
            raise ModelError(f"training labels {bad} are not among the model's labels {self.labels}")
        out = np.fromiter((index[lab] for lab in y), dtype=np.int64, count=len(y))
        if len(np.unique(out)) < 2:
            raise ModelError("training data needs at least two different labels")
        return out

    def _soft_targets(self, targets: np.ndarray | None, n: int) -> np.ndarray | None:
        """`targets` checked and row-normalised when this model learns from them, else None."""
        if targets is None or not getattr(self, "soft_labels", False):
            return None
        t = np.asarray(targets, dtype=float)
        if t.shape != (n, len(self.labels)):
            raise ModelError(f"soft targets must have shape ({n}, {len(self.labels)}), got {t.shape}")
        total = t.sum(axis=1)
        if not np.isfinite(t).all() or (t < 0).any() or (total <= 0).any():
            bad = int(np.flatnonzero(~np.isfinite(total) | (total <= 0) | (t < 0).any(axis=1))[0])
            raise ModelError(f"soft target row {bad} is not a distribution: {t[bad].tolist()}")
        return t / total[:, None]

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ModelError(f"this {self.kind} model has not been fitted")


_PROBA_TOL = 1e-6


def refuse_links(folder: Path) -> None:
    """ModelError when anything inside `folder` is a symbolic link or not a plain file or folder:
    a model reads only its own files (a link could read /etc/passwd, or another model's weights)."""
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            raise ModelError(f"{folder}: {p.relative_to(folder).as_posix()} is a link or special file: refused")


def real_array(value: Any, what: str, shape: Optional[tuple[int, ...]] = None) -> np.ndarray:
    """`value` as a float array (integers as float64) once it holds real numbers only (no strings, objects, complex),
    every one finite, and has `shape` when given; else a one-line ModelError naming `what`.
    A NaN weight does not fail loudly downstream: it turns a label's probability into 0, or every
    score into NaN, so saved arrays are checked when they are read."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{what} is not an array of numbers ({_first_line(exc)})") from None
    if arr.dtype.kind not in "iuf":
        raise ModelError(f"{what} holds {arr.dtype} values, not real numbers")
    if arr.dtype.kind != "f":  # a saved float32 stays float32: scores reproduce exactly
        arr = arr.astype(np.float64)
    if shape is not None and arr.shape != shape:
        raise ModelError(f"{what} has shape {arr.shape}, not {shape}")
    if not np.isfinite(arr).all():
        raise ModelError(f"{what} holds {int((~np.isfinite(arr)).sum())} NaN or infinite value(s)")
    return arr


def checked_temperature(value: Any, what: str) -> float:
    """A saved calibration temperature once it is a finite number > 0: 0 or NaN makes every score
    NaN, a negative one turns the ranking of the labels upside down."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)) or value <= 0:
        raise ModelError(f"{what} must be a finite number > 0, got {value!r}")
    return float(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
