"""Pure rendering helpers: service results (review packets, campaigns) as Markdown, HTML and table rows.

No Gradio and no store here: each function takes plain dicts and returns text or rows, so it is
tested without a browser.
"""
from __future__ import annotations

import html
from typing import Any

EMPTY_HEADER = "No case claimed. Pick a queue and press **Next** (n)."


def _esc(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def header_md(p: dict[str, Any]) -> str:
    c = p["case"]
    left = p.get("minutes_left")
    due = "no SLA" if left is None else (f"**overdue by {-left:.0f} min**" if left < 0 else f"due in {left:.0f} min")
    tags = []
    if c.get("is_audit"):
        tags.append("QA audit")
    if c.get("calibration_set"):
        tags.append(f"calibration: {c['calibration_set']}")
    if c.get("escalation_reason"):
        tags.append(f"escalated: {c['escalation_reason']}")
    if c.get("campaign_id") is not None and not c.get("item_id"):
        tags.append(f"campaign case ({(p.get('campaign') or {}).get('members', '?')} items, decided in bulk)")
    return (f"### Case {c['id']} · {c['queue']} · {c.get('severity') or 'no tier'} · {due}\n"
            f"{' · '.join(tags)}\n\n**Why first:** {c.get('priority_reason') or '—'}")


def text_html(p: dict[str, Any]) -> str:
    item = p.get("item")
    if item is None:
        camp = p.get("campaign") or {}
        return f"<div>Campaign {camp.get('id')}: {camp.get('members', '?')} members — see the Campaigns tab.</div>"
    note = ("<div class='wb-masked'><small>Masked: possibly offensive. Press <b>r</b> or Reveal to show "
            "(audited).</small></div>") if p.get("masked") else ""
    meta = f"<small>{_esc(item['id'])} · {item['source']} · {item['surface']} · {item.get('created_at') or ''}</small>"
    cls = "wb-masked" if p.get("masked") else ""
    return f"{meta}<div class='{cls}'>{_esc(item['text'])}</div>{note}"


def model_md(p: dict[str, Any]) -> str:
    pred = p.get("prediction")
    if not pred:
        return "No model prediction for this case."
    flags = ", ".join(k for k, v in (pred.get("flags") or {}).items() if v)
    return (f"Model **{pred['label']}** at {pred['score']:.2f} (uncertainty {pred['uncertainty']:.2f}) · "
            f"`{pred['model_version']}`" + (f" · input flags: {flags}" if flags else ""))


def terms_text(top_terms: Any, n: int = 8) -> str:
    """Top terms stored as [term, weight] pairs (or plain terms), as a comma list."""
    out = [t[0] if isinstance(t, (list, tuple)) else str(t) for t in (top_terms or [])[:n]]
    return ", ".join(out) or "—"


def entities_text(entities: Any, n: int = 4) -> str:
    """Shared entities per kind, most widespread first: `phone 0871… (7 items)`."""
    parts = []
    for kind, values in (entities or {}).items():
        shown = []
        for v in list(values or [])[:n]:
            if isinstance(v, dict):
                shown.append(f"{v.get('value')} ({v.get('items', '?')} items{'' if v.get('links', True) else ', too common to link'})")
            else:
                shown.append(str(v))
        if shown:
            parts.append(f"{kind}: " + "; ".join(shown))
    return " · ".join(parts) or "none"


def campaign_md(p: dict[str, Any]) -> str:
    camp = p.get("campaign")
    if not camp:
        return "Not part of a campaign."
    shown = entities_text(camp.get("entities"))
    why = f" · linked by {camp['linked_by']}" if camp.get("linked_by") else ""
    return (f"**Campaign {camp.get('id')}** · {camp.get('members', camp.get('size'))} items · first "
            f"{camp.get('first_seen') or '?'} · last {camp.get('last_seen') or '?'}{why}\n\nShared entities: {shown}\n\n"
            f"Top terms: {terms_text(camp.get('top_terms'))}")


def author_rows(p: dict[str, Any]) -> list[list[Any]]:
    return [[r["item_id"], r["created_at"], r["predicted"], r["decided"], r["action"], r["text"][:120]]
            for r in p["author"]["recent"]]


def similar_rows(p: dict[str, Any]) -> list[list[Any]]:
    return [[r["similarity"], r["label"], r["action"], r["reviewer"], (r["rationale"] or "")[:80], r["text"][:120]]
            for r in p["similar_decisions"]]


def campaign_detail_md(d: dict[str, Any], exemplar: str) -> str:
    """The Campaigns tab's summary of `clustering.explore.campaign_detail` (exemplar already masked if need be)."""
    mean = d.get("mean_scores") or {}
    growth = d.get("growth") or {}
    return (f"### Campaign {d.get('id')}: {d.get('size')} items ({d.get('status')})\n"
            f"**Exemplar:** {exemplar}\n\n"
            f"- first seen {d.get('first_seen')}, last seen {d.get('last_seen')}; growth: "
            f"{growth.get('last_hour', 0)} in the last hour, {growth.get('last_day', 0)} in the last day\n"
            f"- shared entities: {entities_text(d.get('entities'))}\n"
            f"- top terms: {terms_text(d.get('top_terms'))}\n"
            f"- why linked: {(d.get('link_reasons') or {}).get('members_by_reason', {})}\n"
            f"- model mean scores: " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items()) + "\n"
            f"- decided members: {d.get('decided', 0)}; label mix {d.get('label_mix') or {}}")
