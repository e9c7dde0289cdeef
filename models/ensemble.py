"""Ensemble kind: several calibrated members blended by weights learned on held-out data.

The n-gram `hybrid` and the fine-tuned `transformer` make different mistakes (one sees spellings
and slurs character by character, the other reads the sentence), so a blend of the two beats
either. `fit` holds out a seeded, stratified `blend_fraction` of the training data, fits every
member on the rest, and then learns on the held-out slice, by log loss, one weight per member
and one bias per label over the members' log-probabilities (a stacked, tied logistic
regression: k + m parameters, so a few hundred held-out items suffice). Per-label decision
weights are tuned on the same slice, bagged over bootstrap resamples because the slice is small.
With `blend_folds` = K >= 2 the blend is cross-fitted instead: the members are trained K times, each
time on K-1 folds, and the blend and decision weights are learned on the out-of-fold predictions
of every training item (on Davidson, ~1,100 hate tweets instead of the ~170 of a 15% slice). The K
fitted member sets are kept and their log-probabilities averaged at prediction time (cross-fit
bagging), so the blend scores models of the kind it was fitted on.
With `refit`, every member is then trained again on all the training data and the learned blend
and decision weights are kept (as scikit-learn's stacking refits its base estimators on the full
data): the members see the held-out data too, but are sharper than the ones the blend was fitted on.
Soft targets (annotator vote shares) go to every member; those with `soft_labels` learn from
them, and the blend itself is fitted on the hard labels. Members are saved in sub-folders with
their own kinds.
"""
from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

# Importing the kind modules of the default members registers them (models.kinds registers all).
from . import linear, transformer  # noqa: F401
from .base import (ModelError, PolicyClassifier, _first_line, load_registered, new_registered, real_array,
                   register_kind, registered_class)
from .calibration import platt_targets, tune_decision_weights
from .linear import checked_embeddings, checked_texts
from .params import PATH, SEED, Check, Interval, Options
from .training import grouped_folds, grouped_holdout

_DEFAULT_MEMBER_MODULES = (linear, transformer)  # used for their registration only (keeps pyflakes quiet)
BLEND_FILE = "blend.json"
MEMBERS_DIR = "members"
DEFAULT_MEMBERS = ({"kind": "hybrid"}, {"kind": "transformer"})


@register_kind
class EnsembleClassifier(PolicyClassifier):
    """Blend of member kinds; slowest to train, best scores (see benchmarks/quality.py)."""

    kind = "ensemble"
    uses_embeddings = True
    _parameter_constraints = {
        "members": [Check(lambda v: isinstance(v, (list, tuple)) and len(v) > 0,
                          "a non-empty list of member kinds or {kind, params}")],
        "blend_fraction": [Interval(numbers.Real, 0, 0.5, closed="neither")],
        "decision_objective": [None, Options(("macro_f1",))],
        "decision_bootstrap": [Interval(numbers.Integral, 0, None, closed="left")],
        "blend_folds": [Check(lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)
                              and (v == 0 or v >= 2), "0 (one held-out slice) or an int >= 2")],
        "blend_weights": [Options(("tied", "per_label"))],
        "refit": [bool],
        "checkpoint_dir": [None, PATH],
        "seed": [SEED],
    }

    def __init__(self, labels: Sequence[str], members: Sequence[dict[str, Any]] = DEFAULT_MEMBERS,
                 blend_fraction: float = 0.15, decision_objective: Optional[str] = "macro_f1",
                 decision_bootstrap: int = 30, blend_folds: int = 0, blend_weights: str = "tied",
                 refit: bool = False, checkpoint_dir: Optional[str] = None, seed: int = 0) -> None:
        super().__init__(labels)
        self.members = members
        self.blend_fraction = blend_fraction
        self.decision_objective = decision_objective
        self.decision_bootstrap = decision_bootstrap
        self.blend_folds = blend_folds
        self.blend_weights = blend_weights
        self.refit = refit
        self.checkpoint_dir = checkpoint_dir
        self.seed = seed
        self._sets: list[list[PolicyClassifier]] = []  # one set of members per fold (one set unless bagged)
        self.blend_log_proba_: Optional[np.ndarray] = None  # (m, n, k) what the blend was fitted on (not saved)
        self.blend_y_: Optional[np.ndarray] = None
        self.weights: Optional[np.ndarray] = None  # (m,) or (m, k), set by fit / load
        self.bias: Optional[np.ndarray] = None
        self.present: Optional[np.ndarray] = None

    def _validate_combination(self) -> None:
        for i, spec in enumerate(self.member_specs()):  # each member's own parameters, too
            try:
                new_registered(spec["kind"], self.labels, **spec["params"])
            except ModelError as exc:
                raise ModelError(f"{self.kind} member {i}: {exc}") from None

    def member_specs(self) -> list[dict[str, Any]]:
        """`members` as `{kind, params}` dicts; ModelError says what is wrong with one."""
        return [member_spec(m, i) for i, m in enumerate(self.members)]

    # -- members -------------------------------------------------------------------------
    def _new_members(self, stage: str = "") -> list[PolicyClassifier]:
        """Unfitted members; `stage` names their checkpoint folders apart (the refit's own)."""
        out = []
        for i, spec in enumerate(self.member_specs()):
            params = dict(spec.get("params") or {})
            if "checkpoint_dir" in registered_class(spec["kind"]).param_names():
                base = params.get("checkpoint_dir") or (
                    str(Path(self.checkpoint_dir) / f"member-{i}-{spec['kind']}") if self.checkpoint_dir else None)
                if base:
                    params["checkpoint_dir"] = base + stage
            out.append(new_registered(spec["kind"], self.labels, **params))
        return out

    def _embedding_member(self) -> Optional[PolicyClassifier]:
        models = self._sets[0] if self._sets else self._new_members()
        for m in models:
            if getattr(m, "needs_embeddings", m.uses_embeddings):
                return m
        return None

    @property
    def fitted_members(self) -> list[PolicyClassifier]:
        """The fitted members of the first set, in `members` order (empty before `fit`)."""
        return list(self._sets[0]) if self._sets else []

    @property
    def n_member_sets(self) -> int:
        """How many fitted member sets are averaged (the folds when cross-fit bagged, else 1)."""
        return len(self._sets)

    def member_log_proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """(m, n, k) each member's log-probabilities, averaged over the member sets: the blend's inputs."""
        self._check_fitted()
        texts = checked_texts(texts, self.kind)
        embeddings = self._checked_embeddings(embeddings, len(texts))
        return np.mean([self._member_log_proba(texts, embeddings, models) for models in self._sets], axis=0)

    @property
    def needs_embeddings(self) -> bool:
        return self._embedding_member() is not None

    def embedder(self) -> Any:
        """The embedder of the first member that reads sentence embeddings (for the cache)."""
        member = self._embedding_member()
        if member is None or not hasattr(member, "embedder"):
            raise ModelError("no member of this ensemble reads sentence embeddings")
        return member.embedder()

    def _member_log_proba(self, texts: Sequence[str], embeddings: np.ndarray | None,
                          models: Sequence[PolicyClassifier]) -> np.ndarray:
        """(m, n, k) clipped log-probabilities of each member; ModelError names a member whose output is
        not (n, labels) numbers (np.stack's "all input arrays must have the same shape" names none)."""
        out = []
        for i, m in enumerate(models):
            emb = embeddings if getattr(m, "needs_embeddings", m.uses_embeddings) else None
            try:
                proba = np.asarray(m.predict_proba(texts, embeddings=emb), dtype=float)
            except (TypeError, ValueError) as exc:
                if isinstance(exc, ModelError):
                    raise
                raise ModelError(f"{self.kind} member {i} ({m.kind}): probabilities are not numbers "
                                 f"({_first_line(exc)})") from None
            if proba.shape != (len(texts), len(self.labels)):
                raise ModelError(f"{self.kind} member {i} ({m.kind}): probabilities of shape {proba.shape}, "
                                 f"not ({len(texts)}, {len(self.labels)})")
            out.append(np.log(np.clip(proba, 1e-9, 1.0)))  # a NaN row stays NaN: `_checked_proba` names it
        return np.stack(out) if out else np.zeros((0, len(texts), len(self.labels)))

    def _checked_embeddings(self, embeddings: Any, n: int, finite: bool = False) -> np.ndarray | None:
        """`embeddings` as an (n, dim) array (None stays None), or one ModelError line: more rows than
        texts were silently misaligned, fewer an IndexError. With `finite` (fitting), a NaN row is
        refused too: in the blend slice it made the blend weights NaN."""
        if embeddings is None:
            return None
        arr = checked_embeddings(self.kind, embeddings, n)
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1)) if finite else []
        if len(bad):
            raise ModelError(f"{self.kind}: embedding row {int(bad[0])} holds NaN or infinite values "
                             f"({len(bad)} row(s) in all)")
        return arr

    # -- fitting -------------------------------------------------------------------------
    def fit(self, texts: Sequence[str], y: Sequence[str], embeddings: np.ndarray | None = None,
            show_progress: bool = False, targets: np.ndarray | None = None) -> "EnsembleClassifier":
        self._validate_params()
        self.is_fitted = False  # until this fit ends: a failed refit leaves no old members under a new blend
        specs = self.member_specs()
        texts = checked_texts(texts, self.kind)
        yi = self._encode_labels(y)
        if len(yi) != len(texts):
            raise ModelError(f"{self.kind}: got {len(yi)} labels for {len(texts)} texts")
        embeddings = self._checked_embeddings(embeddings, len(texts), finite=True)
        if targets is not None and np.shape(targets) != (len(yi), len(self.labels)):
            raise ModelError(f"soft targets must have shape ({len(yi)}, {len(self.labels)}), got {np.shape(targets)}")
        if self.blend_folds:
            sets, infos, logp = self._cross_fit(texts, yi, embeddings, targets, show_progress)
            blend_idx = np.arange(len(yi))
            n_train = int(len(yi) - len(yi) // self.blend_folds)
        else:
            fit_idx, blend_idx = grouped_holdout(texts, yi.tolist(), self.blend_fraction, self.seed)
            models, infos = self._fit_members(self._new_members(), texts, yi, fit_idx, embeddings, targets,
                                              show_progress)
            blend_emb = None if embeddings is None else np.asarray(embeddings)[blend_idx]
            logp = self._member_log_proba([texts[i] for i in blend_idx], blend_emb, models)
            sets, n_train = [models], int(len(fit_idx))
        self._check_blend_inputs(logp, blend_idx, specs)
        present = np.unique(yi)
        self.weights, self.bias = fit_blend(logp[:, :, present], yi[blend_idx], present, len(self.labels),
                                            per_label=self.blend_weights == "per_label")
        self.present = present
        self.blend_log_proba_, self.blend_y_ = logp, yi[blend_idx]
        proba = self.blend(logp)
        if self.decision_objective == "macro_f1":
            self.decision_weights = tune_decision_weights(proba, yi[blend_idx], present,
                                                          bootstrap=self.decision_bootstrap, seed=self.seed)
        else:
            self.decision_weights = np.ones(len(self.labels))
        self.fit_info = {"n_train": n_train, "n_blend": int(len(blend_idx)), "blend_folds": self.blend_folds,
                         "weights": {f"{i}:{s['kind']}": w.tolist() if np.ndim(w) else float(w)
                                     for i, (s, w) in enumerate(zip(specs, self.weights))},
                         "bias": self.bias.tolist(), "members": infos, "refit": self.refit}
        if self.refit:
            self.fit_info["blend_members"] = infos
            models, self.fit_info["members"] = self._fit_members(self._new_members("-refit"), texts, yi,
                                                                 np.arange(len(yi)), embeddings, targets, show_progress)
            self.fit_info["n_refit"] = int(len(yi))
            sets = [models]
        self._sets = sets
        self.is_fitted = True
        return self

    def _check_blend_inputs(self, logp: np.ndarray, blend_idx: np.ndarray, specs: list[dict[str, Any]]) -> None:
        """ModelError naming the member and the training row whose held-out score is NaN: the optimiser
        then stops at its start, and the ensemble is fitted with weights learned from nothing."""
        for j, spec in enumerate(specs):
            bad = np.flatnonzero(~np.isfinite(logp[j]).all(axis=1))
            if len(bad):
                raise ModelError(f"{self.kind} member {j} ({spec['kind']}) gave no probabilities for training text "
                                 f"{int(blend_idx[bad[0]])} ({len(bad)} text(s) in all): the blend cannot be fitted")

    def _cross_fit(self, texts: list[str], yi: np.ndarray, embeddings: np.ndarray | None,
                   targets: np.ndarray | None, show_progress: bool
                   ) -> tuple[list[list[PolicyClassifier]], list[dict[str, Any]], np.ndarray]:
        """Members fitted once per stratified fold (every copy of a text in one, `grouped_folds`);
        returns the member sets, each member's fit report (the first fold's, with every fold's
        under `folds`) and the (m, n, k) out-of-fold log-probabilities of every item."""
        logp = np.zeros((len(self.members), len(yi), len(self.labels)))
        sets, infos = [], []
        for f, (fit_idx, held_idx) in enumerate(self._blend_fold_pairs(texts, yi)):
            models, fold_infos = self._fit_members(self._new_members(f"-fold{f}"), texts, yi, fit_idx, embeddings,
                                                   targets, show_progress)
            held_emb = None if embeddings is None else np.asarray(embeddings)[held_idx]
            logp[:, held_idx] = self._member_log_proba([texts[i] for i in held_idx], held_emb, models)
            sets.append(models)
            infos.append(fold_infos)
        return sets, [{**info, "folds": [fi[j] for fi in infos]} for j, info in enumerate(infos[0])], logp

    def _blend_fold_pairs(self, texts: list[str], yi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """`grouped_folds` for the cross-fit, or one ModelError line naming `blend_folds` when the
        data cannot give that many folds (fewer distinct texts) or a fold would train the members
        on one label (scikit-learn's bare ValueError, or a member's "needs two labels", otherwise)."""
        try:
            pairs = grouped_folds(texts, yi, self.blend_folds, self.seed)
        except ValueError as exc:
            raise ModelError(f"{self.kind}: blend_folds={self.blend_folds} cannot split {len(yi)} training texts "
                             f"({exc}); lower blend_folds or set it to 0") from None
        for f, (fit_idx, _) in enumerate(pairs):
            if len(np.unique(yi[fit_idx])) < 2:
                raise ModelError(f"{self.kind}: blend_folds={self.blend_folds}: fold {f} leaves the members one label "
                                 f"to train on ({self.labels[int(yi[fit_idx][0])] if len(fit_idx) else 'none'}); "
                                 "lower blend_folds or set it to 0")
        return pairs

    def _fit_members(self, models: list[PolicyClassifier], texts: list[str], yi: np.ndarray, idx: np.ndarray,
                     embeddings: np.ndarray | None, targets: np.ndarray | None,
                     show_progress: bool) -> tuple[list[PolicyClassifier], list[dict[str, Any]]]:
        """`models` fitted on the rows `idx`, and what each one's fit reported."""
        sub_texts, sub_y = [texts[i] for i in idx], [self.labels[v] for v in yi[idx]]
        sub_emb = None if embeddings is None else np.asarray(embeddings)[idx]
        sub_targets = None if targets is None else np.asarray(targets)[idx]
        infos = []
        for i, m in enumerate(models):
            emb = sub_emb if getattr(m, "needs_embeddings", m.uses_embeddings) else None
            try:
                m.fit(sub_texts, sub_y, embeddings=emb, show_progress=show_progress, targets=sub_targets)
            except Exception as exc:  # noqa: BLE001 - say which member failed; the cause stays chained
                raise ModelError(f"{self.kind} member {i} ({m.kind}) failed to fit: "
                                 f"{exc if isinstance(exc, ModelError) else f'{type(exc).__name__}: {exc}'}"
                                 .splitlines()[0][:400]) from exc
            infos.append({"kind": m.kind, **{k: v for k, v in m.fit_info.items() if k != "loss_curve"}})
        return models, infos

    def blend(self, member_logp: np.ndarray) -> np.ndarray:
        """(n, k) probabilities from the (m, n, k) `member_log_proba`: `predict_proba` without
        running the members again when their scores are already at hand."""
        z = np.full(member_logp.shape[1:], -np.inf)
        w = self.weights[:, self.present] if self.weights.ndim == 2 else self.weights[:, None]
        z[:, self.present] = (w[:, None, :] * member_logp[:, :, self.present]).sum(axis=0) + self.bias[self.present]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        texts = checked_texts(texts, self.kind)
        if not texts:
            return np.zeros((0, len(self.labels)))
        return self._checked_proba(self.blend(self.member_log_proba(texts, embeddings)), len(texts))

    # -- persistence ---------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        for f, models in enumerate(self._sets):
            for i, m in enumerate(models):
                m.save(_member_dir(folder, f, len(self._sets), i))
        (folder / BLEND_FILE).write_text(json.dumps({"weights": self.weights.tolist(), "bias": self.bias.tolist(),
                                                     "present": self.present.tolist(),
                                                     "member_sets": len(self._sets)}))

    def _load_state(self, folder: Path, meta: dict[str, Any]) -> None:
        super()._load_state(folder, meta)
        if not (folder / BLEND_FILE).is_file():
            raise ModelError(f"{folder}: ensemble blend {BLEND_FILE} is missing")
        try:
            blend = json.loads((folder / BLEND_FILE).read_text())
            weights, bias, present = blend["weights"], blend["bias"], blend["present"]
            k = blend.get("member_sets", 1)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise ModelError(f"{folder}: unreadable {BLEND_FILE} ({str(exc).splitlines()[0][:200] if str(exc) else exc!r})") from None
        self._check_blend(folder, weights, bias, present, k)
        self._sets = [[load_registered(_member_dir(folder, f, k, i)) for i in range(len(self.members))]
                      for f in range(k)]
        specs = self.member_specs()
        for models in self._sets:
            for spec, m in zip(specs, models):
                if m.kind != spec["kind"] or m.labels != self.labels:
                    raise ModelError(f"{folder}: saved member {m.kind} does not match the ensemble's {spec['kind']}")


    def _check_blend(self, folder: Path, weights: Any, bias: Any, present: Any, sets: Any) -> None:
        """Set the saved blend once its shapes fit the members and labels and its numbers are finite:
        a NaN weight makes every score NaN, a short weight list or a repeated label silently blends
        the wrong members or puts one label's score on two."""
        m, k, what = len(self.members), len(self.labels), f"{folder}: {BLEND_FILE}"
        if isinstance(sets, bool) or not isinstance(sets, int) or not 1 <= sets <= MAX_MEMBER_SETS:
            raise ModelError(f"{what} member_sets must be an int in [1, {MAX_MEMBER_SETS}], got {sets!r}")
        idx = real_array(present, f"{what} present")
        if (idx.ndim != 1 or len(idx) < 2 or (idx != np.round(idx)).any() or (idx < 0).any() or (idx >= k).any()
                or len(np.unique(idx)) != len(idx)):
            raise ModelError(f"{what} present must list distinct label indices in [0, {k}), got {present!r}")
        w = real_array(weights, f"{what} weights")
        if w.shape not in ((m,), (m, k)):
            raise ModelError(f"{what} weights have shape {w.shape}, not ({m},) or ({m}, {k}) for {m} members")
        if (w < 0).any():  # fitted with a bound at 0: a negative weight trusts a member upside down
            raise ModelError(f"{what} weights must be >= 0, got {w.tolist()}")
        self.weights, self.bias, self.present = w, real_array(bias, f"{what} bias", (k,)), idx.astype(int)


MAX_MEMBER_SETS = 100  # cross-fit folds kept; far more than anyone fits


def _member_dir(folder: Path, set_index: int, n_sets: int, i: int) -> Path:
    """members/<i> for a single member set (as before cross-fitting), members/fold-<f>/<i> for several."""
    base = folder / MEMBERS_DIR
    return base / str(i) if n_sets == 1 else base / f"fold-{set_index}" / str(i)


def member_spec(spec: Any, i: int) -> dict[str, Any]:
    """`{kind, params}` of member `i` (a kind name is accepted too); ModelError says what is wrong."""
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ModelError(f"ensemble member {i} must be a kind name or {{kind: ..., params: {{...}}}}, not {spec!r}")
    unknown = set(spec) - {"kind", "params"}
    if unknown:
        raise ModelError(f"ensemble member {i} has unknown key(s) {sorted(unknown)} (known: kind, params)")
    if spec["kind"] == EnsembleClassifier.kind:
        raise ModelError("an ensemble cannot contain an ensemble")
    params = spec.get("params")
    if params is not None and not isinstance(params, dict):
        raise ModelError(f"ensemble member {i} ({spec['kind']}): params must be a mapping of parameter: value "
                         f"(or left out), not {params!r}")
    params = dict(params or {})
    unknown = sorted(set(params) - set(registered_class(spec["kind"]).param_names()) | ({"labels"} & set(params)))
    if unknown:
        raise ModelError(f"ensemble member {i} ({spec['kind']}) has no parameter(s) {', '.join(unknown)}")
    return {"kind": spec["kind"], "params": params}


def fit_blend(logp: np.ndarray, y: np.ndarray, present: np.ndarray, k: int,
              per_label: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Member weights and a per-label bias b (length k, zero for absent labels) minimising the log
    loss of softmax(sum_j a_j * logp[j] + b) on held-out data, against Platt's smoothed targets
    (`calibration.platt_targets`); `logp` is (m, n, len(present)) with
    the `present` columns, `y` holds label indices among `present`'s values. The weights are a (m,),
    or with `per_label` a (m, k), one weight per member and label (zero for absent labels): a member
    may be trusted more on one policy than on another, at m * k parameters instead of m."""
    from scipy.optimize import minimize

    col = {c: j for j, c in enumerate(present)}
    yy = np.array([col[v] for v in y])
    m, n, c = logp.shape
    na = m * c if per_label else m
    target = platt_targets(yy, c)  # a finite optimum where the held-out slice is separable

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = theta[:na], theta[na:]
        z = (np.einsum("jc,jnc->nc", a.reshape(m, c), logp) if per_label else np.tensordot(a, logp, axes=1)) + b
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        p = np.exp(z - lse[:, None])
        g = (p - target) / n
        value = float((lse - (target * z).sum(axis=1)).mean())
        grad_a = np.einsum("jnc,nc->jc", logp, g).ravel() if per_label else np.einsum("jnc,nc->j", logp, g)
        return value, np.concatenate([grad_a, g.sum(axis=0)])

    theta0 = np.concatenate([np.full(na, 1.0 / m), np.zeros(c)])
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * na + [(None, None)] * c)
    bias = np.zeros(k)
    bias[present] = res.x[na:] - res.x[na:].mean()
    if not per_label:
        return res.x[:m], bias
    weights = np.zeros((m, k))
    weights[:, present] = res.x[:na].reshape(m, c)
    return weights, bias
