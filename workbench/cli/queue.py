"""Queue commands: build cases, show KPIs, claim, decide, correct, skip, release, escalate, appeal.

Thin wrappers over `labeling` (cases, claims, decisions, appeals, packets) and `evaluation.ops`:
the web UI calls the same functions. Top-level imports stay light (click and the standard library); the service
modules load inside each command.
"""
from __future__ import annotations

from typing import Any, Optional

import click

from core.hooks import hookimpl

from .common import ID, PngPath, masked_case_rows
from .common import acting as _acting
from .common import as_option as _as
from .common import emit as _emit
from .common import json_option as _json
from .common import user_errors as _user_errors
from .guards import require_read


def _named(p: dict[str, Any], key: str, name: Any = lambda i, _: str(i)) -> str:
    """A preview's count of one kind left out, then the members it names and how many it does not."""
    total, named = p[f"{key}_total"], p[key]
    pairs = named.items() if isinstance(named, dict) else ((i, None) for i in named)
    shown = ", ".join(name(i, who) for i, who in pairs)
    more = f" and {total - len(named)} more" if total > len(named) else ""
    return f"{total}" + (f" ({shown}{more})" if shown else "")


def _print_case(c: dict[str, Any]) -> None:
    item = c.get("item") or {}
    click.echo(f"case {c['id']}  queue {c['queue']}  state {c['state']}  severity {c.get('severity') or '-'}  "
               f"due {c.get('due_at') or '-'}{'  [QA audit]' if c.get('is_audit') else ''}"
               f"{'  [calibration ' + c['calibration_set'] + ']' if c.get('calibration_set') else ''}")
    if c.get("claimed_by"):
        click.echo(f"  claimed by {c['claimed_by']} until {c.get('lease_expires_at')}")
    click.echo(f"  why first: {c.get('priority_reason')}")
    for e in ((c.get("meta") or {}).get("escalations") or [])[:-1]:
        if isinstance(e, dict):
            click.echo(f"  escalated earlier by {e.get('by') or 'system'} at {e.get('at')}: {e.get('reason')}")
    if c.get("escalation_reason"):
        click.echo(f"  escalated: {c['escalation_reason']}")
    if c.get("campaign"):
        click.echo(f"  campaign {c['campaign']['id']}: {c['campaign'].get('members')} members (decided in bulk)")
    elif (c.get("meta") or {}).get("member_of_campaign"):
        click.echo(f"  member of campaign {c['meta']['member_of_campaign']}")
    scores = (c.get("meta") or {}).get("scores") or {}
    if scores:
        click.echo("  model: " + ", ".join(f"{k}={v:.2f}" for k, v in sorted(scores.items(), key=lambda kv: -kv[1])))
    if item:
        click.echo(f"  item {item['id']} ({item.get('surface')}): {item['text'][:200]!r}")
    appeal = (c.get("meta") or {}).get("appeal")
    if appeal:
        d = appeal["decision"]
        click.echo(f"  appeal by {appeal['appellant']}: {appeal['reason']!r}")
        click.echo(f"  appealed decision {d['id']}: {d['label']}/{d['action']} by {d['reviewer']}: {d.get('rationale')!r}")
    for d in c.get("decisions") or []:
        click.echo(f"  decision {d['id']} [{d['kind']}] {d['label']}/{d['action']} by {d['reviewer']}"
                   f"{' (supersedes ' + str(d['supersedes_id']) + ')' if d.get('supersedes_id') else ''}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add the queue commands to the `workbench` group."""

    @cli.group()
    def cases() -> None:
        """Cases: build them from predictions and campaigns, list, show, preview, sweep, rescore.

        \b
        Example:
          workbench cases build --json
          workbench cases list --queue fraud
        """

    @cases.command("build")
    @_json
    @click.pass_obj
    def cases_build(app: Any, as_json: bool) -> None:
        """Turn every scored item and active campaign without a case into one (idempotent).

        \b
        Example:
          workbench cases build --json
        """
        from labeling.cases import build_cases

        with _user_errors():
            summary = build_cases(app.store(), app.taxonomy(), app.queues(), actor=_acting(app), progress=not as_json)
            from ..learning import learning_due, learning_pass

            if learning_due(app):  # issue 18: re-plan the learning share after a build
                summary["learning"] = learning_pass(app, _acting(app))
        _emit(summary, as_json, lambda s: click.echo(
            f"{s['cases']} new cases ({s['item_cases']} items, {s['campaign_cases']} campaigns): "
            f"{s['audit']} QA audit, {s['escalated']} escalated, {s['calibration_copies']} calibration copies; "
            f"{s['rescored']} waiting cases re-planned for a newer model\n"
            + "  ".join(f"{q}={n}" for q, n in sorted(s["by_queue"].items()))))

    @cases.command("list")
    @click.option("--queue", help="Only this queue.")
    @click.option("--state", help="Only this state (open, claimed, decided, escalated, appealed).")
    @click.option("--policy", help="Only cases whose predicted policy is this.")
    @click.option("--surface", help="Only items of this surface (sms, post, ...).")
    @click.option("--audit", "audit_only", is_flag=True, help="Only QA-audit cases.")
    @click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0), help="How many (0 = all).")
    @_json
    @click.pass_obj
    def cases_list(app: Any, queue: Optional[str], state: Optional[str], policy: Optional[str],
                   surface: Optional[str], audit_only: bool, limit: int, as_json: bool) -> None:
        """List cases, best priority first, with the one-line reason for their rank.

        \b
        Example:
          workbench cases list --queue fraud --state open --limit 5
        """
        require_read(app, "cases")
        from labeling.cases import list_cases

        _check_state(state)
        _check_filters(app, queue, policy)
        rows = _peers_named(app, _acting(app), masked_case_rows(app, list_cases(
            app.store(), queue=queue, state=state, policy=policy, surface=surface, audit_only=audit_only,
            limit=limit or None)))
        _emit(rows, as_json, lambda rs: [click.echo(
            f"{r['id']:>7} {r['queue']:<16} {r['state']:<9} {r['severity'] or '-':<3} "
            f"{'A' if r['is_audit'] else ' '} {r['priority_reason']}") for r in rs])

    @cases.command("show")
    @click.argument("case_id", type=ID)
    @click.option("--reveal", is_flag=True, help="Show the text unmasked (audited; needs --as or a token).")
    @click.option("--as", "analyst", metavar="NAME", help="Who reveals the text (recorded in the audit log).")
    @_json
    @click.pass_obj
    def cases_show(app: Any, case_id: int, reveal: bool, analyst: Optional[str], as_json: bool) -> None:
        """Everything about a case: item (masked if sensitive), model scores, campaign, decisions, appeal.

        \b
        Examples:
          workbench cases show 42
          workbench cases show 42 --reveal --as lead      # unmasked; the reveal is audited
        """
        from labeling.packets import show_case

        if reveal and not analyst and not app.token:
            raise click.UsageError("--reveal needs --as NAME or a token (the reveal is audited)")
        # whoever runs it sees what the review screen shows them: a calibration copy blind, unless a lead
        with _user_errors():
            viewer = app.require("read", f"case {case_id}", analyst)
            c = _peers_named(app, viewer, [show_case(app.store(), case_id, app.review(),
                                                     reveal_by=viewer if reveal else None, taxonomy=app.taxonomy(),
                                                     viewer=viewer)])[0]
        _emit(c, as_json, _print_case)
        if reveal:
            _budget_note(app, viewer)

    @cases.command("preview")
    @click.argument("case_id", type=ID)
    @click.option("--existing", type=click.Choice(["supersede", "skip"]), default=None,
                  help="As `decide --existing`: what the decision would do to members a human already decided.")
    @click.option("--show", "shown", type=click.IntRange(0, 1000), default=20, show_default=True,
                  help="Members named for each kind left out (the counts are always the whole campaign's).")
    @_as
    @_json
    @click.pass_obj
    def cases_preview(app: Any, case_id: int, existing: Optional[str], shown: int, analyst: str,
                      as_json: bool) -> None:
        """What deciding a campaign case would do: members, those held by others, those already decided.

        Counted in the store whatever the campaign's size; of each kind of member left out, the
        first --show are named.

        \b
        Example:
          workbench cases preview 97 --as lead
        """
        from labeling.bulk_preview import preview

        with _user_errors():
            p = preview(app.store(), case_id, analyst, existing=existing, config=app.queues(), shown=shown)
        _emit(p, as_json, lambda _: click.echo(
            f"case {case_id}: {p['members']} member(s); will decide {p['will_decide']}; already decided, to be "
            f"superseded: {p['already_decided']} {p['already_decided_labels'] or ''}; left out: "
            f"held by other analysts {_named(p, 'held_by_others', lambda i, who: f'{i} ({who})')}; "
            f"settled or pending by appeal {_named(p, 'skipped_appeal')}; "
            f"decided (--existing skip) {_named(p, 'skipped_decided')}"))

    @cases.command("rescore")
    @_json
    @click.pass_obj
    def cases_rescore(app: Any, as_json: bool) -> None:
        """Bring every open case onto the champion's prediction (what a promotion does after it).

        For a promotion made with --no-rescore, or one whose rescoring was cut short: scores the
        items behind open cases with the champion, re-plans waiting cases, refreshes campaign,
        claimed and escalated ones, re-plans the learning share. `workbench serve` does this by
        itself when it starts.

        \b
        Example:
          workbench cases rescore --json
        """
        from labeling.rescore import rescore_open_cases

        with _user_errors():
            out = rescore_open_cases(app.store(), app.taxonomy(), models_config=app.models(), queue_config=app.queues(),
                                     actor=_acting(app), progress=not as_json)
        _emit(out, as_json, lambda o: click.echo(
            "no champion: nothing to rescore" if o["champion"] is None else
            f"open cases on {o['champion']}: {o['scored']} items scored, {o['replanned']} waiting cases re-planned, "
            f"{o['refreshed']} refreshed, {o['stale_left']} still stale"))

    @cases.command("sweep")
    @_json
    @click.pass_obj
    def cases_sweep(app: Any, as_json: bool) -> None:
        """Return lapsed leases, escalate cases whose SLA is about to lapse, refresh priorities.

        Run every few minutes (cron): the SLA-urgency term of the priority grows with time.

        \b
        Example:
          workbench cases sweep --json
        """
        from ..learning import sweep_once  # the sweep, then the learning share re-planned (issue 18)

        with _user_errors():
            out = sweep_once(app, _acting(app), progress=not as_json)
        _emit(out, as_json, lambda o: click.echo(
            f"leases returned {o['leases_expired']}, SLA escalations {o['sla_escalated']}, "
            f"priorities refreshed {o['reprioritised']}"))

    @cli.command("queues")
    @click.option("--queue", help="Only this queue.")
    @click.option("--policy", help="Only cases whose predicted policy is this.")
    @click.option("--surface", help="Only items of this surface.")
    @click.option("--plot", "plot_path", type=PngPath(),
                  help="Also write a PNG of backlog per queue and SLA compliance per tier.")
    @click.option("--days", type=click.IntRange(min=1, max=3650),
                  help="SLAs, times, decisions and rates over the last N days only (backlog and cases: every case).")
    @_json
    @click.pass_obj
    def queues_cmd(app: Any, queue: Optional[str], policy: Optional[str], surface: Optional[str],
                   plot_path: Optional[str], days: Optional[int], as_json: bool) -> None:
        """Operations KPIs: volume and backlog per queue, SLA compliance per tier, speed, rework, appeals.

        \b
        Example:
          workbench queues
          workbench queues --policy scam --json | jq .sla
          workbench queues --plot queues.png
          workbench queues --days 30
        """
        import datetime as dt

        from core.schema import utcnow
        from evaluation.ops import ops_kpis, plot_kpis

        _check_filters(app, queue, policy)
        now = utcnow()
        with _user_errors():
            k = ops_kpis(app.store(), queue=queue, policy=policy, surface=surface, config=app.queues(),
                         actor=_acting(app), now=now, since=now - dt.timedelta(days=days) if days else None)
        if plot_path:
            k["plot"] = plot_kpis(k, plot_path)
        _emit(k, as_json, _print_kpis)

    @cli.command("exposure")
    @_json
    @click.pass_obj
    def exposure_cmd(app: Any, as_json: bool) -> None:
        """Severe reveals per analyst this shift against the budget (leads: analyst_quality); no content.

        \b
        Example:
          workbench exposure --json
        """
        from labeling.wellbeing import team_exposure

        with _user_errors():
            rows = team_exposure(app.store(), _acting(app), app.review())
        _emit(rows, as_json, lambda rs: [click.echo(
            f"{r['analyst']:<20} severe {r['severe']:>4}/{r['budget']:<4} revealed {r['revealed']:>5}"
            f"{'  OVER BUDGET' if r['over_budget'] else ''}") for r in rs] or click.echo("no reveals this shift"))

    @cli.command("next")
    @click.option("--queue", "-q", required=True, help="Queue to claim from.")
    @_as
    @click.option("--lease", type=int, help="Lease in seconds (default: lease_seconds in queues.yaml).")
    @_json
    @click.pass_obj
    def next_cmd(app: Any, queue: str, analyst: str, lease: Optional[int], as_json: bool) -> None:
        """Claim the next case of a queue (atomic, with a lease); exit 3 when the queue is empty.

        \b
        Example:
          workbench next --queue fraud --as alice --json
        """
        from labeling.claims import next_case
        from labeling.packets import show_case

        with _user_errors():
            c = next_case(app.store(), analyst, queue, lease_seconds=lease, config=app.queues(), detail=False)
            if c is not None:
                c = _peers_named(app, analyst, [show_case(app.store(), c["id"], app.review(), blind=True,
                                                          viewer=analyst)])[0]
        if c is None:
            _emit({"case": None, "queue": queue}, as_json, lambda _: click.echo(f"queue {queue} is empty"))
            raise SystemExit(3)
        _emit(c, as_json, _print_case)

    @cli.command("decide")
    @click.argument("case_id", type=ID)
    @click.option("--label", required=True, help="Policy label (benign, spam, scam, hate, harassment).")
    @click.option("--action", help="Enforcement action (default: the policy's default action).")
    @click.option("--severity", help="Severity tier (default: the policy's tier).")
    @click.option("--policy-ref", help="Policy reference (default: the policy's).")
    @click.option("--rationale", help="Why; required to override the model or on an escalated case.")
    @click.option("--existing", type=click.Choice(["supersede", "skip"]), default=None,
                  help="Campaign cases: members a human already decided get a superseding decision, or are left "
                       "out (default: skip on a campaign decided before, else supersede).")
    @_as
    @_json
    @click.pass_obj
    def decide_cmd(app: Any, case_id: int, label: str, action: Optional[str], severity: Optional[str],
                   policy_ref: Optional[str], rationale: Optional[str], existing: Optional[str], analyst: str,
                   as_json: bool) -> None:
        """Decide a case: validated against the taxonomy, audited, case closed (campaign: bulk).

        \b
        Examples:
          workbench decide 42 --label scam --action block_sender --as alice
          workbench decide 43 --label benign --rationale "a bank's real notice" --as alice --json
        """
        from labeling.decisions import decide

        with _user_errors():
            out = decide(app.store(), app.taxonomy(), case_id, analyst, label, action=action, severity=severity,
                         policy_ref=policy_ref, rationale=rationale, config=app.queues(), existing=existing)
        _emit(_peers_named(app, analyst, [out])[0], as_json, lambda o: click.echo(
            f"case {o['id']} decided: {label} ({o['kind']}, {len(o['decision_ids'])} decision(s)"
            f"{', overrides the model' if o['is_override'] else ''}"
            f"{', closed ' + str(len(o['closed_member_cases'])) + ' member cases' if o['closed_member_cases'] else ''})"
            + _bulk_note(o.get("bulk") or {})))

    @cli.command("correct")
    @click.argument("decision_id", type=ID)
    @click.option("--label", required=True, help="The corrected policy label.")
    @click.option("--action", help="Enforcement action (default: the policy's default action).")
    @click.option("--rationale", required=True, help="Why the earlier decision was wrong.")
    @_as
    @_json
    @click.pass_obj
    def correct_cmd(app: Any, decision_id: int, label: str, action: Optional[str], rationale: str,
                    analyst: str, as_json: bool) -> None:
        """Correct a decision: a new decision superseding it (decisions are append-only).

        \b
        Example:
          workbench correct 17 --label spam --action remove --rationale "advert, not fraud" --as lead
        """
        from labeling.decisions import correct

        with _user_errors():
            out = correct(app.store(), app.taxonomy(), decision_id, analyst, label, rationale, action=action)
        _emit(out, as_json, lambda o: click.echo(f"decision {o['decision_id']} supersedes {o['supersedes_id']}"))

    @cli.command("skip")
    @click.argument("case_id", type=ID)
    @click.option("--reason", help="Why (e.g. language, conflict of interest).")
    @_as
    @_json
    @click.pass_obj
    def skip_cmd(app: Any, case_id: int, reason: Optional[str], analyst: str, as_json: bool) -> None:
        """Give a claimed case back; it is not offered to you again.

        \b
        Example:
          workbench skip 42 --as alice --reason "not my language"
        """
        from labeling.claims import skip

        with _user_errors():
            out = skip(app.store(), case_id, analyst, reason=reason, config=app.queues())
            out = _peers_named(app, analyst, [out])[0]  # the item's decisions: peers' names
        _emit(out, as_json, lambda o: click.echo(f"case {o['id']} skipped, back in {o['queue']}"))

    @cli.command("release")
    @click.argument("case_id", type=ID)
    @_as
    @_json
    @click.pass_obj
    def release_cmd(app: Any, case_id: int, analyst: str, as_json: bool) -> None:
        """Give a claimed case back to its queue (anyone may claim it again).

        \b
        Example:
          workbench release 42 --as alice
        """
        from labeling.claims import release

        with _user_errors():
            out = release(app.store(), case_id, analyst, config=app.queues())
            out = _peers_named(app, analyst, [out])[0]  # the item's decisions: peers' names
        _emit(out, as_json, lambda o: click.echo(f"case {o['id']} released to {o['queue']}"))

    @cli.command("escalate")
    @click.argument("case_id", type=ID)
    @click.option("--reason", required=True, help="Why it needs the escalation team.")
    @click.option("--severity", help="Raise the severity tier (e.g. P0).")
    @_as
    @_json
    @click.pass_obj
    def escalate_cmd(app: Any, case_id: int, reason: str, severity: Optional[str], analyst: str,
                     as_json: bool) -> None:
        """Move a case to the escalation queue with the reason recorded, and file its packet.

        The packet (summary, evidence, timeline, linked campaign, recommended next step) is
        written as JSON under packets/ in the data directory; its path is in the audit log.

        \b
        Example:
          workbench escalate 42 --reason "names a school and a date" --severity P0 --as alice
        """
        from labeling.packets import escalate_with_packet

        with _user_errors():
            out = escalate_with_packet(app.store(), app.taxonomy(), case_id, analyst, reason, app.queues(),
                                       app.review(), app.campaigns(), severity=severity)
        _emit(dict(out, case=_peers_named(app, analyst, [out["case"]])[0]), as_json, lambda o: click.echo(
            f"case {o['case']['id']} escalated ({o['case']['severity']}, due {o['case']['due_at']}); "
            f"packet: {o['packet_path']}\n{o['packet']['summary']}"))

    @cli.command("appeal")
    @click.argument("item_id")
    @click.option("--reason", required=True, help="The appellant's reason.")
    @_as
    @_json
    @click.pass_obj
    def appeal_cmd(app: Any, item_id: str, reason: str, analyst: str, as_json: bool) -> None:
        """Appeal an item's decision: a case in the appeals queue with the decision and evidence.

        \b
        Example:
          workbench appeal sms_spam:812 --reason "this was my bank" --as user-4411
        """
        from labeling.appeals import appeal

        with _user_errors():
            out = appeal(app.store(), item_id, analyst, reason, app.taxonomy(), config=app.queues())
            out = _peers_named(app, analyst, [out])[0]  # the appealed decision's reviewer, a peer's claim
        _emit(out, as_json, lambda o: click.echo(f"appeal case {o['id']} opened in {o['queue']} (due {o['due_at']})"))

    @cli.group("appeals")
    def appeals() -> None:
        """Appeals: list and resolve.

        \b
        Example:
          workbench appeals list --json
        """

    @appeals.command("resolve")
    @click.argument("case_id", type=ID)
    @click.option("--outcome", type=click.Choice(["confirm", "reverse"]), required=True,
                  help="confirm: the decision stands; reverse: the appeal is upheld.")
    @click.option("--rationale", required=True, help="Why.")
    @click.option("--label", help="New label for a reversal (default: benign).")
    @click.option("--action", help="New action for a reversal (default: the label's default action).")
    @_as
    @_json
    @click.pass_obj
    def appeals_resolve(app: Any, case_id: int, outcome: str, rationale: str, label: Optional[str],
                        action: Optional[str], analyst: str, as_json: bool) -> None:
        """Confirm or reverse an appealed decision (either way a new, superseding decision).

        \b
        Example:
          workbench appeals resolve 97 --outcome reverse --rationale "genuine bank notice" --as bob
        """
        from labeling.appeals import resolve_appeal

        with _user_errors():
            out = resolve_appeal(app.store(), app.taxonomy(), case_id, analyst, outcome, rationale,
                                 label=label, action=action, config=app.queues())
        _emit(out, as_json, lambda o: click.echo(
            f"appeal case {o['id']}: {'upheld, decision reversed' if o['upheld'] else 'decision confirmed'} "
            f"(decision {o['decision_id']})"))

    @appeals.command("list")
    @click.option("--state", default="open", show_default=True, help="open, claimed or decided.")
    @click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0), help="How many (0 = all).")
    @_json
    @click.pass_obj
    def appeals_list(app: Any, state: str, limit: int, as_json: bool) -> None:
        """Appeal cases, most urgent first.

        \b
        Example:
          workbench appeals list --json
        """
        require_read(app, "appeals")
        from labeling.cases import list_cases

        _check_state(state)
        with _user_errors():
            rows = _peers_named(app, _acting(app), masked_case_rows(app, list_cases(
                app.store(), queue=app.queues().appeals_queue, state=state, limit=limit or None)))
        _emit(rows, as_json, lambda rs: [click.echo(
            f"{r['id']:>7} {r['state']:<8} item {r['item_id']}  due {r['due_at']}") for r in rs])


def _peers_named(app: Any, viewer: Any, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Case views with the analysts' names in them as `viewer` may read them (the one rule,
    `labeling.reviewer_names`): a lead reads names, anyone else a peer's pseudonym."""
    from labeling.reviewer_names import name_case_view, namer_for

    namer = namer_for(app.store(), viewer)
    return [name_case_view(v, namer) for v in views]


def _budget_note(app: Any, who: Any) -> None:
    """After a reveal on the command line, the break the review screen offers (on stderr): past
    the shift's exposure budget the screen shows one, and `cases show --reveal` said nothing."""
    from labeling.wellbeing import exposure

    settings = app.review()
    expo = exposure(app.store(), who, settings)
    if expo["over_budget"]:
        milder = f", or switch to the {settings.break_queue} queue" if settings.break_queue else ""
        click.echo(f"note: {expo['severe']} severe reveals in the last {expo['shift_hours']:g} hours "
                   f"(budget {expo['budget']}): take a break{milder}", err=True)


def _check_state(state: Optional[str]) -> None:
    """A misspelt --state would list nothing, as if no case were in it: name the states instead."""
    from core.schema import CASE_STATES

    if state is not None and state not in CASE_STATES:
        raise click.BadParameter(f"{state!r} is not a case state ({', '.join(CASE_STATES)})", param_hint="'--state'")


def _check_filters(app: Any, queue: Optional[str], policy: Optional[str]) -> None:
    """A misspelt --queue or --policy would list nothing (or zero KPIs), as if it were empty: name
    the known ones instead, as `next` does for a queue."""
    with _user_errors():
        queues, labels = list(app.queues().queues), list(app.taxonomy().labels)
    if queue is not None and queue not in queues:
        raise click.BadParameter(f"unknown queue {queue!r} (known: {', '.join(queues)})", param_hint="'--queue'")
    if policy is not None and policy not in labels:
        raise click.BadParameter(f"unknown policy {policy!r} (known: {', '.join(labels)})", param_hint="'--policy'")


def _bulk_note(bulk: dict[str, Any]) -> str:
    """What a campaign decision left out or superseded, said plainly."""
    parts = []
    if bulk.get("skipped_held"):
        parts.append(f"left out {len(bulk['skipped_held'])} member(s) another analyst holds: "
                     + ", ".join(bulk["skipped_held"][:10]))
    if bulk.get("superseded"):
        parts.append(f"superseded {bulk['superseded']} earlier human decision(s)")
    if bulk.get("skipped_decided"):
        parts.append(f"left out {len(bulk['skipped_decided'])} member(s) already decided")
    return "".join(f"\n  {p}" for p in parts)


def _print_kpis(k: dict[str, Any]) -> None:
    def pct(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.1%}"

    def mins(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.1f} min"

    click.echo(f"cases {k['cases']}, backlog {k['backlog']}, overdue {k['overdue']}  (as of {k['as_of']})")
    for q, row in k["queues"].items():
        extra = " ".join(f"{s}={n}" for s, n in row.items() if s not in ("total", "backlog"))
        click.echo(f"  {q:<16} total {row['total']:>6}  backlog {row['backlog']:>6}  {extra}")
    click.echo("SLA compliance: " + ", ".join(
        f"{t} {pct(v['rate'])} ({v['met']}/{v['met'] + v['missed']}, {v['pending']} pending)" for t, v in k["sla"].items()))
    click.echo(f"median time to first action {mins(k['median_minutes_to_first_action'])}, "
               f"to resolution {mins(k['median_minutes_to_resolution'])}")
    click.echo(f"decisions {k['decisions']}, override {pct(k['override_rate'])}, rework {pct(k['rework_rate'])}, "
               f"escalation {pct(k['escalation_rate'])}, QA audit share {pct(k['audit_share'])}, "
               f"appeals {k['appeals']} (upheld {pct(k['appeals_upheld_rate'])}, "
               f"within SLA {pct((k.get('appeals_sla') or {}).get('rate'))})")
    if k.get("plot"):
        click.echo(f"plot: {k['plot']}")
    if k["resolved_per_analyst"]:
        click.echo("resolved per analyst: " + ", ".join(f"{a}={n}" for a, n in k["resolved_per_analyst"].items()))
    elif k.get("resolved_per_analyst_refused"):
        click.echo(f"resolved per analyst: not shown ({k['resolved_per_analyst_refused']})")
