"""The Search tab: find items and campaigns by text, item id, author, tag or note (with prefixes
`id:`, `author:`, `tag:`, `note:`, `text:`, `case:`, `campaign:`), within the signed-in user's
rights, texts masked; a clicked row gives its case id, and "Open in Review" claims that case and
shows it on the Review tab (`review.ReviewTab.open_from`).

Each callback is a few lines over `labeling.search.search`; a search refused (PermissionDenied)
is in the audit log (`tab_access.refused`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import gradio as gr

from core.hooks import PermissionDenied
from core.text import one_line
from labeling.search import search

from .format import local_time, md_escape, short, zone_name
from .review_hold import STORE_ERRORS
from .session import actor
from .tab_access import page_number, refused, row_id, said

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

PAGE = 25
HEADERS = ["case", "item", "posted", "author", "queue · state", "model → decided", "tags · matched on", "text"]
CAMPAIGN_HEADERS = ["campaign", "size", "last seen", "case", "tags"]


def result_rows(out: dict[str, Any]) -> list[list[Any]]:
    """The search service's item results as table rows."""
    return [[r["case_id"] if r["case_id"] is not None else "—", r["item_id"], local_time(r["created_at"]),
             r["author_id"] or "—", f"{r['queue'] or '—'} · {r['case_state'] or 'no case'}",
             f"{r['predicted'] or '—'} → {r['decided'] or '—'}",
             " · ".join(x for x in (", ".join(r["tags"]), ", ".join(r["matched"])) if x),
             short(r["text"], 160) + (" (masked)" if r["masked"] else "")] for r in out["results"]]


def campaign_rows(out: dict[str, Any]) -> list[list[Any]]:
    return [[c["campaign_id"], c["size"], local_time(c["last_seen"]), c["case_id"] if c["case_id"] is not None else "—",
             ", ".join(c["tags"])] for c in out["campaigns"]]


def summary_md(out: dict[str, Any]) -> str:
    n, total = len(out["results"]), out["total"]
    start = out["offset"] + 1 if n else 0
    more = "+" if out["capped"] else ""  # a lower bound, also when all it found fits one page
    count = f"{start}–{out['offset'] + n} of {total}{more}" if total > n else f"{total}{more}"
    n_camps = out.get("campaign_total", len(out["campaigns"]))  # all that match, a page of them shown
    camps = f"; {n_camps} campaigns" if n_camps else ""
    # one line, escaped as Markdown text: in a `code span` the escapes showed as written ("&lt;b&gt;")
    query = md_escape(one_line(out["query"], 120))
    return f"**{count} items**{camps} for “{query}” (times in {zone_name()}; texts masked as on Review)."


def build_search_tab(app: "AppContext", who: Optional[gr.Textbox] = None,
                     open_in_review: Optional[Callable[[Any, gr.Number, gr.Markdown], None]] = None) -> gr.Number:
    """Lay out the Search tab and wire it; returns the number box holding the case id to open.
    `open_in_review(event, case_box, note)` (the Review tab's `open_from`) wires the "Open in
    Review" button: claim that case and show it on the Review tab."""
    who_in = who if who is not None else gr.State("")

    def run(query: str, page: float, name: str, request: gr.Request) -> tuple[Any, ...]:
        page = page_number(page)  # NaN, inf or text from a client failed in int()
        try:
            out = search(app.store(), query, actor(app, name, request), app.review(), limit=PAGE,
                         offset=(page - 1) * PAGE)
        except (ValueError, PermissionDenied, *STORE_ERRORS) as exc:
            refused(app, name, request, "search", exc)  # audited: who tried what (not the query's text)
            return f"**Not searched:** {said(exc, 'search again')}", [], [], 1
        last = -(-max(out["total"], out.get("campaign_total", 0)) // PAGE)  # items and campaigns page together
        if last and not out["results"] and not out["campaigns"] and page > last:  # past the last: show the last
            return run(query, last, name, request)
        return summary_md(out), result_rows(out), campaign_rows(out), page

    def first(query: str, name: str, request: gr.Request) -> tuple[Any, ...]:
        return run(query, 1, name, request)

    def step(query: Any, page: Any, name: Any, request: gr.Request, by: int) -> tuple[Any, ...]:
        """Not preprocessed (see the wiring): the texts as Gradio's Textbox gives them, the page raw."""
        query, name = ("" if v is None else str(v) for v in (query, name))
        return run(query, max(1, page_number(page) + by), name, request)

    def prev(query: str, page: float, name: str, request: gr.Request) -> tuple[Any, ...]:
        return step(query, page, name, request, -1)

    def nxt(query: str, page: float, name: str, request: gr.Request) -> tuple[Any, ...]:
        return step(query, page, name, request, +1)

    def forget() -> tuple[Any, str]:
        """A new search or page: the case picked from the last results is no longer one of them, so
        "Open in Review" no longer opens it."""
        return None, ""

    def pick(rows: Any, evt: gr.SelectData) -> tuple[Any, str]:
        """A clicked row: its case id goes into the box the Review tab opens cases from."""
        try:  # the event's row and index are the client's: an index of {} failed in a KeyError
            row = evt.row_value if evt.row_value is not None else rows.iloc[evt.index[0]].tolist()
            case, item = (list(row) + [None, None])[:2]
        except (AttributeError, LookupError, TypeError, ValueError):
            return gr.update(), ""
        item = one_line(str(item), 80)  # a cell of any text: no line break, no lone surrogate (a crash in JSON)
        if case in ("—", None, ""):
            return None, f"Item {md_escape(item)} has no case."
        try:  # the table is the client's: a cell may hold any text or number
            case = row_id(case, "case id")
        except ValueError as exc:
            return None, f"**Not a case:** {md_escape(one_line(str(exc), 160))}"  # a cell of 1e400 digits
        how = "press **Open in Review**" if open_in_review else "open it on the Review tab with this id"
        return case, f"Case **{case}** (item “{md_escape(item)}”): {how}."

    with gr.Row():
        query = gr.Textbox(label="Search", placeholder="text, item id, author, or tag:…, note:…, case:…, campaign:…",
                           scale=5, elem_id="wb-search-q")
        go = gr.Button("Search", variant="primary", scale=1, elem_id="wb-search-go")
    with gr.Row(equal_height=True):
        summary = gr.Markdown("Search texts, item ids, authors, tags and notes.", elem_id="wb-search-summary")
        case_box = gr.Number(label="Case to open (click a row)", precision=0, elem_id="wb-search-case", scale=0,
                             min_width=200)
        open_btn = (gr.Button("Open in Review", elem_id="wb-search-open-review", scale=0, min_width=130)
                    if open_in_review else None)
        opened = gr.Markdown(elem_id="wb-search-open")
    results = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, elem_id="wb-search-results",
                           column_widths=["6%", "12%", "11%", "8%", "12%", "12%", "11%", "28%"], max_height=400)
    with gr.Row():
        prev_btn = gr.Button("◀ Previous", size="sm")
        page = gr.Number(value=1, precision=0, label="Page", minimum=1, scale=0, min_width=120)
        next_btn = gr.Button("Next ▶", size="sm")
    campaigns = gr.Dataframe(headers=CAMPAIGN_HEADERS, interactive=False, label="Campaigns (by tag, note or id)",
                             max_height=200)
    outs = [summary, results, campaigns, page]
    go.click(first, [query, who_in], outs)
    query.submit(first, [query, who_in], outs)
    # the page box raw: Gradio's Number refused NaN, inf, text and 0 itself, as a bare "Error"
    prev_btn.click(prev, [query, page, who_in], outs, preprocess=False)
    next_btn.click(nxt, [query, page, who_in], outs, preprocess=False)
    gr.on([go.click, query.submit, prev_btn.click, next_btn.click], forget, None, [case_box, opened], queue=False)
    results.select(pick, [results], [case_box, opened])
    if open_in_review and open_btn is not None:
        open_in_review(open_btn.click, case_box, opened)
    return case_box
