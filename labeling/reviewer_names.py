"""Who may read which analyst made a decision: the one rule for every place that shows a reviewer.

The rule and the pseudonym live in `core.reviewer_pseudonym` (the outbox, on the core floor,
applies them to every webhook); this module re-exports them and adds what needs a store or a
case view (`store_namer`, `name_case_view`).

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

from typing import Any, Mapping, Optional

from core.principals import Actor
from core.reviewer_pseudonym import (LEAD_PERMISSION, PREFIX, Namer, connection_namer, name_reviewers,
                                     reviewer_namer, reviewer_pseudonym, sees_reviewer_names)

__all__ = ["LEAD_PERMISSION", "PREFIX", "Namer", "connection_namer", "name_case_view", "name_reviewers",
           "namer_for", "reviewer_namer", "reviewer_pseudonym", "sees_reviewer_names", "store_namer"]


def store_namer(store: Any, conn: Any, viewer: Optional[Actor]) -> Namer:
    """`reviewer_namer` keyed with `store`'s secret; `conn` is the caller's connection, so no new key
    file is ever made beside an audit chain signed with another (`core.audit.AuditKey.get`)."""
    if sees_reviewer_names(viewer):
        return lambda name: name
    return reviewer_namer(viewer, store.audit_key.get(conn))


def namer_for(store: Any, viewer: Optional[Actor]) -> Namer:
    """`store_namer` in its own read transaction, for a caller holding no connection (the command
    line's listings); a lead's namer opens none."""
    if sees_reviewer_names(viewer):
        return lambda name: name
    with store.read() as conn:
        return store_namer(store, conn, viewer)


def _named(entry: Any, namer: Namer, *fields: str) -> Any:
    """`entry` (a dict) with each of `fields` it holds as `namer` shows it; anything else as it is."""
    if not isinstance(entry, Mapping):
        return entry
    return {**entry, **{f: namer(entry[f]) for f in fields if f in entry and isinstance(entry[f], (str, type(None)))}}


def name_case_view(view: Mapping[str, Any], namer: Namer) -> dict[str, Any]:
    """A case view (`labeling.cases.case_view`, `packets.show_case`, a `list_cases` row, a review
    packet's `case`) with every analyst's name in it as `namer` shows it: who holds or decided it
    (`claimed_by`: a decided case keeps its decider there, which would tie a pseudonym to its name
    through the case id), each decision's reviewer, who escalated it, who filed and resolved an
    appeal and whose decision it contests, and whose decision a label review is about."""
    out = _named(dict(view), namer, "claimed_by")
    if isinstance(out.get("escalations"), list):  # a review packet's case: `escalation_history`
        out["escalations"] = [_named(e, namer, "by") for e in out["escalations"]]
    if isinstance(out.get("decisions"), list):
        out["decisions"] = [_named(d, namer, "reviewer") for d in out["decisions"]]
    meta = out.get("meta")
    if isinstance(meta, Mapping):
        meta = _named(dict(meta), namer, "escalated_by")
        for key in ("escalations", "item_escalations"):
            if isinstance(meta.get(key), list):
                meta[key] = [_named(e, namer, "by") for e in meta[key]]
        appeal = meta.get("appeal")
        if isinstance(appeal, Mapping):
            appeal = _named(appeal, namer, "appellant", "resolved_by")
            if "decision" in appeal:
                appeal["decision"] = _named(appeal["decision"], namer, "reviewer")
            meta["appeal"] = appeal
        for key in ("label_error", "label_review"):
            if isinstance(meta.get(key), Mapping):
                meta[key] = _named(meta[key], namer, "reviewer", "resolved_by")
        out["meta"] = meta
    return out
