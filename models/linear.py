"""Linear model kinds: TF-IDF word / character n-grams and frozen MiniLM embeddings, one head.

`hybrid` (the default) stacks word n-grams, character n-grams and the sentence embedding in one
multinomial logistic regression. It then calibrates on out-of-fold logits of the training data
(folds grouped by text, `models.training.grouped_folds`: a human label repeated by its weight
is never in-sample; temperature plus per-label bias, fitted by likelihood) and learns per-label
decision weights on the same out-of-fold predictions, so no test data is ever looked at.
`tfidf_lr` and `minilm_lr` are the plain baselines the benchmark compares against (no
calibration, no decision weights).
(`nblr`, the naive-Bayes-weighted variant, lives in `nblr`.)

A fitted model is saved as data only: `linear.npz` (arrays, read with `allow_pickle=False`: the
vectorizers' idf, the head's coefficients, the calibration bias) and `linear.json` (the n-gram
vocabularies and scalar settings); the scikit-learn objects are rebuilt from them on load. The
pickled `linear.pkl` of earlier versions is never read.
"""
from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .base import ModelError, PolicyClassifier, checked_temperature, real_array, register_kind
from .calibration import apply_temperature_bias, fit_temperature_bias, nll, tune_decision_weights
from .embeddings import RUNTIMES
from .metrics import softmax
from .ovr import OneVsRestLogistic
from .params import NGRAM_RANGE, PATH, SEED, Interval, Options
from .preprocessing import PREPROCESSORS, social_text
from .weights import balanced_weights

ARRAYS_FILE = "linear.npz"
STATE_FILE = "linear.json"
LEGACY_PICKLE = "linear.pkl"  # written by earlier versions; never loaded (a pickle can run code)
STATE_FORMAT = 1
MAX_ARRAYS_BYTES = 4 << 30  # unpacked: 300,000 n-grams x 2 vocabularies x a few labels is ~50 MB

_POSITIVE = Interval(numbers.Real, 0, None, closed="neither")
_COUNT = Interval(numbers.Integral, 1, None, closed="left")


@register_kind
class HybridClassifier(PolicyClassifier):
    """Word + char TF-IDF + MiniLM embedding -> logistic regression, calibrated out of fold."""

    kind = "hybrid"
    uses_embeddings = True
    _parameter_constraints = {
        "word_ngrams": [None, NGRAM_RANGE],
        "char_ngrams": [None, NGRAM_RANGE],
        "char_analyzer": [Options(("char", "char_wb"))],
        "preprocess": [None, Options(PREPROCESSORS)],
        "embedding_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "max_features": [_COUNT],
        "min_df": [_COUNT],  # scikit-learn's TfidfVectorizer takes an int min_df >= 1 only
        "C": [_POSITIVE],
        "class_weight": [None, Options(("balanced",))],
        # multinomial: one softmax over the labels; ovr: a binary head per label (models.ovr), what a
        # policy with few labels beside a big neighbouring one needs (benchmarks/new_surface.py)
        "head": [Options(("multinomial", "ovr"))],
        "calibration": [Options(("none", "temperature", "temperature_bias"))],
        "calibration_folds": [Interval(numbers.Integral, 2, None, closed="left")],
        "decision_objective": [None, Options(("macro_f1",))],
        "max_iter": [_COUNT],
        "seed": [SEED],
        "embedding_model": [None, PATH],
        "max_seq_length": [_COUNT],
        "embedding_runtime": [None, Options(RUNTIMES)],
        "soft_labels": [bool],
    }

    def __init__(self, labels: Sequence[str], word_ngrams: Optional[Sequence[int]] = (1, 2),
                 char_ngrams: Optional[Sequence[int]] = (1, 5), char_analyzer: str = "char",
                 preprocess: Optional[str] = "social", embedding_weight: float = 1.0,
                 max_features: int = 300_000, min_df: int = 2, C: float = 4.0,
                 class_weight: Optional[str] = "balanced", calibration: str = "temperature_bias",
                 calibration_folds: int = 5, decision_objective: Optional[str] = "macro_f1",
                 max_iter: int = 2000, seed: int = 0, embedding_model: Optional[str] = None,
                 max_seq_length: int = 128, embedding_runtime: Optional[str] = None,
                 soft_labels: bool = False, head: str = "multinomial") -> None:
        super().__init__(labels)
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.char_analyzer = char_analyzer
        self.preprocess = preprocess
        self.embedding_weight = embedding_weight
        self.max_features = max_features
        self.min_df = min_df
        self.C = C
        self.class_weight = class_weight
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self.decision_objective = decision_objective
        self.max_iter = max_iter
        self.seed = seed
        self.embedding_model = embedding_model
        self.max_seq_length = max_seq_length
        self.embedding_runtime = embedding_runtime
        self.soft_labels = soft_labels
        self.head = head
        self._word: Any = None
        self._char: Any = None
        self._clf: Any = None
        self._embedder: Any = None
        self._n_features: Optional[int] = None  # columns the fitted head reads
        self.temperature = 1.0
        self.bias: Optional[np.ndarray] = None

    def _validate_combination(self) -> None:
        if not (self.word_ngrams or self.char_ngrams or self.embedding_weight > 0):
            raise ModelError(f"{self.kind}: needs at least one of word_ngrams, char_ngrams, embedding_weight > 0 "
                             f"(got {self.word_ngrams!r}, {self.char_ngrams!r}, {self.embedding_weight!r})")

    @property
    def needs_embeddings(self) -> bool:
        return self.embedding_weight > 0

    # -- features ------------------------------------------------------------------------
    def _vectorizers(self) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        pre = social_text if self.preprocess == "social" else None
        self._word = (TfidfVectorizer(ngram_range=tuple(self.word_ngrams), min_df=self.min_df, sublinear_tf=True,
                                      max_features=self.max_features, dtype=np.float32, preprocessor=pre)
                      if self.word_ngrams else None)
        self._char = (TfidfVectorizer(analyzer=self.char_analyzer, ngram_range=tuple(self.char_ngrams),
                                      min_df=self.min_df, sublinear_tf=True, max_features=self.max_features,
                                      dtype=np.float32, preprocessor=pre)
                      if self.char_ngrams else None)

    def embedder(self) -> Any:
        """The Embedder used when no precomputed embeddings are passed (loaded lazily)."""
        if self._embedder is None:
            from .embeddings import Embedder

            self._embedder = Embedder(self.embedding_model, max_seq_length=self.max_seq_length,
                                      runtime=self.embedding_runtime)
        return self._embedder

    def _features(self, texts: Sequence[str], embeddings: np.ndarray | None, fit: bool) -> Any:
        import scipy.sparse as sp

        texts = checked_texts(texts, self.kind)
        blocks = []
        for name, vec in (("word", self._word), ("char", self._char)):
            if vec is not None:
                blocks.append(self._fit_vectorizer(name, vec, texts) if fit else vec.transform(texts))
        if self.needs_embeddings:
            if embeddings is None:
                embeddings = self.embedder().encode(texts)
            embeddings = self._checked_embeddings(embeddings, len(texts))
            bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
            if len(bad):
                raise ModelError(f"{self.kind}: embedding row {int(bad[0])} holds NaN or infinite values "
                                 f"({len(bad)} row(s) in all)")
            with np.errstate(over="ignore"):
                scaled = embeddings * np.float32(self.embedding_weight)
            if not np.isfinite(scaled).all():  # a valid but huge weight overflows float32
                raise ModelError(f"{self.kind}: embedding_weight={self.embedding_weight!r} times the embeddings "
                                 "overflows float32: use a smaller weight")
            blocks.append(sp.csr_matrix(scaled))
        X = sp.hstack(blocks, format="csr", dtype=np.float32) if len(blocks) > 1 else sp.csr_matrix(blocks[0])
        if not fit and self._n_features is not None and X.shape[1] != self._n_features:
            raise ModelError(f"{self.kind}: the head reads {self._n_features} features, these texts give {X.shape[1]} "
                             "(sentence embeddings of another size than the model was trained on?)")
        return X

    def _checked_embeddings(self, embeddings: Any, n: int) -> np.ndarray:
        """`embeddings` as an (n, dim) float32 array, or one ModelError line (`checked_embeddings`)."""
        return checked_embeddings(self.kind, embeddings, n).astype(np.float32)

    def _fit_vectorizer(self, name: str, vec: Any, texts: list[str]) -> Any:
        """fit_transform, with scikit-learn's complaint about the data and the n-gram settings
        ("After pruning, no terms remain", min_df above the text count) as one ModelError line."""
        try:
            return vec.fit_transform(texts)
        except ValueError as exc:
            raise ModelError(f"{self.kind}: no {name} n-gram vocabulary from {len(texts)} training texts "
                             f"with min_df={self.min_df}, max_features={self.max_features}: "
                             f"{_one_line(exc)}") from exc

    def _new_head(self, class_weight: Optional[str] = None) -> Any:
        from sklearn.linear_model import LogisticRegression

        if self.head == "ovr":
            return OneVsRestLogistic(C=self.C, class_weight=class_weight, max_iter=self.max_iter,
                                     random_state=self.seed)
        return LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight=class_weight,
                                  random_state=self.seed)

    def _fit_head(self, X: Any, y: np.ndarray, targets: np.ndarray | None) -> Any:
        """Logistic regression on hard labels, or on soft targets as one weighted row per
        (item, label with a share): the log loss of a distribution is the share-weighted sum.
        A ValueError of scikit-learn's (parameters it refuses) becomes one ModelError line."""
        try:
            if targets is None:
                return self._new_head(self.class_weight).fit(X, y)
            rows, cols = np.nonzero(targets > 0)
            weight = targets[rows, cols]
            if self.class_weight == "balanced":  # sklearn's rule, on the vote mass per label
                weight = weight * balanced_weights(targets.sum(axis=0))[cols]
            return self._new_head(None).fit(X[rows], cols, sample_weight=weight)
        except ValueError as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"{self.kind}: the logistic regression head cannot be fitted: {_one_line(exc)}") from exc

    def _full_logits(self, clf: Any, X: Any) -> np.ndarray:
        """Logits over all labels; labels absent from training get -inf (probability 0)."""
        raw = clf.decision_function(X)
        if raw.ndim == 1:  # binary: sklearn gives one score for classes_[1]
            raw = np.stack([-raw / 2, raw / 2], axis=1)
        out = np.full((X.shape[0], len(self.labels)), -np.inf)
        out[:, clf.classes_] = raw
        return out

    # -- fitting -------------------------------------------------------------------------
    def fit(self, texts: Sequence[str], y: Sequence[str], embeddings: np.ndarray | None = None,
            show_progress: bool = False, targets: np.ndarray | None = None) -> "HybridClassifier":
        from tqdm.auto import tqdm

        from .training import grouped_fold_count, grouped_folds

        self._validate_params()
        self.is_fitted = False  # until this fit ends: a failed refit leaves no half-replaced model to score with
        texts = checked_texts(texts, self.kind)  # once: a generator would be empty for the folds below
        yi = self._encode_labels(y)
        if len(yi) != len(texts):
            raise ModelError(f"{self.kind}: got {len(yi)} labels for {len(texts)} texts")
        soft = self._soft_targets(targets, len(yi))
        self._vectorizers()
        X = self._features(texts, embeddings, fit=True)
        present = np.unique(yi)
        calibrate = self.calibration != "none" or self.decision_objective is not None
        folds = grouped_fold_count(texts, yi, self.calibration_folds)
        pairs = grouped_folds(texts, yi, folds, self.seed) if calibrate and folds >= 2 else []
        if any(len(np.unique(yi[tr])) < 2 for tr, _ in pairs):
            # copies of one text under two labels can leave a fold's fitting rows one label only:
            # too little data to calibrate on, as with under two folds (no head fits one label)
            pairs = []
        steps = len(pairs) + 1
        bar = tqdm(total=steps, desc=f"fitting {self.kind}", unit="fit", disable=not show_progress, leave=False)
        self.temperature, self.bias = 1.0, np.zeros(len(self.labels))
        self.decision_weights = np.ones(len(self.labels))
        info: dict[str, Any] = {"n_train": int(len(yi)), "n_features": int(X.shape[1]),
                                "label_counts": {self.labels[i]: int(c) for i, c in enumerate(np.bincount(yi, minlength=len(self.labels))) if c}}
        if steps > 1:
            oof = np.zeros((len(yi), len(self.labels)))
            for tr, ho in pairs:
                clf = self._fit_head(X[tr], yi[tr], None if soft is None else soft[tr])
                oof[ho] = self._full_logits(clf, X[ho])
                bar.update(1)
            oof[~np.isfinite(oof)] = -1e4  # a label missing from one fold: never predicted there
            if self.calibration != "none":
                self.temperature, self.bias = fit_temperature_bias(oof[:, present], yi, present, len(self.labels),
                                                                   with_bias=self.calibration == "temperature_bias")
            proba = self._calibrate(oof)
            info["oof_log_loss_raw"] = float(nll(softmax(oof), yi))
            info["oof_log_loss"] = float(nll(proba, yi))
            if self.decision_objective == "macro_f1":
                self.decision_weights = tune_decision_weights(proba, yi, present)
            info["calibration_folds"] = folds
        self._clf = self._fit_head(X, yi, soft)
        self._n_features = int(X.shape[1])
        bar.update(1)
        info["soft_targets"] = soft is not None
        bar.close()
        info["temperature"] = float(self.temperature)
        info["bias"] = self.bias.tolist()
        self.fit_info = info
        self.is_fitted = True
        return self

    def _calibrate(self, logits: np.ndarray) -> np.ndarray:
        bias = np.zeros(len(self.labels)) if self.bias is None else self.bias
        return apply_temperature_bias(logits, self.temperature, bias)

    def predict_proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        texts = checked_texts(texts, self.kind)
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        bad = np.zeros(len(texts), dtype=bool)
        if embeddings is not None and self.needs_embeddings:
            # a NaN or infinite vector (a broken cache entry) spoils its own row, not the batch:
            # scored as a zero vector, then handed on as a NaN row (see `_checked_proba`)
            embeddings = self._checked_embeddings(embeddings, len(texts))
            bad = ~np.isfinite(embeddings).all(axis=1)
            if bad.all():
                raise ModelError(f"{self.kind}: every embedding row holds NaN or infinite values")
            embeddings[bad] = 0.0
        X = self._features(texts, embeddings, fit=False)
        proba = self._calibrate(self._full_logits(self._clf, X))
        proba[bad] = np.nan
        return self._checked_proba(proba, len(texts))

    # -- persistence: arrays in .npz, vocabularies and scalars in JSON -------------------
    def _head_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-ready description, arrays) of the fitted head; `_head_from_state` rebuilds it."""
        clf = self._clf
        if isinstance(clf, OneVsRestLogistic):
            return {"type": "ovr_logistic_regression"}, clf.to_arrays()
        return {"type": "logistic_regression"}, {"head_coef": clf.coef_, "head_intercept": clf.intercept_,
                                                 "head_classes": np.asarray(clf.classes_, dtype=np.int64)}

    def _head_from_state(self, desc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
        want = "ovr_logistic_regression" if self.head == "ovr" else "logistic_regression"
        if desc.get("type") != want:
            raise ModelError(f"a {self.kind} head cannot be rebuilt from a {desc.get('type')!r} head")
        classes = self._saved_classes(arrays["head_classes"])
        if want == "ovr_logistic_regression":
            return self._new_head(self.class_weight).from_arrays(classes, arrays["head_coef"], arrays["head_intercept"])
        return logistic_from_arrays(self._new_head(self.class_weight), arrays["head_coef"],
                                    arrays["head_intercept"], classes)

    def _saved_classes(self, classes: np.ndarray) -> np.ndarray:
        """Saved label indices, checked to be distinct indices into `labels`."""
        classes = np.asarray(classes)
        if (classes.ndim != 1 or classes.dtype.kind not in "iu" or len(np.unique(classes)) != len(classes)
                or (classes < 0).any() or (classes >= len(self.labels)).any()):
            raise ModelError(f"saved head classes {classes.tolist()} are not indices of the labels {self.labels}")
        return classes.astype(np.int64)

    def _save_state(self, folder: Path) -> None:
        head_desc, arrays = self._head_state()
        arrays = dict(arrays)
        arrays["bias"] = np.asarray(self._calibration_bias(), dtype=np.float64)
        state: dict[str, Any] = {"format": STATE_FORMAT, "temperature": float(self.temperature), "head": head_desc,
                                 "vocabularies": {}}
        for name, vec in (("word", self._word), ("char", self._char)):
            if vec is None:
                state["vocabularies"][name] = None
                continue
            terms: list[Optional[str]] = [None] * len(vec.vocabulary_)
            for term, i in vec.vocabulary_.items():
                terms[int(i)] = term
            state["vocabularies"][name] = terms
            arrays[f"{name}_idf"] = np.asarray(vec.idf_)
        np.savez(folder / ARRAYS_FILE, **arrays)
        # ASCII JSON: n-grams of odd text (lone surrogates included) round-trip through escapes.
        (folder / STATE_FILE).write_text(json.dumps(state, ensure_ascii=True), encoding="ascii")

    def _calibration_bias(self) -> np.ndarray:
        return np.zeros(len(self.labels)) if self.bias is None else self.bias

    def _load_state(self, folder: Path, meta: dict[str, Any]) -> None:
        super()._load_state(folder, meta)
        missing = [f for f in (STATE_FILE, ARRAYS_FILE) if not (folder / f).is_file()]
        if missing:
            legacy = (" (it holds a pickled linear.pkl from an earlier version, which is not loaded: "
                      "retrain the model)") if (folder / LEGACY_PICKLE).exists() else ""
            raise ModelError(f"{folder}: model state {' and '.join(missing)} is missing{legacy}")
        try:
            state = json.loads((folder / STATE_FILE).read_text(encoding="ascii"))
            with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
                size = sum(i.file_size for i in npz.zip.infolist())
                if size > MAX_ARRAYS_BYTES:  # a small, deflated file that unpacks into all the memory
                    raise ModelError(f"{folder}: {ARRAYS_FILE} unpacks to {size} bytes (over {MAX_ARRAYS_BYTES}): refused")
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"{folder}: unreadable model state ({_one_line(exc)})") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ModelError(f"{folder}: {STATE_FILE} has an unknown format")
        # Every saved number is checked before it is used (a NaN coefficient silently gives its label 0).
        arrays = {k: v if k == "head_classes" else real_array(v, f"{folder}: {ARRAYS_FILE} {k}")
                  for k, v in arrays.items()}
        try:
            self._vectorizers()
            width = 0
            for name in ("word", "char"):
                vec, terms = getattr(self, f"_{name}"), state["vocabularies"].get(name)
                if (vec is None) != (terms is None):
                    raise ModelError(f"{folder}: saved {name} n-grams do not match the parameters")
                if vec is not None:
                    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
                        raise ModelError(f"{folder}: saved {name} vocabulary is not a list of n-grams")
                    if len(set(terms)) != len(terms) or not terms:
                        raise ModelError(f"{folder}: saved {name} vocabulary is empty or repeats an n-gram")
                    idf = arrays[f"{name}_idf"]
                    if idf.shape != (len(terms),):
                        raise ModelError(f"{folder}: saved {name} idf has shape {idf.shape}, not ({len(terms)},) "
                                         "as its vocabulary")
                    vec.vocabulary_ = {t: i for i, t in enumerate(terms)}
                    vec.fixed_vocabulary_ = False
                    vec.idf_ = idf
                    width += len(terms)
            self._clf = self._head_from_state(state["head"], arrays)
            self.temperature = checked_temperature(state["temperature"], f"{folder}: {STATE_FILE} temperature")
            self.bias = arrays["bias"]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"{folder}: incomplete model state ({type(exc).__name__}: {exc})") from None
        if self.bias.shape != (len(self.labels),):
            raise ModelError(f"{folder}: calibration bias has shape {self.bias.shape}, not ({len(self.labels)},)")
        self._n_features = _head_width(self._clf)
        if (self._n_features <= width) if self.needs_embeddings else (self._n_features != width):
            raise ModelError(f"{folder}: the saved head reads {self._n_features} features, the saved vocabularies "
                             f"give {width}{' plus the sentence embedding' if self.needs_embeddings else ''}")


def _head_width(clf: Any) -> int:
    """How many features a fitted head reads (its coefficient columns)."""
    return int(clf.ratios_[0].shape[0] if hasattr(clf, "ratios_") else clf.coef_.shape[1])


def checked_texts(texts: Any, kind: str) -> list[str]:
    """`texts` as a list once it is a sequence of strings, else one ModelError line naming the
    first bad row. Why: one string would be scored character by character, and a None or NaN row
    (a missing value of a data frame) fails inside scikit-learn with a message naming nothing."""
    if isinstance(texts, (str, bytes)):
        raise ModelError(f"{kind}: texts must be a list of strings, not one {type(texts).__name__}")
    try:
        out = list(texts)
    except TypeError:
        raise ModelError(f"{kind}: texts must be a list of strings, not {type(texts).__name__}") from None
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise ModelError(f"{kind}: text {i} is a {type(t).__name__}, not a string")
    return out


def checked_embeddings(kind: str, embeddings: Any, n: int) -> np.ndarray:
    """`embeddings` as an (n, dim) numeric array, or one ModelError line naming `kind`: a 1-D, 3-D
    or non-numeric array otherwise fails deep in scipy with a message naming nothing."""
    try:
        arr = np.asarray(embeddings)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{kind}: embeddings are not an array of numbers ({_one_line(exc)})") from None
    if arr.dtype.kind not in "iuf" or arr.ndim != 2 or arr.shape[0] != n:
        raise ModelError(f"{kind}: embeddings must be an ({n}, dim) array of numbers, one row per text; "
                         f"got shape {arr.shape} of {arr.dtype}")
    return arr


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message (scikit-learn's run to several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def logistic_from_arrays(clf: Any, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray) -> Any:
    """An unfitted scikit-learn LogisticRegression `clf` given the fitted coefficients (enough for
    `decision_function`): what `fit` would have set, read from saved arrays."""
    coef, intercept, classes = np.asarray(coef), np.asarray(intercept), np.asarray(classes)
    rows = coef.shape[0] if coef.ndim == 2 else -1
    if rows < 1 or intercept.shape != (rows,) or classes.shape != (2 if rows == 1 else rows,):
        raise ModelError(f"saved logistic regression has inconsistent shapes: coef {coef.shape}, "
                         f"intercept {intercept.shape}, classes {classes.shape}")
    clf.coef_, clf.intercept_, clf.classes_ = coef, intercept, classes
    clf.n_features_in_ = coef.shape[1]
    return clf


@register_kind
class TfidfLogReg(HybridClassifier):
    """Baseline: word TF-IDF + logistic regression, uncalibrated (what a team tries first)."""

    kind = "tfidf_lr"
    uses_embeddings = False

    def __init__(self, labels: Sequence[str], word_ngrams: Sequence[int] = (1, 2), C: float = 4.0,
                 min_df: int = 2, max_iter: int = 2000, seed: int = 0) -> None:
        super().__init__(labels, word_ngrams=word_ngrams, char_ngrams=None, preprocess=None, embedding_weight=0.0,
                         C=C, min_df=min_df, class_weight=None, calibration="none", decision_objective=None,
                         max_iter=max_iter, seed=seed)


@register_kind
class MiniLMLogReg(HybridClassifier):
    """Baseline: frozen sentence embedding + logistic regression, uncalibrated."""

    kind = "minilm_lr"
    uses_embeddings = True

    def __init__(self, labels: Sequence[str], C: float = 4.0, max_iter: int = 2000, seed: int = 0,
                 embedding_model: Optional[str] = None, max_seq_length: int = 128,
                 embedding_runtime: Optional[str] = None) -> None:
        super().__init__(labels, word_ngrams=None, char_ngrams=None, embedding_weight=1.0, C=C,
                         class_weight=None, calibration="none", decision_objective=None, max_iter=max_iter, seed=seed,
                         embedding_model=embedding_model, max_seq_length=max_seq_length,
                         embedding_runtime=embedding_runtime)
