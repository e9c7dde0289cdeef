"""What an integrity engineer reads before promoting: the registry beside the gate's verdicts.

The verdicts are read back from the audit log (`model.gate`, written by
`evaluation.promotion.compare_and_promote` for every retrain and gated promotion, and
`model.force_promote` for an override), so the Models tab, the CLI and an auditor see the same
history; nothing here writes. A comparison report is read only from inside the store's data
directory: the path comes from the database, and a row there must not make the server read an
arbitrary file.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from sqlalchemy import func, select

from core.hooks import check_permission
from core.principals import Actor
from core.schema import AuditEvent

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store

A = AuditEvent.__table__
GATE_ACTIONS = ("model.gate", "model.force_promote")
MAX_REPORT_BYTES = 1 << 20  # a comparison report is a few kB; anything larger is not ours


def gate_verdicts(store: "Store", actor: Actor, limit: int = 50,
                  challenger: Optional[str] = None) -> list[dict[str, Any]]:
    """The latest `limit` gate verdicts and forced promotions (of one `challenger` version when
    given), newest first: when, who, the challenger, the champion it was compared with, passed,
    the metric, per evaluation set the difference and its interval (`sets`), the gate's reason,
    its `warnings` (`evaluation.promotion.item_split_warning`), the report path, and for a forced
    promotion the engineer's reason. Needs `read`."""
    check_permission(actor, "read", "models")
    limit = max(1, min(int(limit), 1000))
    q = select(A.c.id, A.c.ts, A.c.actor, A.c.action, A.c.entity_id, A.c.payload).where(A.c.action.in_(GATE_ACTIONS))
    if challenger is not None:
        q = q.where(A.c.entity_type == "model_version", A.c.entity_id == challenger)
    with store.read() as conn:
        rows = conn.execute(q.order_by(A.c.id.desc()).limit(limit)).all()
        lost = _refusals(conn, rows)
    return _verdicts(rows, lost)


def _verdicts(rows: list[Any], lost: dict[int, str]) -> list[dict[str, Any]]:
    """The audit rows of gate events as `gate_verdicts` returns them."""
    out = []
    for r in rows:
        p = r.payload if isinstance(r.payload, dict) else {}
        gate = p.get("gate") if r.action == "model.force_promote" and isinstance(p.get("gate"), dict) else p
        out.append({"event": r.id, "at": r.ts.isoformat(timespec="seconds") if r.ts else None, "actor": r.actor,
                    "action": r.action, "challenger": r.entity_id, "champion": gate.get("champion"),
                    "passed": bool(gate.get("passed")), "metric": gate.get("metric"),
                    "min_lower_bound": gate.get("min_lower_bound"),
                    "sets": gate.get("sets") if isinstance(gate.get("sets"), dict) else {},
                    "reason": str(gate.get("reason") or ""), "report": gate.get("report"),
                    "warnings": [w for w in gate.get("warnings") or () if isinstance(w, str)],
                    "forced": r.action == "model.force_promote",
                    "force_reason": p.get("reason") if r.action == "model.force_promote" else None,
                    "promote_refused": lost.get(r.id)})
    return out


def _refusals(conn: Any, rows: list[Any]) -> dict[int, str]:
    """Verdict event id -> why its promotion was refused (`model.promote_refused`: the
    compare-and-swap lost to another promotion). A refusal belongs to the verdict it followed,
    the challenger's latest `model.gate` (and that gate's `model.force_promote`), never to an
    earlier or a later verdict of the same version."""
    if not rows:
        return {}
    events = conn.execute(select(A.c.id, A.c.action, A.c.entity_id, A.c.payload).where(
        A.c.action.in_(GATE_ACTIONS + ("model.promote_refused",)), A.c.entity_type == "model_version",
        A.c.entity_id.in_({r.entity_id for r in rows})).order_by(A.c.id)).all()
    open_: dict[str, list[int]] = {}  # version -> the events of its verdict awaiting an outcome
    out: dict[int, str] = {}
    for e in events:
        if e.action == "model.gate":
            open_[e.entity_id] = [e.id]
        elif e.action == "model.force_promote":
            open_.setdefault(e.entity_id, []).append(e.id)
        else:
            p = e.payload if isinstance(e.payload, dict) else {}
            for vid in open_.pop(e.entity_id, []):
                out[vid] = str(p.get("reason") or "promotion refused")
    return out


def verdict_word(v: Optional[dict[str, Any]]) -> str:
    """A verdict of `gate_verdicts` in words, the same in the Models tab and the CLI: forced over
    the gate, passed, either of them not promoted (another promotion landed first: the
    compare-and-swap of `models.registry.promote`), refused; `—` when never compared."""
    if not v:
        return "—"
    if v["forced"]:
        return "forced, not promoted: the champion changed meanwhile" if v.get("promote_refused") else \
            "forced over the gate"
    if v["passed"]:
        return "passed, not promoted: the champion changed meanwhile" if v.get("promote_refused") else "passed"
    return "refused"


def latest_verdict_text(v: Optional[dict[str, Any]], when: Callable[[str], str] = str) -> str:
    """A version's latest verdict in one cell (the Models tab's "latest gate verdict"): the words
    of `verdict_word` with the metric, and for a forced promotion who forced it, when, and why,
    since the gate row under it says only "refused". `when` formats the ISO time (the tab's local time)."""
    text = verdict_word(v) + (f" ({v['metric']})" if v and v.get("metric") else "")
    if v and v.get("forced"):
        text += f" by {v.get('actor') or '?'}" + (f" at {when(v['at'])}" if v.get("at") else "")
        text += f": {v['force_reason']}" if v.get("force_reason") else ""
    return text


def model_overview(store: "Store", actor: Actor, include_retired: bool = True) -> list[dict[str, Any]]:
    """The registry, newest first, each version with its latest gate verdict, a forced promotion
    included (`forced`, `actor`, `at`, `force_reason`; None when it never met the gate: a first
    champion, or a version trained and not yet compared). Needs `read`."""
    from models.registry import list_models

    check_permission(actor, "read", "models")
    models = list_models(store, include_retired=include_retired)
    # each version's latest `model.gate` or `model.force_promote`, asked per version: the newest
    # 1,000 gate events of any version (what this read before) lost an older champion's verdict once
    # 1,000 retrains were gated; and a champion forced over the gate read "refused" (its gate row)
    latest_ids = select(func.max(A.c.id)).where(A.c.action.in_(GATE_ACTIONS), A.c.entity_type == "model_version",
                                                A.c.entity_id.is_not(None)).group_by(A.c.entity_id)
    with store.read() as conn:
        rows = conn.execute(select(A.c.id, A.c.ts, A.c.actor, A.c.action, A.c.entity_id, A.c.payload)
                            .where(A.c.id.in_(latest_ids)).order_by(A.c.id.desc())).all()
        lost = _refusals(conn, rows)
    latest = {v["challenger"]: v for v in _verdicts(rows, lost)}
    return [{**m, "verdict": latest.get(m["id"])} for m in models]


def comparison_report(store: "Store", actor: Actor, version: str) -> dict[str, Any]:
    """The latest comparison report of `version` as a challenger: {verdict, markdown, png, note}.
    `markdown` / `png` are None when there is none, or when it lies outside the store's data
    directory or is not a report (`note` says which). Needs `read`."""
    verdict = next((v for v in gate_verdicts(store, actor, limit=10, challenger=version)
                    if v["action"] == "model.gate"), None)
    out: dict[str, Any] = {"verdict": verdict, "markdown": None, "png": None, "note": None}
    if verdict is None:
        out["note"] = f"{version} has not been through the gate (no comparison report)"
        return out
    md = _inside(store, verdict.get("report"))
    if md is None:
        out["note"] = f"the report of {version} is not inside the store's data directory: {verdict.get('report')}"
        return out
    if not md.is_file() or md.suffix != ".md" or md.stat().st_size > MAX_REPORT_BYTES:
        out["note"] = f"the report of {version} is missing or not a report: {md}"
        return out
    out["markdown"] = md.read_text(encoding="utf-8", errors="replace")
    png = md.with_name("comparison.png")
    out["png"] = str(png) if png.is_file() else None
    return out


def _inside(store: "Store", path: Optional[str]) -> Optional[Path]:
    """`path` resolved, when it lies inside the store's data directory; else, when it lay under a
    `reports/` folder of a former data directory (the audit log keeps absolute paths: a data
    folder moved or restored from a backup), the same file under this data directory's
    `reports/` where it is there; else None. Never a file outside the data directory."""
    if not path or not isinstance(path, str):
        return None
    root = Path(store.data_dir).resolve()
    try:
        p = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if p.is_relative_to(root):
        return p
    parts = Path(path).parts
    for i in reversed([k for k, part in enumerate(parts) if part == "reports"]):
        try:
            moved = root.joinpath(*parts[i:]).resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if moved.is_relative_to(root / "reports") and moved.is_file():  # `..` or a link out: not followed
            return moved
    return None
