"""Who may read which analyst made a decision: the one rule for every place that shows a reviewer,
on the core floor so the outbox (webhooks) applies it too; `labeling.reviewer_names` re-exports it.

An analyst's name next to a ban is sensitive: an enforcement platform that forwards its data to
users, or a leaked API token or webhook secret, would tell a banned user which analyst banned
them (analyst safety), and a peer who sees who decided what anchors on the colleague rather than
the policy.

The rule (`reviewer_namer`): a viewer holding `analyst_quality` (leads and admins: the
permission to see per-analyst figures, which is what a name beside each decision amounts to),
the workbench's own system principals and trusted in-process callers (a plain string actor: the
role policy abstains on both) read names; so does anyone reading their own decisions, and the
workbench's reserved job names (`sweeper`, `demo`, ...) are no person's and stay as they are.
Everyone else (an analyst, a viewer, the platform's token, a webhook receiver: `viewer=None`)
reads a pseudonym: an HMAC of the name keyed with the store's secret (the audit key, under a
label of its own), stable across requests, processes and restarts so decisions still group by
reviewer, and not reversible by hashing candidate account names as a bare hash would be. A
pseudonym holds `#`, which no account name may (`core.principals.NAME_RE`), so it never reads as
someone's name.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any, Callable, Iterable, Mapping, Optional

from .audit import connection_key
from .permissions import refusal
from .principals import RESERVED_NAMES, Actor, Principal, actor_name

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
        if name is None or name == own or str(name).lower() in RESERVED_NAMES or str(name).startswith(PREFIX):
            return name  # a pseudonym already (no account name holds '#'): named once, never twice
        if name not in seen:
            seen[name] = reviewer_pseudonym(key, str(name))
        return seen[name]

    return shown


def name_reviewers(rows: Iterable[dict[str, Any]], namer: Namer, field: str = "reviewer") -> list[dict[str, Any]]:
    """`rows` (dicts) with `field` as `namer` shows it; rows without the field are kept as they are."""
    return [{**r, field: namer(r[field])} if field in r else dict(r) for r in rows]


def connection_namer(conn: Any, viewer: Optional[Actor]) -> Namer:
    """`reviewer_namer` keyed with the secret `conn` carries (`core.audit.connection_key`: every
    connection of a `core.store.Store`), for code that has a connection and no store."""
    if sees_reviewer_names(viewer):
        return lambda name: name
    return reviewer_namer(viewer, connection_key(conn).get(conn))


def _names_reviewers(payload: Any) -> bool:
    rows = payload.get("decisions") if isinstance(payload, Mapping) else None
    return isinstance(rows, list) and any(isinstance(r, Mapping) and "reviewer" in r for r in rows)


def pseudonymous_payload(key: bytes, payload: Any) -> Any:
    """An outbox event's payload as a webhook receiver may read it: each decision's `reviewer` as
    its pseudonym under `key` (a receiver is the platform, never a lead: `viewer=None`). Idempotent
    (a pseudonym stays as it is), so the delivery worker may apply it again to an event stored
    before it was applied; anything else in the payload is left as it is."""
    if not _names_reviewers(payload):
        return payload
    namer = reviewer_namer(None, key)
    return {**payload, "decisions": [{**r, "reviewer": namer(r["reviewer"])} if isinstance(r, Mapping)
                                     and "reviewer" in r else r for r in payload["decisions"]]}


def platform_payload(conn: Any, payload: Any) -> Any:
    """`pseudonymous_payload` keyed with the secret `conn` carries (`core.outbox.enqueue`); only a
    payload listing a decision's reviewer needs the key, so no other event touches it."""
    return pseudonymous_payload(connection_key(conn).get(conn), payload) if _names_reviewers(payload) else payload
