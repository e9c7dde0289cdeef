"""Who may read which analyst made a decision: the one rule for every place that shows a reviewer.

An analyst's name next to a ban is sensitive: an enforcement platform that forwards its data to
users, or a leaked API token, would tell a banned user which analyst banned them (analyst
safety), and a peer who sees who decided what anchors on the colleague rather than the policy.

The rule (`reviewer_namer`): a viewer holding `analyst_quality` (leads and admins: the
permission to see per-analyst figures, which is what a name beside each decision amounts to),
the workbench's own system principals and trusted in-process callers (a plain string actor: the
role policy abstains on both) read names; so does anyone reading their own decisions, and the
workbench's reserved job names (`sweeper`, `demo`, ...) are no person's and stay as they are.
Everyone else (an analyst, a viewer, the platform's token) reads a pseudonym: an HMAC of the
name keyed with the store's secret (the audit key, under a label of its own, as
`packets._author_ref`), stable across requests, processes and restarts so decisions still group
by reviewer, and not reversible by hashing candidate account names as a bare hash would be. A
pseudonym holds `#`, which no account name may (`core.principals.NAME_RE`), so it never reads as
someone's name. Why `analyst_quality` and not `qa_review`: `qa_review` is the right to decide a
re-review, which is itself blind to the earlier decision; `analyst_quality` is the right to know
how each named analyst decides, and already decides who sees blind history and peers'
calibration answers (`packets.sees_blind_history`, the API's decision feed).
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any, Callable, Iterable, Optional

from core.permissions import refusal
from core.principals import RESERVED_NAMES, Actor, Principal, actor_name

LEAD_PERMISSION = "analyst_quality"
_LABEL = b"workbench reviewer pseudonym\x00"  # this key's use, apart from the audit chain's and others'
PREFIX = "reviewer#"

Namer = Callable[[Optional[str]], Optional[str]]


def sees_reviewer_names(viewer: Optional[Actor]) -> bool:
    """Whether `viewer` reads every reviewer's name (see the module notes); nobody named does not."""
    return viewer is not None and refusal(viewer, LEAD_PERMISSION) is None


def reviewer_pseudonym(key: bytes, name: str) -> str:
    """A stable stand-in for `name` that only the holder of `key` (the store's secret) can link to it."""
    digest = hmac.new(key, _LABEL + name.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return PREFIX + digest[:16]


def reviewer_namer(viewer: Optional[Actor], key: bytes) -> Namer:
    """The function that turns a stored reviewer name into what `viewer` may read (the rule is
    asked once, not per row): the name itself, or its pseudonym under `key`."""
    if sees_reviewer_names(viewer):
        return lambda name: name
    own = actor_name(viewer) if isinstance(viewer, (Principal, str)) else None
    seen: dict[str, str] = {}  # a page of 1000 decisions holds a few reviewers

    def shown(name: Optional[str]) -> Optional[str]:
        if name is None or name == own or str(name).lower() in RESERVED_NAMES:
            return name
        if name not in seen:
            seen[name] = reviewer_pseudonym(key, str(name))
        return seen[name]

    return shown


def name_reviewers(rows: Iterable[dict[str, Any]], namer: Namer, field: str = "reviewer") -> list[dict[str, Any]]:
    """`rows` (dicts) with `field` as `namer` shows it; rows without the field are kept as they are."""
    return [{**r, field: namer(r[field])} if field in r else dict(r) for r in rows]


def store_namer(store: Any, conn: Any, viewer: Optional[Actor]) -> Namer:
    """`reviewer_namer` keyed with `store`'s secret; `conn` is the caller's connection, so no new key
    file is ever made beside an audit chain signed with another (`core.audit.AuditKey.get`)."""
    if sees_reviewer_names(viewer):
        return lambda name: name
    return reviewer_namer(viewer, store.audit_key.get(conn))
