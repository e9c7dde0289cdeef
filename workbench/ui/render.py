"""Pure rendering helpers: service results (review packets, campaigns) as Markdown, HTML and table rows.

No Gradio and no store here: each function takes plain dicts and returns text or rows, so it is
tested without a browser.
"""
from __future__ import annotations

import datetime as dt
import html
import itertools
from typing import Any, Optional

from .format import md_escape, readable

# Stamps that make a refusal's re-sent case HTML differ from what the page last got (`restored_html`).
_SENT = itertools.count(1)
# On the blocks that hold user text: a URL or a word of 500 letters wraps inside its column
# instead of running under the next one (the style is inherited by every element inside).
WRAP = "style='overflow-wrap:anywhere'"
EMPTY_HEADER = "No case claimed. Pick a queue and press <b>Next</b> (<kbd>n</kbd>), or open a case by its id."


def esc(text: Any) -> str:
    """User-written or stored text as HTML text, the one rule for every HTML block the screen makes:
    `format.readable` first (entities decoded: `&#128545;` is an emoji; bidi controls shown), then
    escaped; line breaks kept."""
    return html.escape(readable(text)).replace("\n", "<br>")


def when(value: Any) -> str:
    """A timestamp as a `<time>` element: the page shows it in the browser's local time to the
    minute (assets.SHORTCUTS_JS); without script it reads as UTC to the minute."""
    if not value:
        return ""
    try:
        t = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return esc(str(value))
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return f"<time class='wb-t' datetime='{t.isoformat(timespec='seconds')}Z'>{t:%Y-%m-%d %H:%M} UTC</time>"


def _mix(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {lab}" for lab, n in counts.items()) or "none"


def campaign_line(p: dict[str, Any]) -> str:
    """What deciding a campaign case touches, said before any key: size, label mix, decided."""
    cc = p.get("campaign_case")
    if not cc:
        return ""
    held = f", {cc['held_by_others']} held by other analysts (left out)" if cc.get("held_by_others") else ""
    return (f"<div class='wb-campaign' id='wb-campaign-line'>Campaign case: <b>{cc['members']} items</b>, "
            f"label mix {esc(_mix(cc.get('label_mix') or {}))}, <b>{cc['already_decided']} already decided</b>{held}. "
            f"One decision labels {cc['will_decide']} items.</div>")


def _next_label(lr: dict[str, Any]) -> str:
    """", next <b>X</b> (p)" when the model's first choice is the given label itself (it leans to
    it only below the quality bar, `labeling.label_errors`): the label it would change to."""
    alt = lr.get("alternative")
    if not alt or lr.get("model_label") != lr.get("given_label"):
        return ""
    return f", next <b>{esc(alt)}</b>{_number(' ({:.2f})', lr.get('alternative_confidence'))}"


def label_review_line(p: dict[str, Any]) -> str:
    """On a label-review case, the decision under review and what each answer does, said before any key."""
    lr = p.get("label_review")
    if not lr:
        return ""
    return (f"<div class='wb-relabel' id='wb-relabel-line'>Re-review of <b>{esc(lr.get('reviewer') or '?')}</b>'s "
            f"decision: <b>{esc(lr.get('given_label') or '?')}</b>. Out-of-fold model: <b>{esc(lr.get('model_label') or '?')}</b>"
            f"{_number(' ({:.2f})', lr.get('confidence'))}{_next_label(lr)}{_number(', label quality {:.2f}', lr.get('quality'))}. "
            f"Its label, action and policy reference unchanged confirm it; another writes a correction that "
            f"supersedes it (a rationale either way).</div>")


def _number(template: str, value: Any) -> str:
    """`template` filled with `value` as a float, or nothing when there is no value."""
    return "" if value is None else template.format(float(value))


def saved_message(case_id: int, label: str, action: Optional[str], out: dict[str, Any]) -> str:
    """What the screen says after a decision (`labeling.decisions.decide`'s view): a re-review's
    outcome (a correction or a confirmation, which `u` does not take back), else the label, action
    and how many items it labelled, with the undo key."""
    lr = out.get("label_review")
    if lr:
        if lr["outcome"] == "superseded":
            return (f"Decision {lr['decision_id']} was superseded by {lr['superseded_by']} after case {case_id} was "
                    "queued: the later decision stands; case closed without a change.")
        if lr["outcome"] == "corrected":
            return (f"Corrected decision {lr['decision_id']} to {label} (correction {lr['correction_id']} "
                    f"supersedes it); case {case_id} closed.")
        return f"Confirmed decision {lr['decision_id']} ({label}); no new decision. Case {case_id} closed."
    n = len(out.get("decision_ids", []))
    return (f"Saved case {case_id}: {label} / {action or 'default action'}{f' on {n} items' if n > 1 else ''}. "
            "Press u to undo.")


def header_html(p: dict[str, Any], message: str = "") -> str:
    """The case line: id, queue, tier, SLA, why it is first (one line; the whole reason on hover),
    and for a campaign case what a decision touches. QA-audit and calibration draws look like any
    other case (blind review)."""
    c = p["case"]
    left = p.get("minutes_left")
    due = ("no SLA" if left is None else
           f"<b class='wb-overdue'>overdue by {_minutes(-left)}</b>" if left < 0 else f"due in {_minutes(left)}")
    tags = []
    earlier = [e for e in (c.get("escalations") or [])[:-1] if isinstance(e, dict) and e.get("reason")]
    if earlier:
        tags.append("earlier: " + " → ".join(esc(f"{e['reason']} ({e.get('by') or 'system'})") for e in earlier))
    if c.get("escalation_reason"):
        tags.append(f"escalated: {esc(c['escalation_reason'])}")
    kind = "campaign" if c.get("campaign_id") is not None else "item"
    return (f"<div class='wb-head' data-case='{int(c['id'])}' data-kind='{kind}' {WRAP}>"
            f"<span class='wb-case-title'>Case {int(c['id'])} · {esc(c['queue'])} · {esc(c.get('severity') or 'no tier')} · "
            f"{due}</span>{' · ' + ' · '.join(tags) if tags else ''}"
            f"{campaign_line(p)}{label_review_line(p)}"
            f"<div class='wb-why' title=\"{html.escape(readable(c.get('priority_reason') or ''))}\">"
            f"<b>Why first:</b> {esc(c.get('priority_reason') or '—')}</div>"
            f"{message_html(message)}</div>")


def message_html(message: str, kind: str = "info") -> str:
    return f"<div class='wb-msg wb-{kind}'>{esc(message)}</div>" if message else ""


def empty_header(message: str = "") -> str:
    return f"<div class='wb-head' data-case=''>{EMPTY_HEADER}{message_html(message)}</div>"


def _minutes(m: float) -> str:
    m = abs(float(m))
    if m >= 2 * 1440:
        return f"{m / 1440:.0f} days"
    if m >= 120:
        return f"{m / 60:.0f} h"
    return f"{m:.0f} min"


def header_md(p: dict[str, Any]) -> str:
    """A plain-text case line (CLI-like callers); the screen uses `header_html`."""
    c = p["case"]
    left = p.get("minutes_left")
    due = "no SLA" if left is None else (f"**overdue by {-left:.0f} min**" if left < 0 else f"due in {left:.0f} min")
    return (f"### Case {md_escape(c['id'])} · {md_escape(c['queue'])} · {md_escape(c.get('severity') or 'no tier')} · "
            f"{due}\n\n**Why first:** {md_escape(c.get('priority_reason') or '—')}")


def text_html(p: dict[str, Any], prefs: Optional[dict[str, bool]] = None) -> str:
    """The item's text (already masked by the server unless revealed), with the display settings."""
    prefs = prefs or {}
    cls = " ".join(c for c, on in (("wb-blur", prefs.get("blur")), ("wb-gray", prefs.get("grayscale"))) if on)
    item = p.get("item")
    if item is None:
        camp = p.get("campaign") or {}
        return f"<div class='{cls}'>Campaign {camp.get('id')}: {camp.get('members', '?')} members.</div>"
    masked = p.get("masked") and not p.get("revealed")
    note = ("<div class='wb-masknote'><small>Masked: possibly offensive. Press <kbd>r</kbd> or Reveal to show "
            "(audited, counted in your exposure).</small></div>") if masked else ""
    meta = (f"<small>{esc(item['id'])} · {esc(item['source'])} · {esc(item['surface'])} · "
            f"{when(item.get('created_at'))}</small>")
    state = " wb-masked" if masked else (" wb-revealed" if p.get("revealed") else "")
    body = f"<div class='wb-body{state}'>{esc(item['text'])}</div>"
    sample = (p.get("campaign") or {}).get("sample") or []
    more = ""
    # Focusable while blurred: focus (Tab, a click) shows the revealed text sharp as a hover does
    # (assets.CSS), and `b` does from the keyboard (assets.SHORTCUTS_JS).
    focus = " tabindex='0' aria-label='Case text: focus or press b to show the revealed text sharp'" if prefs.get("blur") else ""
    if sample and p.get("campaign_case"):
        rows = "".join(f"<li>{esc(m['text'][:160])}</li>" for m in sample)
        shown = " class='wb-revealed'" if p.get("revealed") else ""  # revealed members blur as the text does
        more = f"<div class='wb-sample'><small>Other members:</small><ul{shown}>{rows}</ul></div>"
    return f"<div class='{cls}'{focus} {WRAP}>{meta}{body}{note}{more}</div>"


def model_html(p: dict[str, Any]) -> str:
    """The model's suggestion and its scores as compact bars (fits beside the text)."""
    pred = p.get("prediction")
    if not pred:
        return "<div>No model prediction for this case.</div>"
    flags = ", ".join(k for k, v in (pred.get("flags") or {}).items() if v)
    scores = sorted((pred.get("scores") or {}).items(), key=lambda kv: -float(kv[1]))
    bars = "".join(f"<div class='wb-bar'><span>{esc(k)}</span><i style='width:{max(1, round(float(v) * 100))}%'></i>"
                   f"<b>{float(v):.2f}</b></div>" for k, v in scores)
    return (f"<div class='wb-model'>Model says <b>{esc(pred['label'])}</b>"
            f"{_number(' at {:.2f}', pred.get('score'))}{_number(' (uncertainty {:.2f})', pred.get('uncertainty'))}"
            f"<br><small>{esc(pred.get('model_version') or '')}{' · input flags: ' + esc(flags) if flags else ''}</small>"
            f"{bars}</div>")


def model_md(p: dict[str, Any]) -> str:
    pred = p.get("prediction")
    if not pred:
        return "No model prediction for this case."
    flags = ", ".join(k for k, v in (pred.get("flags") or {}).items() if v)
    return (f"Model **{md_escape(pred['label'])}** at {pred['score']:.2f} (uncertainty {pred['uncertainty']:.2f}) · "
            f"{md_escape(pred['model_version'])}" + (f" · input flags: {md_escape(flags)}" if flags else ""))


def table_html(headers: list[str], rows: list[list[str]], empty: str, widths: Optional[list[str]] = None,
               total: Optional[int] = None) -> str:
    """A fixed-layout table that fits its column (cells are HTML already escaped by the caller)."""
    if not rows:
        return f"<div class='wb-empty'>{esc(empty)}</div>"
    cols = "".join(f"<col style='width:{w}'>" for w in widths) if widths else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    shown = f"<div class='wb-count'>{len(rows)} of {total}</div>" if total is not None and total > len(rows) else ""
    return f"<table class='wb-table'><colgroup>{cols}</colgroup><tr>{head}</tr>{body}</table>{shown}"


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
                shown.append(f"{v.get('value')} ({v.get('items', '?')} items{'' if v.get('links', True) else ', does not link'})")
            else:
                shown.append(str(v))
        if shown:
            parts.append(f"{kind}: " + "; ".join(shown))
    return " · ".join(parts) or "none"


def campaign_md(p: dict[str, Any]) -> str:
    camp = p.get("campaign")
    if not camp:
        return "Not part of a campaign."
    shown = md_escape(entities_text(camp.get("entities")))
    why = f" · linked by {md_escape(camp['linked_by'])}" if camp.get("linked_by") else ""
    return (f"**Campaign {md_escape(camp.get('id'))}** · {md_escape(camp.get('members', camp.get('size')))} items · "
            f"first {md_escape(camp.get('first_seen') or '?')} · last {md_escape(camp.get('last_seen') or '?')}{why}\n\n"
            f"Shared entities: {shown}\n\nTop terms: {md_escape(terms_text(camp.get('top_terms')))}")


def campaign_html(p: dict[str, Any]) -> str:
    camp = p.get("campaign")
    if not camp:
        return "<div class='wb-sub'>Not part of a campaign.</div>"
    why = f" · this item linked by {esc(camp['linked_by'])}" if camp.get("linked_by") else ""
    return (f"<div><b>Campaign {camp.get('id')}</b> · {camp.get('members', camp.get('size'))} items · first "
            f"{when(camp.get('first_seen')) or '?'} · last {when(camp.get('last_seen')) or '?'}{why}<br>"
            f"Shared entities: {esc(entities_text(camp.get('entities')))}<br>"
            f"Top terms: {esc(terms_text(camp.get('top_terms')))}</div>")


def side_html(p: Optional[dict[str, Any]]) -> str:
    """The right-hand column above the context panel: the model's scores, the campaign, and the
    similar past decisions (a section the analyst opens; the page keeps it open from case to
    case). One block, not three components: each output of a key costs the page on every later
    event (issue 17)."""
    model = model_html(p) if p else ""
    camp = campaign_html(p) if p else ""
    similar = similar_html(p) if p else ""
    case = int(p["case"]["id"]) if p else ""  # two cases' columns differ even where their scores do not
    return (f"<div id='wb-model' data-case='{case}' {WRAP}>{model}</div><div id='wb-campaign' {WRAP}>{camp}</div>"
            f"<details class='wb-acc' data-acc='similar'><summary>Similar past decisions</summary>"
            f"<div id='wb-similar'>{similar}</div></details>")


def author_html(p: dict[str, Any]) -> str:
    a = p.get("author") or {}
    rows = [[when(r["created_at"]), esc(r["predicted"] or "—"), esc(r["decided"] or "—"),
             esc(r["action"] or "—"), esc(r["text"][:160])] for r in a.get("recent") or []]
    head = (f"<div class='wb-sub'>{a.get('items', 0)} other items, {a.get('violations', 0)} decided violating</div>"
            if a.get("author_id") else "")
    return head + table_html(["posted", "model", "decided", "action", "text"], rows, "No other items by this author.",
                             ["19%", "11%", "11%", "14%", "45%"], total=a.get("items"))


def _words(value: Any) -> str:
    """A short name (a label, an action, a reviewer) that wraps only between its parts: after an
    "_" or a "-", never inside a word ("harass ment", "block_sen der" at 1366 px)."""
    return f"<span class='wb-nobreak'>{esc(value).replace('_', '_<wbr>').replace('-', '-<wbr>')}</span>"


def similar_html(p: dict[str, Any]) -> str:
    """Similar past decisions in the side column (about 440 px at 1366): the label and its action
    share one column, one above the other, so no short name is broken inside a word (a reviewer's
    name, which may be a long pseudonym, still wraps anywhere)."""
    rows = [[f"<span class='wb-nobreak'>{float(r['similarity']):.2f}</span>",
             f"{_words(r['label'])}<br><small>{_words(r['action'])}</small>",
             esc(r["reviewer"]),
             esc((r.get("rationale") or "")[:80]), esc(r["text"][:140])] for r in p.get("similar_decisions") or []]
    return table_html(["sim.", "decision", "by", "rationale", "text"], rows, "No similar past decisions.",
                      ["9%", "21%", "12%", "23%", "35%"])


def campaign_detail_md(d: dict[str, Any], exemplar: str) -> str:
    """The Campaigns tab's summary of `clustering.explore.campaign_detail` (exemplar already masked
    if need be), every stored text escaped (`format.md_escape`)."""
    mean = d.get("mean_scores") or {}
    growth = d.get("growth") or {}
    return (f"### Campaign {md_escape(d.get('id'))}: {md_escape(d.get('size'))} items ({md_escape(d.get('status'))})\n"
            f"**Exemplar:** {md_escape(exemplar)}\n\n"
            f"- first seen {md_escape(d.get('first_seen'))}, last seen {md_escape(d.get('last_seen'))}; growth: "
            f"{growth.get('last_hour', 0)} in the last hour, {growth.get('last_day', 0)} in the last day\n"
            f"- shared entities: {md_escape(entities_text(d.get('entities')))}\n"
            f"- top terms: {md_escape(terms_text(d.get('top_terms')))}\n"
            f"- why linked: {md_escape((d.get('link_reasons') or {}).get('members_by_reason', {}))}\n"
            f"- model mean scores: " + ", ".join(f"{md_escape(k)} {v:.2f}" for k, v in mean.items()) + "\n"
            f"- decided members: {d.get('decided', 0)}; label mix {md_escape(d.get('label_mix') or {})}")


def lease_html(packet: Optional[dict[str, Any]], settings: Any, lost: str = "", idle: bool = False,
               now: Optional[dt.datetime] = None) -> str:
    """The lease clock: the page counts it down every second (assets), warns `lease_warning_seconds`
    before the end, and says plainly when the hold was lost.

    `data-left` is the seconds left as this server sees them at `now` (naive UTC; default the
    clock now): the page counts down from when it received them, not against its own clock, which
    may be minutes off (a fast laptop showed a live hold as lost, a slow one a lapsed hold as live).
    `data-expires` (the end, ms since the epoch) stays for whatever else reads it."""
    if lost:
        return f"<div id='wb-lease' class='wb-lease wb-lost' data-expires='' data-left=''>{esc(lost)}</div>"
    if not packet or not packet["case"].get("lease_expires_at"):
        return "<div id='wb-lease' class='wb-lease' data-expires='' data-left=''></div>"
    exp = packet["case"]["lease_expires_at"]
    exp = dt.datetime.fromisoformat(exp) if isinstance(exp, str) else exp
    if exp.tzinfo is not None:  # an aware end (an ISO string with an offset) as naive UTC, like the store's
        exp = exp.astimezone(dt.timezone.utc).replace(tzinfo=None)
    ms = int((exp - dt.datetime(1970, 1, 1)).total_seconds() * 1000)
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    left = max(0.0, (exp - now).total_seconds())
    note = " (renewal paused: no activity; press any key to keep the case)" if idle else ""
    return (f"<div id='wb-lease' class='wb-lease' data-expires='{ms}' data-left='{left:.3f}' "
            f"data-warn='{settings.lease_warning_seconds}' "
            f"data-case='{int(packet['case']['id'])}' data-idle='{int(idle)}'>Hold on case {int(packet['case']['id'])}"
            f"{esc(note)}</div>")


def counts_choices(status: dict[str, dict[str, Any]], queues: list[str]) -> list[tuple[str, str]]:
    out = []
    for q in queues:
        s = status.get(q) or {}
        late = f", {s['overdue']} overdue" if s.get("overdue") else ""
        out.append((f"{q} ({s.get('waiting', 0)} left{late})", q))
    return out


def status_html(status: dict[str, dict[str, Any]], queue: Optional[str], expo: Optional[dict[str, Any]]) -> str:
    s = status.get(queue or "") or {}
    left = f"<b>{s.get('waiting', 0)} left</b> in {esc(queue or '—')}" + (
        f" · {s['overdue']} overdue" if s.get("overdue") else "")
    ex = ""
    if expo:
        cls = "wb-over" if expo["over_budget"] else ""
        ex = (f" · <span class='{cls}' id='wb-exposure'>severe items revealed this shift: {expo['severe']} of "
              f"{expo['budget']}</span>")
    return f"<div id='wb-status' class='wb-status'>{left}{ex}</div>"


def prefetch_html(p: Optional[dict[str, Any]], prefs: Optional[dict[str, bool]] = None) -> str:
    """The analyst's next case (claimed ahead), rendered as the screen would show it, in the hidden
    `#wb-prefetch` box: the page swaps it in on `c` before the server answers (assets.SHORTCUTS_JS).
    The same render functions over the same masked packet, so it carries nothing the screen would
    not show; held in attributes, not as nodes, so none of its ids or texts is in the page's tree."""
    if p is None:
        return "<div class='wb-pre' data-case=''></div>"
    kind = "campaign" if p["case"].get("campaign_id") is not None else "item"
    parts = (("head", header_html(p)), ("text", text_html(p, prefs)), ("side", side_html(p)))
    attrs = " ".join(f'data-{k}="{html.escape(v, quote=True)}"' for k, v in parts)
    return f"<div class='wb-pre' data-case='{int(p['case']['id'])}' data-kind='{kind}' {attrs}></div>"


def where_error_goes(message: str) -> str:
    """Which control a refusal belongs beside: the rationale box, the label, the lease, or the buttons."""
    m = message.lower()
    if "rationale" in m or "reason" in m:
        return "rationale"
    if "action" in m or "label" in m or "policy" in m or "severity" in m:
        return "label"
    if "claimed by" in m or "no longer held" in m or "lapsed" in m:
        return "lease"
    return "buttons"


def plain(message: str) -> str:
    """A service message in the screen's words (no command-line options)."""
    return (message.replace("`workbench appeals resolve`", "the command line")
            .replace("(configs/roles.yaml)", "(ask an admin for the role)"))


def restored_html(p: dict[str, Any], prefs: Optional[dict[str, bool]] = None) -> tuple[str, str, str]:
    """The case's header, text and side column again, stamped, for a refusal: the page may show
    the next case optimistically (assets.SHORTCUTS_JS), and Gradio re-applies an HTML value only
    when it differs from the last one it got, so the unchanged value would leave that view up."""
    stamp = f"<span hidden data-sent='{next(_SENT)}'></span>"
    return header_html(p) + stamp, text_html(p, prefs) + stamp, side_html(p) + stamp
