"""One-vs-rest logistic regression: one binary head per policy, for the `hybrid` kind's `head: ovr`.

Why a head per policy: in one multinomial softmax a policy's probability is its evidence against
every other label's. A policy that arrives with a few hundred decisions (a new policy on a known
surface, say hate among tweets the champion knows as harassment) is then drowned by the
neighbouring label that tens of thousands of source labels taught: its tweets share the slurs, so
p(hate) stays low exactly where hate is. A binary head asks only "is this hate?" and ranks every
item by its own evidence (benchmarks/new_surface.py `--variant new_policy` chooses between the two
heads by leave-one-policy-out cross-validation on the champion's training data).

`decision_function` returns log sigmoid of each head's score, so that the softmax the hybrid's
calibration applies gives the sigmoids normalised to sum to one (scikit-learn's one-vs-rest
`predict_proba`), and the temperature / bias calibration then works unchanged.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .base import ModelError
from .weights import balanced_weights


class OneVsRestLogistic:
    """scikit-learn-style head: a binary logistic regression per class in `classes_`, each with
    the class against the rest; `class_weight='balanced'` balances each binary problem on the
    (sample-weighted) mass of its two sides."""

    def __init__(self, C: float = 1.0, class_weight: Optional[str] = "balanced", max_iter: int = 2000,
                 random_state: int = 0) -> None:
        self.C, self.class_weight, self.max_iter, self.random_state = C, class_weight, max_iter, random_state

    def _binary(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)

    def fit(self, X: Any, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "OneVsRestLogistic":
        y = np.asarray(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ModelError(f"one-vs-rest needs at least two labels, got {self.classes_.tolist()}")
        coef, icpt = [], []
        for c in self.classes_:
            pos = (y == c).astype(int)
            sw = w * balanced_weights(np.bincount(pos, weights=w, minlength=2))[pos] if self.class_weight else w
            head = self._binary().fit(X, pos, sample_weight=sw)
            coef.append(head.coef_[0])
            icpt.append(head.intercept_[0])
        self.coef_, self.intercept_ = np.stack(coef), np.asarray(icpt)
        return self

    def scores(self, X: Any) -> np.ndarray:
        """(n, classes) each binary head's logit."""
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def decision_function(self, X: Any) -> np.ndarray:
        """(n, classes) log sigmoid of each head's logit: a softmax over them gives the sigmoids
        normalised to sum to one."""
        return -np.logaddexp(0.0, -self.scores(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, classes) the heads' sigmoids normalised to sum to one (scikit-learn's one-vs-rest)."""
        z = self.decision_function(X)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"head_classes": np.asarray(self.classes_, dtype=np.int64), "head_coef": self.coef_,
                "head_intercept": self.intercept_}

    def from_arrays(self, classes: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> "OneVsRestLogistic":
        """This head as fitted, from `to_arrays`' arrays (shapes checked)."""
        coef, intercept = np.asarray(coef, dtype=float), np.asarray(intercept, dtype=float)
        c = len(classes)
        if c < 2 or coef.ndim != 2 or coef.shape[0] != c or intercept.shape != (c,):
            raise ModelError(f"saved one-vs-rest head has inconsistent shapes: classes {np.shape(classes)}, "
                             f"coef {coef.shape}, intercept {intercept.shape}")
        self.classes_, self.coef_, self.intercept_ = np.asarray(classes), coef, intercept
        return self
