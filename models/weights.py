"""Class weights shared by the kinds (sklearn's 'balanced' rule over counts or vote mass)."""
from __future__ import annotations

import numpy as np


def balanced_weights(mass: np.ndarray) -> np.ndarray:
    """Per-label weights n / (labels seen * mass), sklearn's 'balanced' rule over a count or vote
    mass per label; 0 for labels with no mass."""
    mass = np.asarray(mass, dtype=float)
    seen = mass > 0
    return np.where(seen, mass.sum() / max(int(seen.sum()), 1) / np.where(seen, mass, 1.0), 0.0)
