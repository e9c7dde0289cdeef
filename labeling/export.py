"""Export labels as a Hugging Face dataset: the hand-off from review to training and evaluation.

Each row is an item with its current label: the latest non-superseded human decision where
there is one (`label_origin = "human"`), else the resolution of its calibration copies
(`"calibration"`, the label training uses: `labeling.training_data.calibration_labels`), else,
on request, the source's own label mapped through the taxonomy (`"source"`). The label is a
`ClassLabel` over the taxonomy's policies, in the class order every model uses, and each row
keeps what an auditor asks for: who decided, the action and policy reference, the rationale,
what the model said at the time, and the item's notes (a JSON list) and tags. With the training
settings, each row also carries its training `split` and `training_kind` (the decision kind
training's evaluation sets read), taken with the labels as of one moment: read again while
decisions arrive meanwhile, so a correction made during an export is wholly in or out.

The folder is written whole or not at all: both outputs go to a temporary sibling folder that
replaces `out_dir` only once both are written, and a folder that holds anything is replaced
only when asked (`overwrite`), so an earlier export is never lost by accident; and only when it
holds nothing but an earlier export, so `--overwrite` never deletes the store's folder or anyone's
files. The folder is swapped in only inside the transaction that records its `labels.export` event,
and swapped back out if that does not commit: unmasked texts are never left on disk unaudited; the
folder is its owner's alone (0700). A Hub push is recorded before any byte leaves (`labels.push`,
state "intended": repo, rows, unmasked texts by tier), and its result after (in `labels.export`, else
in a second `labels.push`): no intent recorded, nothing pushed. It creates a private repo, goes only
where the Hub says the repo is private or does not exist (a failed lookup refuses it), and a failed
one still leaves the written folder audited. A repo id the Hub would refuse is refused before any work.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from core.hooks import check_permission
from core.principals import SYSTEM, Actor
from core.schema import Item
from core.store import Store
from core.taxonomy import Taxonomy
from core.text import escaped, one_line

from core.labels import AUTHORITATIVE_KINDS, current_decisions

from .notes import export_fields

if TYPE_CHECKING:  # pragma: no cover
    from models.config import LearningSettings

_CHUNK = 900
_TRIES = 3  # reads of the labels and sides before an export busy with decisions gives up
_TRAINING_COLUMNS = ("split", "training_kind")  # set from `training_sides` when splits are asked for
COLUMNS = ["id", "text", "label", "label_origin", "source", "surface", "author_id", "created_at",
           "source_label", "decision_id", "decision_kind", "reviewer", "action", "severity", "policy_ref",
           "rationale", "decided_at", "model_version", "model_label", "model_score", "is_override",
           "taxonomy_version", "notes", "tags", "split", "training_kind"]
OUTPUTS = ("dataset", "labels.parquet")  # all an export folder holds: --overwrite replaces nothing else
# What `save_to_disk` writes in `dataset` (and `datasets` caches of a loaded copy's `map`).
_DATASET_FILE = re.compile(r"(?:data|cache)-[0-9a-z-]+\.arrow|state\.json|dataset_info\.json")


class ExportError(RuntimeError):
    """Nothing to export, or the destination cannot be written."""


def label_rows(store: Store, taxonomy: Taxonomy, include_source_labels: bool = False,
               source: Optional[str] = None, calibration_rule: Optional[str] = None,
               left_out: Optional[Counter[str]] = None, tiers: Optional[Counter[str]] = None,
               progress: bool = False) -> list[dict[str, Any]]:
    """One dict per labelled item (human decisions, then calibration copies resolved by
    `calibration_rule` as training resolves them, then source labels if asked), sorted by id.
    An item whose label the taxonomy no longer has is left out, counted in `left_out` (as
    training counts it: "unknown label X"), so the export can say so. `tiers` counts the rows
    by the severity tier of their text (`text_tier`; "none" for a text judged benign throughout).
    `progress`: a bar over the items read (a store of 100,000 decisions takes a while)."""
    from tqdm import tqdm

    from .training_data import restored_at, calibration_labels

    if calibration_rule is None:
        from models.config import LearningSettings

        calibration_rule = LearningSettings().calibration_rule
    I = Item.__table__
    with store.read(snapshot=True) as conn:  # one moment: a decision made meanwhile is wholly in or out
        decided = {i: dict(d, decided_at=d["created_at"])
                   for i, d in current_decisions(conn, kinds=AUTHORITATIVE_KINDS).items()}
        restored_at(conn, decided.values())  # a decision an undo restored is as old as the original, as in training
        calib, _ = calibration_labels(conn, calibration_rule)
        for item_id, c in calib.items():
            decided.setdefault(item_id, c)  # a decision of record wins over the copies, as in training
        ids = sorted(decided)
        items: dict[str, Any] = {}
        with tqdm(total=len(ids), desc="exporting labels", unit="item", disable=not progress, leave=False) as bar:
            for i in range(0, len(ids), _CHUNK):
                for r in conn.execute(select(I).where(I.c.id.in_(ids[i:i + _CHUNK]))).mappings():
                    items[r["id"]] = r
                bar.update(len(ids[i:i + _CHUNK]))
        if include_source_labels:
            q = select(I).where(I.c.policy_label.is_not(None))
            if source:
                q = q.where(I.c.source == source)
            for r in conn.execute(q).mappings():
                items.setdefault(r["id"], r)
        extra = export_fields(conn, list(items))  # analysts' notes and tags travel with the labels
    rows = []
    for item_id in sorted(items):
        it = items[item_id]
        if source and it["source"] != source:
            continue
        d = decided.get(item_id)
        if d is None and not include_source_labels:
            continue
        label = d["label"] if d else it["policy_label"]
        if label not in taxonomy.policies:  # a label of an older taxonomy with no counterpart now
            if left_out is not None:
                left_out[f"unknown label {label}"] += 1
            continue
        if d is not None and d.get("kind") == "calibration":
            rows.append(_calibration_row(it, d, taxonomy, extra[item_id]))
        else:
            rows.append(_decided_row(it, d, label, taxonomy, extra[item_id]))
        if tiers is not None:
            tiers[text_tier(taxonomy, rows[-1], it["policy_label"]) or "none"] += 1
    return rows


def text_tier(taxonomy: Taxonomy, row: dict[str, Any], policy_label: Optional[str]) -> Optional[str]:
    """The severity tier an exported (unmasked) text counts at: the most severe of its label's, the
    decision's recorded tier, the model's label when the analyst decided, and the source's policy
    label (what a reveal would weigh: `wellbeing.reveal_tier` ranks tiers the same way); None for a
    text every one of them calls benign."""
    found = {taxonomy.severity_of(lab) for lab in (row.get("label"), row.get("model_label"), policy_label)
             if lab in taxonomy.policies}
    found.add(taxonomy.stored_tier(row.get("severity")))
    return next((t for t in sorted(taxonomy.severities, key=taxonomy.sla_minutes) if t in found), None)


def _decided_row(it: Any, d: Optional[dict[str, Any]], label: str, taxonomy: Taxonomy,
                 extra: dict[str, Any]) -> dict[str, Any]:
    """An item labelled by its decision of record (`d`), else by its source."""
    item_id = it["id"]
    return {
        "id": item_id, "text": it["text"], "label": label, "label_origin": "human" if d else "source",
        "source": it["source"], "surface": it["surface"], "author_id": it["author_id"],
        "created_at": _iso(it["created_at"]), "source_label": it["source_label"],
        "decision_id": d["id"] if d else None, "decision_kind": d["kind"] if d else None,
        "reviewer": d["reviewer"] if d else None, "action": d["action"] if d else None,
        "severity": d["severity"] if d else None, "policy_ref": d["policy_ref"] if d else None,
        "rationale": d["rationale"] if d else None, "decided_at": _iso(d["decided_at"]) if d else None,
        "model_version": d["model_version"] if d else None, "model_label": d["model_label"] if d else None,
        "model_score": d["model_score"] if d else None, "is_override": bool(d["is_override"]) if d else None,
        "taxonomy_version": (d["taxonomy_version"] if d else it["taxonomy_version"]) or taxonomy.version,
        **extra,
    }


def _left_out_warning(left_out: Counter[str], version: str) -> str:
    """One line: how many labelled items the taxonomy's labels could not carry, and which labels."""
    n, labels = sum(left_out.values()), sorted(k.removeprefix("unknown label ") for k in left_out)
    many = len(labels) > 1
    return (f"{n} labelled item{'s' if n != 1 else ''} left out: label{'s' if many else ''} {', '.join(labels)} "
            f"{'are' if many else 'is'} not in taxonomy {version} (re-map them before exporting)")


def _calibration_row(it: Any, c: dict[str, Any], taxonomy: Taxonomy, extra: dict[str, Any]) -> dict[str, Any]:
    """An item labelled by its calibration copies: no single decision, so the reviewers are listed."""
    # no decision: its columns are None
    return {**dict.fromkeys(col for col in COLUMNS if col not in _TRAINING_COLUMNS),
            "id": it["id"], "text": it["text"], "label": c["label"], "label_origin": "calibration",
            "source": it["source"], "surface": it["surface"], "author_id": it["author_id"],
            "created_at": _iso(it["created_at"]), "source_label": it["source_label"], "decision_kind": "calibration",
            "reviewer": ",".join(c["reviewers"]), "decided_at": _iso(c["decided_at"]),
            "taxonomy_version": it["taxonomy_version"] or taxonomy.version, **extra}


def _iso(v: Any) -> Optional[str]:
    return v.isoformat() if isinstance(v, dt.datetime) else v


def to_dataset(rows: list[dict[str, Any]], taxonomy: Taxonomy) -> Any:
    """A `datasets.Dataset` with `label` as a ClassLabel in the taxonomy's class order."""
    import datasets

    feats = datasets.Features({
        **{c: datasets.Value("string") for c in COLUMNS},
        "label": datasets.ClassLabel(names=taxonomy.labels),
        "decision_id": datasets.Value("int64"),
        "model_score": datasets.Value("float64"),
        "is_override": datasets.Value("bool"),
    })
    cols = {c: [r.get(c) for r in rows] for c in COLUMNS}
    cols["label"] = [taxonomy.labels.index(lab) for lab in cols["label"]]
    return datasets.Dataset.from_dict(cols, features=feats)


def export_labels(store: Store, taxonomy: Taxonomy, out_dir: str | Path, include_source_labels: bool = False,
                  source: Optional[str] = None, push_to_hub: Optional[str] = None,
                  actor: Actor = SYSTEM["system"], splits: Optional["LearningSettings"] = None,
                  overwrite: bool = False, progress: bool = False) -> dict[str, Any]:
    """Write the labels as a dataset folder (`save_to_disk`) plus a Parquet file; optionally push.
    Needs `export`. A non-empty `out_dir` is replaced only with `overwrite`. With `splits`
    (models.yaml `learning`), each row carries its side of the campaign-grouped training split
    (`split`: train / test / excluded), the one `workbench retrain` uses (`training_sides`:
    stored, so it never moves; `excluded` for a row training leaves out), and calibration copies
    are resolved by its `calibration_rule`. The texts leave unmasked (training needs them raw): the
    `labels.export` audit event counts them by severity tier (`unmasked_by_tier`, `text_tier`), so
    the leads see how much severe content an export handed out. With `splits`, `by_split` and
    `training_by_label` count the rows as training counts them (a bulk decision's copies of one
    text once: the others are `excluded`). `progress`: bars while the labels are read."""
    from core import audit

    check_permission(actor, "export", str(out_dir))
    if push_to_hub is not None:
        _check_repo(push_to_hub)  # before any work: a typo (or "" from an unset variable) never writes, nor pushes

    out = Path(out_dir)
    replaced = _check_destination(out, overwrite)
    rows, left_out, tiers, warnings = _snapshot_rows(store, taxonomy, include_source_labels, source, splits, actor,
                                                     progress=progress)
    ds = to_dataset(rows, taxonomy)
    origins = {o: sum(1 for r in rows if r["label_origin"] == o) for o in ("human", "source")}
    calibrated = sum(1 for r in rows if r["label_origin"] == "calibration")
    if calibrated:
        origins["calibration"] = calibrated
    counts = {lab: sum(1 for r in rows if r["label"] == lab) for lab in taxonomy.labels}
    summary = {"rows": len(rows), "by_origin": origins, "by_label": counts, "path": str(out / "dataset"),
               "parquet": str(out / "labels.parquet"), "taxonomy_version": taxonomy.version,
               "pushed_to": None, "replaced": replaced, "warnings": warnings, "left_out": dict(left_out),
               "source": source, "include_source_labels": include_source_labels,  # what was asked for
               # Every text leaves unmasked (training needs it raw): how many of each tier, for the leads.
               "unmasked_by_tier": {t: tiers[t] for t in (*taxonomy.severities, "none")}}
    if splits is not None:  # as training counts them: what a model trained on the export learns from
        from .training_data import EXCLUDED

        summary["by_split"] = {s: sum(1 for r in rows if r["split"] == s) for s in ("train", "test", EXCLUDED)}
        summary["training_by_label"] = {lab: sum(1 for r in rows if r["label"] == lab and r["split"] != EXCLUDED)
                                        for lab in taxonomy.labels}
    target, tmp = _write_temp(ds, out, overwrite)
    try:
        push_error: Optional[str] = None
        if push_to_hub:
            # The copy leaving for the Hub is recorded first: no byte goes out unaudited.
            summary["push_intent"] = _record_push_intent(store, actor, push_to_hub, out, summary, replaced)
            push_error = _push(ds, push_to_hub)
            summary["pushed_to"] = None if push_error else push_to_hub
            if push_error:
                summary["push_error"] = push_error
        # The folder takes `out`'s place only inside the transaction that records its event, and is
        # taken back out if that does not commit: an export is never left on disk unaudited.
        old: Optional[Path] = None
        swapped = False
        try:
            with store.begin() as conn:
                audit.record(conn, actor, "labels.export", "dataset", str(out), summary)
                old = _swap_in(tmp, target, out, overwrite)
                swapped = True
        except BaseException as exc:
            if swapped:
                _swap_back(tmp, target, old)
            if not isinstance(exc, (ExportError, SQLAlchemyError, RuntimeError, OSError)):
                raise
            pushed = _push_outcome(store, actor, push_to_hub, summary) if push_to_hub else ""
            if isinstance(exc, ExportError):
                raise ExportError(f"{exc}{pushed}") from None
            raise ExportError(f"{escaped(out)}: not exported: its audit event could not be recorded "
                              f"({_first_line(exc)}), so nothing was written"
                              f"{' and the earlier export is kept' if replaced else ''}{pushed}") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when swapped in
    if push_error:
        raise ExportError(f"{escaped(out)}: written ({len(rows)} rows), but the push to {push_to_hub} failed: "
                          f"{push_error}")
    return summary


def _last_decision(store: Store) -> tuple[int, int]:
    """(how many decisions, the newest id): decisions are append-only (a correction, an undo, an
    appeal's outcome is a new row), so an unchanged pair says that no decision was made between two
    reads; the count too, since on PostgreSQL a lower id may commit after a higher one."""
    from sqlalchemy import func

    from core.schema import Decision

    D = Decision.__table__
    with store.read() as conn:
        n, last = conn.execute(select(func.count(), func.max(D.c.id))).one()
    return int(n or 0), int(last or 0)


def _snapshot_rows(store: Store, taxonomy: Taxonomy, include_source_labels: bool, source: Optional[str],
                   splits: Optional["LearningSettings"], actor: Actor, tries: int = _TRIES,
                   progress: bool = False) -> tuple[list[dict[str, Any]], Counter[str], Counter[str], list[str]]:
    """(rows, left out, tiers, warnings) as of one moment. The labels and the training sides are two
    reads (`training_sides` runs `learning_data`, several transactions): a decision made between them
    (a correction, an undo) was half in, its row holding the old label beside the side training gave
    the new one. Read again while decisions arrive in between; after `tries`, refuse in one line."""
    for _ in range(tries):
        before = _last_decision(store)
        left_out: Counter[str] = Counter()
        tiers: Counter[str] = Counter()
        rows = label_rows(store, taxonomy, include_source_labels, source,
                          splits.calibration_rule if splits is not None else None, left_out, tiers, progress)
        warnings = [_left_out_warning(left_out, taxonomy.version)] if left_out else []
        if not rows:
            raise ExportError("no labels to export: decide some cases first, or pass --include-source-labels"
                              + (f" ({warnings[0]})" if warnings else ""))
        if splits is not None:
            from .training_data import EXCLUDED

            sides, kinds, split_warnings = training_sides(store, taxonomy, splits, actor)
            warnings += split_warnings
            for r in rows:
                r["split"] = sides.get(r["id"], EXCLUDED)
                r["training_kind"] = kinds.get(r["id"])
        if _last_decision(store) == before:
            return rows, left_out, tiers, warnings
    raise ExportError(f"not exported: decisions kept arriving while the labels were read ({tries} tries), so no "
                      "consistent snapshot could be taken; nothing was written, try again")


def _record_push_intent(store: Store, actor: Actor, repo: str, out: Path, summary: dict[str, Any],
                        replaced: bool) -> str:
    """Commit a `labels.push` event (state "intended": the repo, how many rows, the unmasked texts by
    tier; the actor is the event's) before the push sends anything, and return its hash, which the
    export's own event then names. Why first: once the bytes are on the Hub, a store that fails to
    record them leaves user content outside with no trace. Not recorded: ExportError, nothing pushed."""
    from core import audit

    intent = {"repo": repo, "state": "intended", "rows": summary["rows"], "path": summary["path"],
              "source": summary["source"], "include_source_labels": summary["include_source_labels"],
              "taxonomy_version": summary["taxonomy_version"], "unmasked_by_tier": summary["unmasked_by_tier"]}
    try:
        with store.begin() as conn:
            return audit.record(conn, actor, "labels.push", "dataset", repo, intent)
    except (SQLAlchemyError, RuntimeError, OSError) as exc:
        raise ExportError(f"{escaped(out)}: not exported: the push to {repo} could not be recorded "
                          f"({_first_line(exc)}), so nothing was pushed or written"
                          f"{' and the earlier export is kept' if replaced else ''}") from None


def _push_outcome(store: Store, actor: Actor, repo: str, summary: dict[str, Any]) -> str:
    """When the export's own event failed after a push was tried: record the push's result on its
    own (`labels.push`, state pushed / failed) and say, as the tail of one line, what happened to it
    and what the audit log holds (the intent event stands whatever happens here)."""
    from core import audit

    error = summary.get("push_error")
    result = {"repo": repo, "state": "failed" if error else "pushed", "error": error,
              "intent": summary.get("push_intent"), "rows": summary["rows"], "exported": False}
    said = f"; the push to {repo} failed as well ({error})" if error else f"; it was pushed to {repo} already"
    try:
        with store.begin() as conn:
            audit.record(conn, actor, "labels.push", "dataset", repo, result)
    except (SQLAlchemyError, RuntimeError, OSError) as exc:
        return f"{said}: only its intent is recorded (the result could not be: {_first_line(exc, 150)})"
    return f"{said} (recorded as its labels.push event)"


def _check_repo(repo: str) -> None:
    """ExportError, in one line, when `repo` is not a Hub repo id ("name" or "namespace/name"):
    the Hub would refuse it only after the export was written and audited, in a message holding
    the id whole (line breaks and all)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError:
        raise ExportError(f"--push-to-hub '{escaped(repo, 100)}': not a Hub repo id (namespace/name, each of letters, "
                          "digits, '-', '_' and '.', at most 96 characters); nothing was written or pushed") from None


def _first_line(exc: BaseException, n: int = 300) -> str:
    """The error's first line (a store error spans lines: the statement, the background link), escapes shown."""
    return one_line((str(exc).strip().splitlines() or [type(exc).__name__])[0], n)


def _push(ds: Any, repo: str) -> Optional[str]:
    """Push to the Hub, into a private repo where it creates one (an existing public repo, or one
    whose visibility cannot be checked, is refused); the failure's first line (offline, no token, a
    bad repo id), or None. Called only once its intent is recorded (`_record_push_intent`); a failed
    push must not hide the local export from the audit (any error: a timeout is no OSError)."""
    try:
        refusal = _push_refusal(repo)
        if refusal:
            return refusal
        ds.push_to_hub(repo, private=True)  # user content, authors and reviewers: a repo it creates is never public
    except Exception as exc:  # the hub's HTTP, connection and offline errors, and the HTTP client's own
        return _first_line(exc)
    return None


def _push_refusal(repo: str) -> Optional[str]:
    """Why the export must not go to `repo`, or None. `push_to_hub` keeps an existing repo's
    visibility, so `private=True` alone pushed every text, author and note into a public one: only a
    repo the Hub says is private, or one it says does not exist (the push creates it private), may
    have it. A lookup that failed otherwise (rate limit, 5xx, timeout) says nothing about the repo,
    so the push is refused, not tried. Offline mode blocks the push as well, which then says why."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    try:
        info = HfApi().repo_info(repo, repo_type="dataset")
    except OfflineModeIsEnabled:
        return None
    except Exception as exc:
        if _not_found(exc):
            return None
        return f"could not check whether {repo} is private: {_first_line(exc)}; not pushed"
    private = getattr(info, "private", None)
    if private is False:
        return (f"{repo} is a public dataset repo and the export holds the texts, their authors and notes: "
                f"make it private first, or name another repo")
    if private is not True:
        return f"could not check whether {repo} is private: the Hub did not say; not pushed"
    return None


def _not_found(exc: BaseException) -> bool:
    """Whether a repo lookup failed because the repo does not exist (or is not visible to us, so not
    public): RepositoryNotFoundError, or a plain 404. A gated repo exists, and anyone may ask for it."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if isinstance(exc, GatedRepoError):
        return False
    if isinstance(exc, RepositoryNotFoundError):
        return True
    return type(exc) is HfHubHTTPError and getattr(getattr(exc, "response", None), "status_code", None) == 404


def training_sides(store: Store, taxonomy: Taxonomy, splits: "LearningSettings",
                   actor: Actor) -> tuple[dict[str, str], dict[str, Optional[str]], list[str]]:
    """(item id -> the side training puts it on, item id -> the decision kind training's evaluation
    sets read (`qa_audit` for an appeal of a QA audit, `rereview` for a lead's re-review), warnings):
    read from the very data `workbench retrain` assembles (`labeling.training_data.learning_data`,
    every source, no label left out for rarity). Why not the exported rows alone: whether a
    campaign straddles the sides depends on all its labelled members, source-labelled ones and
    other sources' included, so a side worked out from the rows of a human-only or one-source
    export could say `test` for an item training leaves out. An exported row training does not
    use (a bulk decision's copy of a text, say) is `excluded`."""
    from .training_data import learning_data

    ld = learning_data(store, taxonomy, splits, actor, min_examples_per_label=0, action="export")
    return dict(zip(ld.data.ids, ld.split)), dict(zip(ld.data.ids, ld.decision_kind)), list(ld.stats["warnings"])


def _check_destination(out: Path, overwrite: bool) -> bool:
    """Whether `out` holds anything (to be replaced); ExportError when it is not a folder, or holds
    something and `overwrite` was not given, or is a symbolic link: checked before any work, so a
    refusal costs nothing."""
    try:
        if out.is_symlink():  # the export would land wherever the link points (and --overwrite replace it)
            raise ExportError(f"{escaped(out)}: is a symbolic link: name the folder itself; nothing was written")
        if not out.exists():
            return False
        if not out.is_dir():
            raise ExportError(f"{escaped(out)}: exists and is not a folder")
        full = any(out.iterdir())
        if full and not overwrite:
            raise ExportError(f"{escaped(out)}: the folder is not empty (an earlier export?); "
                              "pass --overwrite to replace it")
        if full and (foreign := sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS)):
            raise ExportError(f"{escaped(out)}: holds {_names(foreign)}, not only an earlier export's "
                              f"{' and '.join(OUTPUTS)}: choose another folder (--overwrite replaces only an export)")
        if full and (odd := _not_an_export(out)):
            raise ExportError(f"{escaped(out)}: {odd}, not what an export writes: choose another folder (--overwrite "
                              f"replaces only an export)")
    except OSError as exc:
        raise ExportError(f"{escaped(out)}: cannot read the destination: {exc.strerror or _first_line(exc)}") from None
    return full


def _names(names: list[str]) -> str:
    """The first few file names, each on one line with its escapes shown (a name may hold a line break)."""
    return ", ".join(one_line(n, 100) for n in names[:5]) + (", ..." if len(names) > 5 else "")


def _not_an_export(out: Path) -> Optional[str]:
    """Why `out`'s `dataset` or `labels.parquet` is not what an export writes, or None: the names
    alone let --overwrite delete a folder of one's own called `dataset`, a Spark `labels.parquet`
    folder of part files, or the link to one."""
    dataset, parquet = out / "dataset", out / "labels.parquet"
    if parquet.is_symlink() or (parquet.exists() and not parquet.is_file()):
        return "its labels.parquet is not a file"
    if dataset.is_symlink() or (dataset.exists() and not dataset.is_dir()):
        return "its dataset is not a folder"
    if dataset.is_dir() and (odd := sorted(p.name for p in dataset.iterdir() if p.is_symlink() or not p.is_file()
                                           or not _DATASET_FILE.fullmatch(p.name))):
        return f"its dataset folder holds {_names(odd)}"
    return None


def _write_temp(ds: Any, out: Path, overwrite: bool) -> tuple[Path, Path]:
    """(where the export goes, a temporary sibling folder holding both outputs): `_swap_in` then
    puts it in place. Rechecks the destination (another writer may have filled it meanwhile)."""
    target = out.resolve()
    tmp = target.with_name(f".{target.name}.export-{secrets.token_hex(4)}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(mode=0o700)  # unmasked texts, authors and notes: the owner's alone, as packets are
        os.chmod(tmp, 0o700)  # whatever the umask
        ds.save_to_disk(str(tmp / "dataset"))
        ds.to_parquet(str(tmp / "labels.parquet"))
        _check_destination(out, overwrite)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ExportError(f"{escaped(out)}: cannot write the export: {_first_line(exc)}") from None
        raise
    return target, tmp


def _swap_in(tmp: Path, target: Path, out: Path, overwrite: bool) -> Optional[Path]:
    """`tmp` takes `target`'s place (the old one is renamed aside, the new renamed in): no reader
    ever sees half an export. Returns where the earlier export was put aside (the caller deletes it
    once the export is recorded), or None."""
    _check_destination(out, overwrite)  # still true? another writer may have filled it meanwhile
    old: Optional[Path] = None
    try:
        if target.exists():
            old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
            os.rename(target, old)
        try:
            os.rename(tmp, target)
        except OSError:
            if old is not None:
                os.rename(old, target)  # put the earlier export back
            raise
    except OSError as exc:
        raise ExportError(f"{escaped(out)}: cannot write the export: {_first_line(exc)}") from None
    return old


def _swap_back(tmp: Path, target: Path, old: Optional[Path]) -> None:
    """Undo `_swap_in` when its event did not commit: the new export back out (deleted, whatever
    happens), the earlier one back in place."""
    try:
        os.rename(target, tmp)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
    if old is not None:
        try:
            os.rename(old, target)
        except OSError:
            pass  # left aside under its hidden name, never deleted
