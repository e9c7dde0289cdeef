"""The Campaigns tab: the list of campaigns, one campaign's facts, why its members are linked,
its timeline plot and its members page by page, and one decision applied to the whole campaign
(its campaign case, decided in bulk). After a decision the campaign and the list are shown again;
what applying would do is said as such only to whoever may (permission `bulk`), to anyone else as
what a lead's decision would do; applying it refused (PermissionDenied) is in the audit log
(`tab_access.refused`).

Readable at 1366x768: the list leads with size, last seen and top terms; times are local to the
minute; HTML entities are decoded; every text a campaign shows (exemplar, member texts, top
terms) goes through `labeling.masking.mask_campaign`: each text by its own rule, or the campaign's
mean rule; the tab has no reveal.
"""
from __future__ import annotations

import os
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from core.hooks import PermissionDenied, check_permission
from core.schema import MAX_ROW_ID
from clustering.explore import campaign_detail, campaign_successor, campaign_timeline, list_campaigns
from labeling.cases import campaign_case, campaign_case_state
from labeling.decisions import bulk_counts, decide
from labeling.masking import mask_campaign

from .format import decoded, local_time, md_escape, of_total, page_span, readable, short, zone_name
from .review_hold import STORE_ERRORS
from .role_controls import may
from .session import actor
from .tab_access import check_reader, one_line, refused, said

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

# What a service refuses with (LabelingError is a ValueError), and a store busy or gone: shown, never a crash.
SERVICE_ERRORS = (ValueError, PermissionDenied, *STORE_ERRORS)
MEMBERS_PAGE = 50
LIST_LIMIT = 100  # campaigns the list shows; a last row says when there are more
LIST_HEADERS = ["id", "size", "last seen", "top terms", "first seen", "decided", "exemplar"]
MEMBER_HEADERS = ["item", "seen", "why linked", "decided", "text"]
# The detail pane before a campaign is shown (the timeline is hidden until there is one to draw).
NOTHING_SHOWN = ("No campaign shown yet: pick a row in the list above, or type a campaign id and press Show, "
                 "to see its facts, timeline and members.")


def blank_id(value: Any) -> bool:
    """Whether the Campaign id box is empty (None, or only spaces): nothing picked, not a bad id."""
    return value is None or (isinstance(value, str) and not value.strip())


def campaign_number(value: Any, what: str = "campaign id") -> int:
    """The Campaign id (or Members page) box as a whole number from 1: a client may send 1e30,
    inf or NaN, which would fail in `int()` or in the store's query instead of being refused, or a
    whole number too big for a float (an OverflowError traceback from Apply and the page buttons)."""
    try:
        number = float(value)
    except OverflowError:  # not printed: a number of over 4,300 digits fails in `str()` too
        raise ValueError(f"the {what} must be a whole number from 1 to {MAX_ROW_ID}, not a number that large") \
            from None
    except (TypeError, ValueError):
        raise ValueError(f"the {what} must be a whole number, not {value!r}") from None
    if not (number.is_integer() and 1 <= number <= MAX_ROW_ID):
        raise ValueError(f"the {what} must be a whole number from 1 to {MAX_ROW_ID}, not {value!r}")
    return int(number)


def seen_snapshot(cid: int, case_id: Optional[int], members: list[dict[str, Any]]) -> dict[str, Any]:
    """What a lead read before applying (campaign, its case, each member and its decided label):
    applying is refused when this changed, so a decision never covers members the preview did
    not count, nor a campaign other than the one shown."""
    return {"campaign": cid, "case": case_id,
            "members": sorted([m["item_id"], m.get("decided_label") or ""] for m in members)}


def _terms(top_terms: Any, n: Optional[int] = 6) -> list[str]:
    return [decoded(t[0] if isinstance(t, (list, tuple)) else t) for t in (top_terms or [])[:n]]


_REASON_ORDER = {"same_text": 0, "similarity": 1, "seed": 9}


def reason_kinds(linked_by: Optional[str]) -> tuple[str, ...]:
    """A member's `linked_by` ("same_text,similarity,phone:0871…") as its reason kinds: copies,
    then similarity, then shared entities, each once."""
    kinds = {part.split(":", 1)[0] for part in (linked_by or "seed").split(",") if part}
    return tuple(sorted(kinds, key=lambda k: (_REASON_ORDER.get(k, 5), k))) or ("seed",)


def _reason_words(kind: str, threshold: Any) -> str:
    """A reason kind in words, for Markdown: the kind and the threshold are stored values, escaped."""
    sim = f" (cosine ≥ {_number_md(threshold)})" if threshold is not None else ""
    return {"same_text": "the same text as another member", "similarity": f"similar{sim} to another text",
            "seed": "the member the campaign grew from (no link of its own)"}.get(
        kind, f"shares a {md_escape(kind.replace('_', ' '))} with other members")


def _number_md(value: Any) -> str:
    """A stored number as Markdown: `0.85` as written, anything else escaped text."""
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else md_escape(value)


def why_linked_md(members: list[dict[str, Any]], size: int, link_reasons: dict[str, Any]) -> str:
    """Why the members are in the campaign, each member counted once by its combination of
    reasons (so the lines add up to the member count), then per reason, which overlap."""
    thr = (link_reasons or {}).get("similarity_threshold")
    combos = Counter(reason_kinds(m.get("linked_by")) for m in members)
    per_reason = Counter(k for m in members for k in reason_kinds(m.get("linked_by")))
    lines = [f"**Why linked**: each of the {len(members)} members once, by the reasons that hold for it:"]
    for kinds, n in combos.most_common():
        lines.append(f"- {n}: " + " and ".join(_reason_words(k, thr) for k in kinds))
    if len(members) < size:
        lines.append(f"- {size - len(members)}: not listed (members since removed or merged)")
    overlap = sum(per_reason.values())
    lines.append("\nPer reason: " + " · ".join(f"{md_escape(k.replace('_', ' '))} {n}"
                                                for k, n in per_reason.most_common())
                 + (f". A member linked for several reasons counts under each, so these add to {overlap} for "
                    f"{len(members)} members." if overlap != len(members) else "."))
    return "\n".join(lines)


def linked_short(linked_by: Optional[str], similarity: Any) -> str:
    """A member's reasons in a few words: `copy, similar 0.93, phone`."""
    words = {"same_text": "copy", "similarity": "similar"}
    out = [words.get(k, k.replace("_", " ")) for k in reason_kinds(linked_by)]
    if similarity is not None and "similar" in out:
        out[out.index("similar")] = f"similar {float(similarity):.2f}"
    return ", ".join(out)


def build_campaigns_tab(app: "AppContext", tab: gr.Tab, who: gr.Textbox) -> None:
    """Lay out the Campaigns tab and wire it; `who` is the Review tab's analyst box. The list loads
    when `tab` is opened: a page-load event would make its outputs part of every Review key's
    status walk in the browser (issue 17), and an analyst who never opens the tab never pays."""
    store, taxonomy = app.store(), app.taxonomy()

    def shown(camp: dict[str, Any]) -> dict[str, Any]:
        """`camp` with its texts decoded (as people read them), then masked (`mask_campaign`)."""
        plain = dict(camp, exemplar_text=decoded(camp.get("exemplar_text")), top_terms=_terms(camp.get("top_terms"), None))
        if "members" in camp:
            plain["members"] = [dict(m, text=decoded(m.get("text"))) for m in camp["members"]]
        return mask_campaign(app.review(), plain)

    def terms(camp: dict[str, Any], n: int = 6) -> str:
        return ", ".join((camp.get("top_terms") or [])[:n]) or "—"

    def campaign_table(name: str = "", request: Optional[gr.Request] = None) -> list[list[Any]]:
        """The list, for whoever may read it (`check_reader`); a refusal or a failure is one line."""
        try:
            check_reader(app, name, request, "campaigns")
            listed = list_campaigns(store, limit=LIST_LIMIT + 1, taxonomy=taxonomy)
            rows = [shown(r) for r in listed[:LIST_LIMIT]]
        except Exception as exc:  # noqa: BLE001 - no campaigns built yet, refused, a store failure
            return [[None, 0, "", one_line(exc, "nothing is listed: refresh"), "", "", ""]]
        # past the first 100 the list ended there, as if there were no more campaigns
        more = ([[None, None, "", f"More campaigns than the {LIST_LIMIT} biggest listed: type a campaign id, or "
                  f"run `workbench campaigns list --offset {LIST_LIMIT}`", "", "", ""]]
                if len(listed) > LIST_LIMIT else [])
        return [[r.get("id"), r.get("size"), local_time(r.get("last_seen")), readable(terms(r, 5)),
                 local_time(r.get("first_seen")), r.get("decided", 0), short(r.get("exemplar_text"), 90)]
                for r in rows] + more

    def summary_md(d: dict[str, Any]) -> str:
        mean = d.get("mean_scores") or {}
        growth = d.get("growth") or {}
        mix = md_escape(", ".join(f"{n} {lab}" for lab, n in (d.get("label_mix") or {}).items()) or "none")
        ents = []
        for kind, values in (d.get("entities") or {}).items():
            vals = [f"{md_escape(v.get('value'))} ({v.get('items')} items)" for v in list(values or [])[:3]
                    if isinstance(v, dict)]
            if vals:
                ents.append(f"{md_escape(kind)}: " + "; ".join(vals))
        top = sorted(mean.items(), key=lambda kv: -kv[1])[:3]
        status = md_escape(d.get("status"))
        if d.get("status") == "merged":
            status += f" into campaign {d['successor']}" if d.get("successor") else ", its members in no campaign now"
        return (f"### Campaign {d.get('id')}: {d.get('size')} items ({status})\n"
                f"**Exemplar:** {md_escape(d.get('exemplar_text'))}\n\n"
                f"- seen from {local_time(d.get('first_seen'))} to {local_time(d.get('last_seen'), zone=True)}; "
                f"{growth.get('last_hour', 0)} new in the last hour, {growth.get('last_day', 0)} in the last day\n"
                f"- top terms: {md_escape(terms(d, 8))}\n"
                f"- shared entities: {' · '.join(ents) or 'none'}\n"
                f"- model, mean over members: " + ", ".join(f"{md_escape(k)} {v:.2f}" for k, v in top) + "\n"
                f"- decided members: {d.get('decided', 0)} of {d.get('size')} ({mix})")

    def show_campaign(campaign_id: Optional[float], page: Optional[float], who: str = "",
                      request: Optional[gr.Request] = None) -> tuple[Any, ...]:
        if blank_id(campaign_id):
            return NOTHING_SHOWN, gr.update(value=None, visible=False), [], "", 1, {}
        try:
            cid = campaign_number(campaign_id)
            check_reader(app, who, request, f"campaign {cid}")
            # one page of texts (members as they came), every member's link and label without its text
            d = shown(campaign_detail(store, cid, members_limit=MEMBERS_PAGE, taxonomy=taxonomy, members_order="seen",
                                      members_offset=(page_number(page) - 1) * MEMBERS_PAGE, with_links=True))
            png = timeline_png(cid)
        except Exception as exc:  # noqa: BLE001 - unknown id, no campaigns built yet, refused, store failure
            return (f"Warning: {said(exc, 'nothing is shown: press Show again')}", gr.update(value=None, visible=False),
                    [], "", 1, {})
        case_id = campaign_case(store, cid)
        members = d.get("member_links") or []
        page, start, end = page_span(d.get("members_offset", 0) // MEMBERS_PAGE + 1, MEMBERS_PAGE, len(members))
        rows = [[m["item_id"], local_time(m["seen"]), linked_short(m["linked_by"], m["similarity"]),
                 m["decided_label"] or "—", short(m["text"], 140)] for m in d.get("members") or []]
        count = (f"Members {start + 1}–{end}: {of_total(end - start, len(members), 'members')} "
                 f"(page {page} of {max(1, -(-len(members) // MEMBERS_PAGE))}; times in {zone_name()})"
                 if members else "No members.")
        body = (summary_md(d) + "\n\n" + why_linked_md(members, int(d.get("size") or 0), d.get("link_reasons") or {})
                + preview_md(cid, case_id, who, request))
        return body, gr.update(value=png, visible=True), rows, count, page, seen_snapshot(cid, case_id, members)

    def timeline_png(cid: int) -> str:
        """The campaign's timeline PNG, drawn aside and swapped in whole: Gradio reads the returned
        file after the callback, and a second lead showing the campaign rewrote it in place."""
        final = store.path("plots", f"campaign-{cid}-timeline.png")
        tmp = final.with_name(f".campaign-{cid}-{uuid.uuid4().hex}.png")
        os.replace(campaign_timeline(store, cid, png_path=tmp)["png"], final)
        return str(final)

    def page_number(page: Any) -> int:
        """The Members page box; anything but a whole number from 1 is page 1."""
        try:
            return campaign_number(page or 1, "members page")
        except ValueError:
            return 1

    def page_of(campaign_id: Optional[float], page: Optional[float], by: int, who: str = "",
                request: Optional[gr.Request] = None) -> tuple[Any, ...]:
        return show_campaign(campaign_id, max(1, page_number(page) + by), who, request)

    def changed_since(cid: int, case_id: int, seen: dict[str, Any]) -> Optional[str]:
        """Why applying now would not do what the preview the lead read said (None when it would):
        another campaign than the one shown, or members joined, left or decided since. `seen` is
        what a Show put in the page's state (`act_on_campaign` refuses an empty one)."""
        if seen.get("campaign") != cid:
            return (f"campaign {cid} is not the campaign shown: press Show and read what applying would do "
                    "before applying.")
        try:
            now = seen_snapshot(cid, case_id, campaign_detail(store, cid, members_limit=1, taxonomy=taxonomy,
                                                              with_links=True).get("member_links") or [])
        except SERVICE_ERRORS as exc:
            return said(exc, "nothing was saved: apply again")
        if now == seen:
            return None
        def counts(snap: dict[str, Any]) -> str:
            return f"{len(snap['members'])} members, {sum(1 for _, lab in snap['members'] if lab)} decided"
        return (f"campaign {cid} changed since it was shown ({counts(seen)} then; {counts(now)} now"
                + ("; another campaign case" if seen.get("case") != case_id else "")
                + "): it is shown again with what applying would do now; apply again if that still holds.")

    def no_case_md(cid: int) -> str:
        """Why there is nothing to apply, and what would change that."""
        s = campaign_case_state(store, cid)
        if s["status"] is None:
            return f"No campaign {cid}."
        if s["status"] != "active":
            into = campaign_successor(store, cid)
            return (f"Campaign {cid} is {s['status']}: " + (f"its members are in campaign {into} now; apply the "
                    f"decision there." if into else "its members are in no campaign now; nothing to apply."))
        if s["joined_undecided"]:
            return (f"Campaign {cid} was decided (case {s['last_case']}); {s['joined_undecided']} undecided members "
                    f"joined since: they get a campaign case of their own when an engineer builds cases (`workbench "
                    f"cases build`, permission build_cases); until then decide them one by one on the Review tab.")
        if s["last_case"] is not None:
            return (f"Campaign {cid} was decided (case {s['last_case']}) and no undecided member joined since: "
                    f"nothing to apply. A campaign decision is not applied again to decided members: to change one, "
                    f"correct its decision (`workbench correct DECISION_ID --label LABEL`; a lead may correct others').")
        return (f"Campaign {cid} has no campaign case yet: an engineer builds one (`workbench cases build`, "
                "permission build_cases; it needs two scored members).")

    def preview_md(cid: int, case_id: Optional[int], who: str = "", request: Optional[gr.Request] = None) -> str:
        """What applying a decision would do for whoever applies it, said before the button is pressed."""
        if case_id is None:
            return "\n\n" + no_case_md(cid)
        try:
            principal = actor(app, who or "", request)
            p = bulk_counts(store, case_id, principal, config=app.queues())
        except SERVICE_ERRORS as exc:
            return f"\n\nWarning: {said(exc, 'what applying would do is not known: press Show again')}"
        try:  # as `decide` checks it: a viewer or analyst reads what a lead's decision would do
            check_permission(principal, "bulk", f"campaign {cid}")
            may = True
        except PermissionDenied:
            may = False
        held, appeal, decided = p["held_by_others"], p["skipped_appeal"], p["skipped_decided"]
        labels = ", ".join(f"{n} {lab}" for lab, n in p["already_decided_labels"].items())
        follow_up = p["existing"] == "skip"
        head = ("**Applying a decision** labels" if may else
                "**Only a lead applies a decision here** (permission 'bulk'). A lead's decision would label")
        return (f"\n\n{head} {p['will_decide']} of {p['members']} members"
                + (f"; {appeal} settled or pending on appeal are left out" if appeal else "")
                + (f"; {held} held by other analysts are left out" if held else "")
                + (f"; {decided} already decided are left out (the campaign was decided before: this case is for "
                   "the members that joined since)" if follow_up and decided else "")
                + ((f"; {p['already_decided']} already decided ({labels}) get a superseding decision, "
                    "or are left out if you tick the box" if may else
                    f"; {p['already_decided']} already decided ({labels}) would get a superseding decision, "
                    "or be left out if the lead ticks the box") if p["already_decided"] else "") + ".")

    def applicable(campaign_id: Any, who: str = "", request: Optional[gr.Request] = None) -> tuple[Any, Any]:
        """The tick box and Apply as they can be used for the campaign shown: for a role without
        `bulk` (role_controls), or with no campaign case open, nothing to apply (decided members are
        corrected one by one, never re-applied: `decide` acts on a waiting campaign case), so both
        are disabled and the box says why. The service checks both again on Apply."""
        if (note := may(app, who, request, "bulk", "Applying a decision to the whole campaign")) is not None:
            return gr.update(interactive=False, info=note), gr.update(interactive=False)
        try:
            open_case = None if blank_id(campaign_id) else campaign_case(store, campaign_number(campaign_id))
        except (ValueError, *STORE_ERRORS):
            open_case = None
        if open_case is None:
            why = "nothing to apply: this campaign has no open campaign case (see above)"
            return gr.update(interactive=False, info=why), gr.update(interactive=False)
        return (gr.update(interactive=True, info="ticked: members already decided keep their decision"),
                gr.update(interactive=True))

    def on_label(label: Optional[str]) -> Any:
        if not label or label not in taxonomy.policies:  # a client may send any value: no KeyError
            return gr.update()
        pol = taxonomy.policies[label]
        return gr.update(choices=pol.actions, value=pol.default_action)

    def act_on_campaign(campaign_id: Optional[float], who: str, label: str, action: str, rationale: str,
                        keep_decided: bool, request: gr.Request, seen: Optional[dict[str, Any]] = None) -> str:
        """Decide the campaign's case in bulk. `seen` is what the page showed (the tab's state; None for
        a trusted in-process caller): refused when the page shows no campaign or another one, or this
        one changed since it was shown. An id typed in the box and applied before any Show decided
        every member unread: the tab's state starts empty, and an empty state skipped the check."""
        if blank_id(campaign_id):
            return "Pick a campaign: a row in the list, or its id in the box."
        try:
            campaign_id = campaign_number(campaign_id)
        except ValueError as exc:
            return f"Warning: Not saved: {exc}"
        try:  # who applies, and that they may, before anything about the campaign is read or said:
            # a request signed out (or a session revoked) learnt the campaign's cases and counts
            principal = actor(app, who, request)
            check_permission(principal, "bulk", f"campaign {campaign_id}")
        except SERVICE_ERRORS as exc:
            refused(app, who, request, f"bulk campaign {campaign_id}", exc)  # audited: who tried what
            return f"Warning: Not saved: {said(exc)}"
        try:
            case_id = campaign_case(store, campaign_id)
            if case_id is None:
                return f"Warning: {no_case_md(campaign_id)}"
        except STORE_ERRORS as exc:
            return f"Warning: Not saved: {said(exc)}"
        if seen is not None and not seen:  # the page showed no campaign (never, or a refusal): no preview read
            return (f"Warning: Not saved: campaign {campaign_id} is not shown: press Show and read what applying "
                    "would do before applying.")
        if seen is not None and (why := changed_since(campaign_id, case_id, seen)) is not None:
            return f"Warning: Not saved: {why}"
        try:
            # Unticked: the case's own default (a campaign decided before leaves its decided members out).
            out = decide(store, taxonomy, case_id, principal, label, action=action or None,
                         rationale=rationale or None, config=app.queues(), existing="skip" if keep_decided else None,
                         members=[m for m, _ in seen["members"]] if seen else None)
        except SERVICE_ERRORS as exc:
            refused(app, who, request, f"bulk campaign {campaign_id}", exc)
            return f"Warning: Not saved: {said(exc)}"
        bulk = out.get("bulk") or {}
        left = [f"{len(bulk[k])} {what}" for k, what in (("skipped_appeal", "settled or pending on appeal"),
                                                         ("skipped_held", "held by other analysts"),
                                                         ("skipped_decided", "already decided")) if bulk.get(k)]
        action = action or taxonomy.policies[label].default_action  # as `decide` filled it in: no blank
        return (f"Saved: {label} / {action} applied to {len(out.get('decision_ids', []))} items of campaign "
                f"{int(campaign_id)}" + (f"; left out {', '.join(left)}" if left else "")
                + (f"; superseded {bulk['superseded']} earlier decisions" if bulk.get("superseded") else "") + ".")

    def shown_again(campaign_id: Optional[float], p: Optional[float], who: str,
                    request: gr.Request) -> tuple[Any, ...]:
        """After a decision: the campaign (its decided count, members, what is left to apply) and
        the list again; left as they were, they said nothing was decided yet."""
        if blank_id(campaign_id):
            return (gr.update(),) * 7
        return (*show_campaign(campaign_id, p, who, request), campaign_table(who, request))

    refresh = gr.Button("Refresh campaigns", size="sm")
    table = gr.Dataframe(headers=LIST_HEADERS, interactive=False, wrap=True, elem_id="wb-campaigns",
                         column_widths=["5%", "6%", "13%", "24%", "13%", "7%", "32%"], max_height=330,
                         label=f"Campaigns, biggest first (times in {zone_name()}); click a row to show it")
    with gr.Row():
        # empty, not 0 (Show said "must be a whole number from 1 ..., not 0" before anything was picked)
        camp_id = gr.Textbox(label="Campaign id", placeholder="pick a row in the list or type an id", max_lines=1,
                             scale=2, elem_id="wb-campaign-id")
        show_btn = gr.Button("Show", scale=1)
    camp_md = gr.Markdown(NOTHING_SHOWN, elem_id="wb-campaign-detail")
    timeline = gr.Image(label="Timeline", type="filepath", height=300, visible=False, elem_id="wb-campaign-timeline")
    members_count = gr.Markdown(elem_id="wb-members-count")
    members = gr.Dataframe(headers=MEMBER_HEADERS, interactive=False, wrap=True, elem_id="wb-members",
                           column_widths=["15%", "13%", "17%", "9%", "46%"], max_height=420)
    with gr.Row():
        prev_btn = gr.Button("◀ Previous members", size="sm")
        page = gr.Number(value=1, precision=0, label="Members page", minimum=1, scale=0, min_width=160)
        next_btn = gr.Button("Next members ▶", size="sm")
    with gr.Row():
        bulk_label = gr.Radio(choices=taxonomy.labels, label="Label for the whole campaign")
        bulk_action = gr.Dropdown(choices=[], label="Action", allow_custom_value=True)
        bulk_rationale = gr.Textbox(label="Rationale")
        bulk_keep = gr.Checkbox(label="Leave out members already decided", value=False)
    bulk_btn = gr.Button("Apply to the whole campaign", variant="stop")
    bulk_out = gr.Markdown()
    seen = gr.State({})  # what the page last showed (`seen_snapshot`), kept on the server: applying checks it

    def pick(rows: Any, name: str, evt: gr.SelectData, request: gr.Request) -> tuple[Any, ...]:
        try:
            cid = evt.row_value[0] if evt.row_value is not None else rows.iloc[evt.index[0]].tolist()[0]
            cid = int(cid)
        except (AttributeError, IndexError, TypeError, ValueError, OverflowError):  # a cell of inf: no crash
            return (gr.update(),) * 7
        return (cid, *show_campaign(cid, 1, name, request))

    def first(cid: Optional[float], name: str, request: gr.Request) -> tuple[Any, ...]:
        return show_campaign(cid, 1, name, request)

    def prev(cid: Optional[float], p: Optional[float], name: str = "",
             request: Optional[gr.Request] = None) -> tuple[Any, ...]:
        return page_of(cid, p, -1, name, request)

    def nxt(cid: Optional[float], p: Optional[float], name: str = "",
            request: Optional[gr.Request] = None) -> tuple[Any, ...]:
        return page_of(cid, p, +1, name, request)

    detail_outs = [camp_md, timeline, members, members_count, page, seen]
    refresh.click(campaign_table, [who], table)
    show_btn.click(first, [camp_id, who], detail_outs).then(applicable, [camp_id, who], [bulk_keep, bulk_btn])
    camp_id.submit(first, [camp_id, who], detail_outs).then(applicable, [camp_id, who], [bulk_keep, bulk_btn])
    table.select(pick, [table, who], [camp_id, *detail_outs]).then(applicable, [camp_id, who], [bulk_keep, bulk_btn])
    prev_btn.click(prev, [camp_id, page, who], detail_outs)
    next_btn.click(nxt, [camp_id, page, who], detail_outs)
    bulk_label.input(on_label, [bulk_label], [bulk_action])
    bulk_btn.click(act_on_campaign, [camp_id, who, bulk_label, bulk_action, bulk_rationale, bulk_keep, seen],
                   bulk_out).then(shown_again, [camp_id, page, who], [*detail_outs, table]).then(
                       applicable, [camp_id, who], [bulk_keep, bulk_btn])
    tab.select(campaign_table, [who], table)
