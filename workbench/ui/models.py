"""The Models tab: the registry beside the gate's verdicts, each comparison report, and a
promotion that goes through the same gate as `workbench models promote`.

Reading is `evaluation.model_overview` (the audit log's `model.gate` events, so the tab and the
CLI tell the same history); promoting is `evaluation.promotion.promote_through_gate`: the
version is compared with the champion on the same held-out human labels and promoted only when
the gate passes, or forced with a reason by someone allowed `force_promote` (a rollback), one
promotion at a time (`workbench.learning.promote_now`). The open cases are then rescored in the
background (`app.rescore_job`, as serve's automatic retrain does); the status line follows that
job. **Retrain a challenger** starts `retrain_and_gate` in the background
(`workbench.learning.start_retrain`, one at a time), its steps and verdict in the same status
line. Refusals are shown beside the button, in the service's words (its command
line flags put as the tab's Force box and Reason field), and a PermissionDenied is in the audit
log (`tab_access.refused`). The header checks the champion's model
files (`models.registry.verify_artifact`) and says so plainly when they are missing or changed.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import gradio as gr

from core.hooks import PermissionDenied
from core.text import text_error
from evaluation.model_overview import comparison_report, gate_verdicts, latest_verdict_text, model_overview, verdict_word
from evaluation.promotion_report import plot_gate_history
from models.base import ModelError

from .format import inert_markdown, local_time, md_escape, short, zone_name
from .review_hold import STORE_ERRORS
from .role_controls import held, may
from .session import actor
from .tab_access import one_line, refused, said

if TYPE_CHECKING:  # pragma: no cover
    from ..context import AppContext

log = logging.getLogger(__name__)
VERSION_HEADERS = ["version", "kind", "role", "trained", "promoted", "validation macro F1", "latest gate verdict"]
VERDICT_HEADERS = ["when", "challenger", "compared with", "verdict", "metric", "gate's reason", "by"]


def version_rows(models: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for m in models:
        f1 = (m.get("metrics") or {}).get("macro_f1")
        v = m.get("verdict")
        promoted = f"{local_time(m['promoted_at'])} by {m.get('promoted_by') or '—'}" if m.get("promoted_at") else "—"
        rows.append([m["id"], m["kind"], m["role"], local_time(m["created_at"]), promoted,
                     f"{f1:.3f}" if isinstance(f1, (int, float)) else "—",
                     latest_verdict_text(v, local_time)])
    return rows


def verdict_rows(verdicts: list[dict[str, Any]]) -> list[list[Any]]:
    return [[local_time(v["at"]), v["challenger"], v["champion"] or "—", verdict_word(v), v["metric"] or "—",
             short(v["force_reason"] if v["forced"] else v["reason"], 160)
             + "".join(f" | warning: {w}" for w in v["warnings"]), v["actor"]] for v in verdicts]


# The tab's own controls, named as a refusal names them.
ROLLBACK = "pick a version, tick Force over the gate, give a Reason and press Promote through the gate"


def tab_words(message: str) -> str:
    """A promotion refusal in this tab's words: the CLI's `--force` / `--reason` (the service
    speaks to the command line) become the Force box and the Reason field beside the button."""
    text = re.sub(r'(?: with)? `?workbench models promote VERSION --force --reason "[^"]*"`?', ": " + ROLLBACK,
                  str(message))
    text = re.sub(r"--force needs a --reason", "forcing needs a reason: tick Force over the gate and give a Reason",
                  text)
    return text.replace("--force", "Force over the gate").replace("--reason", "Reason")


_CHECKED: dict[tuple[str, str], tuple[Any, Optional[str]]] = {}  # (data dir, version): (files' stat, problem)


def _files_stat(folder: Path) -> Optional[tuple[Any, ...]]:
    """Each file's path, size and modification time under `folder` (None when it cannot be read)."""
    try:
        return tuple(sorted((p.relative_to(folder).as_posix(), s.st_size, s.st_mtime_ns)
                            for p in folder.rglob("*") for s in (p.lstat(),)))
    except OSError:
        return None


def champion_problem(store: Any, row: dict[str, Any]) -> Optional[str]:
    """Why the champion's model files cannot be used (`verify_artifact`: missing, changed, outside
    the data directory), or None. The digest is recomputed only when a file's size or time
    changed since the last check, so a large artifact is not re-read on every refresh."""
    from models.registry import RegistryError, artifact_folder, verify_artifact

    key = (str(store.data_dir), str(row.get("id")))
    try:
        folder = artifact_folder(store, row)
        stat = (row.get("artifact_sha256"), _files_stat(folder)) if folder.is_dir() else None
    except RegistryError:
        stat = None
    if stat is not None and stat[1] is not None and key in _CHECKED and _CHECKED[key][0] == stat:
        return _CHECKED[key][1]
    try:
        verify_artifact(store, row)
        problem = None
    except (RegistryError, OSError) as exc:
        problem = str(exc)
    if stat is not None and stat[1] is not None:
        _CHECKED[key] = (stat, problem)
    return problem


def champion_line(store: Any, models: list[dict[str, Any]]) -> str:
    """The header's first sentence: the champion, and a plain warning when its files fail their check."""
    champ = next((m for m in models if m["role"] == "champion"), None)
    if champ is None:
        return "No champion yet."
    problem = champion_problem(store, champ)
    if problem is None:
        return f"Champion: **{md_escape(champ['id'])}**."
    return (f"Champion: **{md_escape(champ['id'])}**. **Warning: the champion's model files are missing or "
            f"changed, so it cannot score**: {md_escape(problem)}. To roll back, {md_escape(ROLLBACK)}.")


def rescore_line(app: "AppContext") -> str:
    """The background rescoring after a promotion, as the API's `GET /api/v1/jobs/rescore` reports it."""
    from workbench.learning import rescore_state

    s = rescore_state(app.rescore_job)
    if s["state"] == "none":
        return ""
    if s["state"] == "running":
        return f" Rescoring open cases: {s['done']} of {s['total']} items scored."
    if s["state"] == "failed":
        return f" Rescoring open cases failed after {s['done']} of {s['total']}: {md_escape(s['error'])}."
    r = s["result"] or {}
    return (f" Rescoring open cases finished: {r.get('scored', 0)} scored, {r.get('stale_left', 0)} still stale.")


def retrain_line(app: "AppContext") -> str:
    """The latest retrain started here (`workbench.learning.retrain_state`), in one line."""
    from workbench.learning import retrain_state

    s = retrain_state(app.retrain_job)
    if s["state"] == "none":
        return ""
    since = f"started {local_time(s['started_at'])} by {md_escape(s['by'])}"
    if s["state"] == "running":
        return f" Retrain running ({since}): {md_escape(s['steps'][-1] if s['steps'] else 'starting')}."
    if s["state"] == "failed":
        return f" Retrain failed ({since}): {md_escape(s['error'])}."
    r = s["result"]
    what = "promoted" if r["promoted"] else "not promoted"
    return f" Retrain finished ({since}): **{md_escape(r['challenger'])} {what}**; gate: {md_escape(r['gate'])}."


def auto_retrain_line(app: "AppContext") -> str:
    """Where the automatic retrain stands when models.yaml turns it on (`retrain_due`, without the
    drift report: cheap), e.g. that the last one failed and when it tries again."""
    from evaluation.promotion import retrain_due

    if not app.models().auto_retrain.enabled:
        return ""
    due = retrain_due(app.store(), app.models())
    return f" Automatic retrain {'due' if due['due'] else 'waiting'}: {md_escape(due['reason'])}."


def gate_history_png(app: "AppContext", verdicts: list[dict[str, Any]]) -> Optional[str]:
    """The gate-over-time PNG of `verdicts`, written whole before it replaces the previous one
    (two viewers refreshing at once never read a half-written file). Drawing itself is serialised
    by `core.plotting` (pyplot is not thread-safe, and Gradio runs callbacks in a pool). None when
    it cannot be written (a full disk, a `plots` that is no folder): the tables still show."""
    tmp = None
    try:
        final = app.store().path("plots", "gate-history.png")
        tmp = final.with_name(f".gate-history-{uuid.uuid4().hex}.png")
        if plot_gate_history(tmp, verdicts) is None:
            return None
        os.replace(tmp, final)
    except OSError as exc:
        log.warning("the gate history plot was not written: %s", exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        return None
    return str(final)


def picked_version(version: Any) -> str:
    """The Version box's value once it can name a model version: a client may send any text
    (a lone surrogate failed in the store's driver, a NUL or a number read as the store failing),
    refused in one line (RegistryError) before any query."""
    from models.registry import RegistryError, check_version_name

    check_version_name(version)
    if (bad := text_error(version, "the version")) is not None:
        raise RegistryError(f"not a model version name: {bad} (pick one from the list)")
    return version


def build_models_tab(app: "AppContext", tab: gr.Tab, who: Optional[gr.Textbox] = None) -> None:
    """Lay out the Models tab and wire it; `who` is the Review tab's analyst box. It loads each
    time `tab` is opened (not on page load: see `build_campaigns_tab`)."""
    who_in = who if who is not None else gr.State("")

    def listing(name: str, request: gr.Request) -> tuple[Any, ...]:
        try:
            principal = actor(app, name or "", request)
            models = model_overview(app.store(), principal)
            verdicts = gate_verdicts(app.store(), principal)
        except (PermissionDenied, *STORE_ERRORS) as exc:
            refused(app, name, request, "read models", exc)  # audited: who tried what
            return f"Not shown: {said(exc, 'press Refresh')}", [], [], gr.update(choices=[]), None
        head = champion_line(app.store(), models) + retrain_line(app) + auto_retrain_line(app) + rescore_line(app)
        choices = [(f"{m['id']} ({m['role']})", m["id"]) for m in models]
        history = gate_history_png(app, verdicts)
        return head, version_rows(models), verdict_rows(verdicts), gr.update(choices=choices), history

    def report(version: Optional[str], name: str, request: gr.Request) -> tuple[Any, Any]:
        if not version:
            return "Pick a version to read its comparison with the champion it met.", gr.update(visible=False)
        try:
            r = comparison_report(app.store(), actor(app, name or "", request), picked_version(version))
        except (PermissionDenied, ModelError, OSError, *STORE_ERRORS) as exc:  # OSError: the report unreadable
            refused(app, name, request, f"read the report of model {version}", exc)
            return f"Not shown: {said(exc, 'pick the version again')}", gr.update(value=None, visible=False)
        # The report file is Markdown with names and reasons in it: shown inert (no image, whose
        # relative path would be fetched from the server's root, nor tag, link or live URL).
        return ((inert_markdown(r["markdown"]) if r["markdown"] else f"*{md_escape(r['note'])}*"),
                gr.update(value=r["png"], visible=r["png"] is not None))

    def promote(version: Optional[str], force: bool, reason: str, name: str, request: gr.Request) -> tuple[Any, ...]:
        from workbench.learning import promote_now

        if not version:
            return ("**Pick a version first.**", *listing(name, request), gr.update(), gr.update())
        try:
            out = promote_now(app, picked_version(version), actor(app, name or "", request), force=bool(force),
                              reason=reason or "")
        except (PermissionDenied, ModelError, OSError, *STORE_ERRORS) as exc:  # OSError: the report not written
            refused(app, name, request, f"{'force ' if force else ''}promote model {version}", exc)
            return (f"**Not promoted:** {md_escape(tab_words(one_line(exc)))}", *listing(name, request),
                    gr.update(), gr.update())
        what = ("forced over the gate" if out["forced"] else "promoted through the gate" if out["promoted"]
                else "not promoted")
        line = f"**{md_escape(version)}: {what}.** Gate: {md_escape(out['gate']['reason'])}"
        md, png = report(version, name, request)
        return (line, *listing(name, request), md, png)

    def retrain(name: str, request: gr.Request) -> tuple[Any, ...]:
        from workbench.learning import start_retrain

        try:
            start_retrain(app, actor(app, name or "", request))
        except (PermissionDenied, ModelError, RuntimeError, *STORE_ERRORS) as exc:  # RuntimeError: no thread
            refused(app, name, request, "retrain a challenger", exc)
            return (f"**Not started:** {md_escape(tab_words(one_line(exc)))}", *listing(name, request))
        return ("**Retrain started**: a challenger on the base data and the human labels, then the gate. "
                "Refresh for its steps and verdict.", *listing(name, request))

    def gate_note(png: Any) -> tuple[Any, Any]:
        """The gate-history plot, or in its place a line saying why there is none (it was a blank
        image placeholder): no verdict yet, or the plot could not be drawn."""
        if png:
            return gr.update(value="", visible=False), gr.update(visible=True)
        return (gr.update(value="*No gate history to plot yet: it appears after the first retrain or gated promotion "
                                "(the verdicts table above lists any there are).*", visible=True),
                gr.update(visible=False))

    def picked(version: Optional[str]) -> Any:
        """A version picked: the last "Pick a version first." (or a result about another version) goes."""
        return "" if version else gr.update()

    def controls(name: str, request: gr.Request) -> tuple[Any, ...]:
        """Retrain and Promote as this session's role may use them (role_controls), when the tab opens."""
        train = may(app, name, request, "train", "Retrain a challenger")
        promote_ = may(app, name, request, "promote", "Promote")
        note = " ".join(n for n in (train, promote_) if n) or None
        retrain_up, note_up = held(train, 1)[0], held(note, 0)[0]
        return (retrain_up, *held(promote_, 3)[:3], note_up)

    # The controls and their message at the top, above the fold at 1366x768: a refusal printed
    # below the tables (y 800) looked like nothing happened.
    with gr.Row():
        head = gr.Markdown(elem_id="wb-models-head")
        retrain_btn = gr.Button("Retrain a challenger", size="sm", scale=0, min_width=170, elem_id="wb-model-retrain")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="wb-models-refresh")
    with gr.Row(equal_height=True):
        pick = gr.Dropdown(choices=[], label="Version", elem_id="wb-model-pick", scale=2)
        reason = gr.Textbox(label="Reason (kept in the audit log; required to force)", scale=3,
                            elem_id="wb-model-reason")
        force = gr.Checkbox(label="Force over the gate (a rollback; needs force_promote)", value=False, scale=1,
                            elem_id="wb-model-force")
        promote_btn = gr.Button("Promote through the gate", variant="primary", scale=1, elem_id="wb-model-promote")
    access = gr.Markdown(visible=False, elem_id="wb-models-access")
    result = gr.Markdown(elem_id="wb-model-result")
    versions = gr.Dataframe(headers=VERSION_HEADERS, interactive=False, wrap=True, elem_id="wb-models",
                            column_widths=["28%", "9%", "10%", "13%", "20%", "9%", "11%"], max_height=260,
                            label=f"Model versions, newest first (times in {zone_name()})")
    verdicts = gr.Dataframe(headers=VERDICT_HEADERS, interactive=False, wrap=True, elem_id="wb-gate-verdicts",
                            column_widths=["11%", "22%", "22%", "9%", "7%", "22%", "7%"], max_height=220,
                            label="Gate verdicts, newest first: every retrain and gated promotion")
    history = gr.Image(label="The gate over time: challenger - champion with its interval, and the held-out labels "
                             "it stood on", show_label=False, type="filepath", elem_id="wb-gate-history", height=260)
    history_note = gr.Markdown(visible=False, elem_id="wb-gate-history-note")
    report_png = gr.Image(label="Reliability on the test split, and challenger - champion per policy with intervals",
                          show_label=False, type="filepath", elem_id="wb-model-png", height=320, visible=False)
    report_md = gr.Markdown("Pick a version to read its comparison with the champion it met.",
                            elem_id="wb-model-report")

    outs = [head, versions, verdicts, pick, history]
    refresh.click(listing, [who_in], outs).then(gate_note, [history], [history_note, history])
    tab.select(listing, [who_in], outs).then(gate_note, [history], [history_note, history])
    tab.select(controls, [who_in], [retrain_btn, promote_btn, force, reason, access])
    pick.change(report, [pick, who_in], [report_md, report_png])
    pick.change(picked, [pick], [result])
    promote_btn.click(promote, [pick, force, reason, who_in], [result, *outs, report_md, report_png]).then(
        gate_note, [history], [history_note, history])
    retrain_btn.click(retrain, [who_in], [result, *outs]).then(gate_note, [history], [history_note, history])
