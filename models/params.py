"""A small vocabulary of parameter constraints, in the manner of scikit-learn's.

Each kind declares `_parameter_constraints = {name: [constraint, ...]}`; a value is valid when
it satisfies any one constraint of its list. A constraint is one of:

- `None`: the value may be None (null in models.yaml);
- a type (`bool`, `str`, `dict`, `numbers.Integral`, ...) or a tuple of types: `isinstance`,
  except that a bool is never taken for a number;
- `Interval(type, left, right, closed=...)`: a number of that type within bounds;
- `Options(values)`: one of a few allowed values (strings, usually);
- `Check(predicate, description)`: anything `predicate(value)` accepts.

`unmet(value, constraints)` returns None when the value is valid, else a phrase such as
"must be a float > 0, got 'abc'" that `PolicyClassifier._validate_params` turns into a ModelError
naming the kind and the parameter. Nothing here coerces: parameters are checked as given.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


class Interval:
    """A number of `type` (numbers.Integral or numbers.Real) in [left, right], the ends open or
    closed as `closed` says ("left", "right", "both", "neither"); None leaves a side unbounded."""

    def __init__(self, type: type, left: Optional[float], right: Optional[float], *, closed: str = "left") -> None:
        if type not in (numbers.Integral, numbers.Real):
            raise TypeError(f"Interval type must be numbers.Integral or numbers.Real, not {type!r}")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"closed must be left, right, both or neither, not {closed!r}")
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if _is_bool(value) or not isinstance(value, self.type):
            return False
        if isinstance(value, numbers.Real) and not np.isfinite(float(value)):
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed not in ("left", "both")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed not in ("right", "both")):
                return False
        return True

    def __str__(self) -> str:
        noun = "an int" if self.type is numbers.Integral else "a float"
        lo_closed, hi_closed = self.closed in ("left", "both"), self.closed in ("right", "both")
        lo, hi = _bound(self.left), _bound(self.right)
        if self.left is not None and self.right is not None:
            return f"{noun} in {'[' if lo_closed else '('}{lo}, {hi}{']' if hi_closed else ')'}"
        if self.left is not None:
            return f"{noun} {'>=' if lo_closed else '>'} {lo}"
        if self.right is not None:
            return f"{noun} {'<=' if hi_closed else '<'} {hi}"
        return noun


def _bound(value: Optional[float]) -> str:
    """An int bound in full (2**32 - 1 reads 4294967295, not 4.29497e+09), a float as %g."""
    if value is None or isinstance(value, numbers.Integral):
        return str(value)
    return f"{value:g}"


class Options:
    """One of a fixed set of values (compared with ==, never matching a bool to a number)."""

    def __init__(self, values: Iterable[Any]) -> None:
        self.values = tuple(values)

    def is_satisfied_by(self, value: Any) -> bool:
        return any(isinstance(value, type(v)) and _is_bool(value) == _is_bool(v) and value == v for v in self.values)

    def __str__(self) -> str:
        if len(self.values) == 1:
            return repr(self.values[0])
        return "one of " + ", ".join(repr(v) for v in self.values)


class Check:
    """Whatever `predicate` accepts; `description` says what that is ("a pair of ints [lo, hi]")."""

    def __init__(self, predicate: Callable[[Any], bool], description: str) -> None:
        self.predicate, self.description = predicate, description

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return bool(self.predicate(value))
        except Exception:  # noqa: BLE001 - a predicate that trips on the value rejects it
            return False

    def __str__(self) -> str:
        return self.description


_TYPE_NAMES = {bool: "a bool", str: "a string", dict: "a mapping", list: "a list", tuple: "a tuple",
               numbers.Integral: "an int", numbers.Real: "a float"}


def _satisfies(value: Any, constraint: Any) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, (Interval, Options, Check)):
        return constraint.is_satisfied_by(value)
    if isinstance(constraint, type) or (isinstance(constraint, tuple) and all(isinstance(t, type) for t in constraint)):
        types = constraint if isinstance(constraint, tuple) else (constraint,)
        if _is_bool(value):
            return bool in types
        if bool in types and isinstance(value, np.bool_):
            return True
        return isinstance(value, types)
    raise TypeError(f"not a parameter constraint: {constraint!r}")


def describe(constraint: Any) -> str:
    if constraint is None:
        return "null"
    if isinstance(constraint, (Interval, Options, Check)):
        return str(constraint)
    types = constraint if isinstance(constraint, tuple) else (constraint,)
    return " or ".join(_TYPE_NAMES.get(t, f"a {t.__name__}") for t in types)


def unmet(value: Any, constraints: Sequence[Any]) -> Optional[str]:
    """None when `value` satisfies one of `constraints`, else "must be X or Y, got <value>"."""
    if any(_satisfies(value, c) for c in constraints):
        return None
    wanted = [describe(c) for c in constraints]
    # "null" reads best last: "must be a float > 0 or null"
    wanted = [w for w in wanted if w != "null"] + [w for w in wanted if w == "null"]
    return f"must be {' or '.join(wanted)}, got {shown(value)}"


_SHOWN_CHARS = 120


def shown(value: Any) -> str:
    """`repr(value)`, cut to `_SHOWN_CHARS` characters: a value pasted by mistake (a whole file as
    a string, a list of a million numbers) came back whole in the one-line error that names it."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({len(text)} characters)"


# -- shared constraints -------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not _is_bool(v)


# hi is bounded: a text of L characters has about L * hi n-grams of up to hi characters each, so an
# unbounded hi ([1, 100000]) makes every long text O(L^3) bytes of n-grams (4 texts of 1,500
# characters exhaust 3 GB); the useful ranges end near 5 (words 1-2, characters 1-5 here)
MAX_NGRAM = 20
NGRAM_RANGE = Check(lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v)
                    and 1 <= v[0] <= v[1] <= MAX_NGRAM, f"a pair of ints [lo, hi] with 1 <= lo <= hi <= {MAX_NGRAM}")
# scikit-learn and numpy take a random_state in [0, 2**32 - 1] only
SEED = Interval(numbers.Integral, 0, 2**32 - 1, closed="both")
PATH = Check(lambda v: isinstance(v, str) or hasattr(v, "__fspath__"), "a folder path")
