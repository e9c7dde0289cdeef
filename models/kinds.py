"""The model kinds by name: every kind module imported (which registers its kinds) and the
lookups the rest of the project uses.

    from models.kinds import kind_names, kind_class, make_classifier, load_classifier

`base` defines the interface and the registry dict and knows no kind; the kind modules import
`base` (and the shared helpers: `calibration`, `preprocessing`, `weights`, `params`), never this
module, so nothing imports back into it. Importing it stays light: the kind modules load
scikit-learn, torch and transformers only when a model is fitted or loaded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from . import ensemble, linear, nblr, transformer  # noqa: F401 - registers the kinds
from .base import KINDS, PolicyClassifier, load_registered, new_registered, registered_class


def kind_names() -> list[str]:
    """Every registered kind, sorted."""
    return sorted(KINDS)


def kind_class(kind: str) -> type[PolicyClassifier]:
    """The class of `kind`; ModelError lists the known kinds for an unknown one."""
    return registered_class(kind)


def make_classifier(kind: str, labels: Sequence[str], **params: Any) -> PolicyClassifier:
    """A fresh, unfitted classifier of `kind`, its parameters validated: an unknown parameter or a
    bad value raises ModelError naming the kind, the parameter and the value."""
    return new_registered(kind, labels, **params)


def load_classifier(path: str | Path) -> PolicyClassifier:
    """Load a classifier saved by `PolicyClassifier.save`, whatever its kind."""
    return load_registered(path)
