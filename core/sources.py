"""Where the public datasets come from: the shared folder, else the Hugging Face Hub.

The shared folder (`../shared/data` beside the project) holds the SMS Spam Collection and the
Davidson tweets. Where it is absent and a network exists, the same public datasets load from the
Hub through `datasets`; where neither works, `DataNotFound` says what to download and where.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from .hub_rows import hub_as_local
from .ingest import PRESETS, ColumnMap, RowBuilder
from .readers import IngestError, read_delimited, read_hf

# name -> path of the file inside the shared data folder
SHARED_DATASETS: dict[str, str] = {
    "sms_spam": "sms_spam_collection/SMSSpamCollection",
    "davidson": "davidson_hate_offensive/labeled_data.csv",
}
_HELP = {
    "sms_spam": "the SMS Spam Collection (UCI, CC BY 4.0): tab-separated with header `Label<TAB>SMS`",
    "davidson": "the Davidson et al. 2017 hate/offensive tweets: labeled_data.csv from "
                "github.com/t-davidson/hate-speech-and-offensive-language",
}


class DataNotFound(FileNotFoundError):
    """Neither the shared folder nor the Hub could provide a dataset."""


@dataclass(frozen=True)
class Location:
    path: str  # a file path, or a Hub dataset id
    fmt: Optional[str]  # None = from the extension / preset
    description: str


def shared_data_dir(override: Optional[str | os.PathLike[str]] = None) -> Optional[Path]:
    """The shared data folder: explicit, `$WORKBENCH_SHARED_DATA`, or `../shared/data` near here."""
    if override:
        return Path(override)
    env = os.environ.get("WORKBENCH_SHARED_DATA")
    if env:
        return Path(env)
    project = Path(__file__).resolve().parent.parent
    for cand in (Path.cwd().parent / "shared" / "data", project.parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return None


def locate_dataset(name: str, shared_dir: Optional[str | os.PathLike[str]] = None,
                   try_hub: bool = True) -> Location:
    """Find dataset `name` in the shared folder, else on the Hub; raise DataNotFound with advice."""
    if name not in SHARED_DATASETS:
        raise DataNotFound(f"unknown dataset {name!r} (known: {', '.join(SHARED_DATASETS)})")
    folder = shared_data_dir(shared_dir)
    tried = []
    if folder is not None:
        path = folder / SHARED_DATASETS[name]
        if path.is_file():
            return Location(str(path), PRESETS[name].fmt, f"{path}")
        tried.append(str(path))
    hub_id = PRESETS[name].hub_id
    if try_hub and not _offline():
        if _hub_reachable(hub_id):
            return Location(hub_id, "hf", f"Hugging Face Hub dataset {hub_id}")
        tried.append(f"Hub dataset {hub_id} (unreachable)")
    else:
        tried.append(f"Hub dataset {hub_id} (skipped: " + (f"{_offline()} is set)" if try_hub else "not asked)"))
    target = _local_target(name, folder)
    raise DataNotFound(
        f"dataset {name!r} not found (tried: {'; '.join(tried)}). Download {_HELP[name]}, and put it at "
        f"{target}, or pass --shared-data FOLDER, or run with a network and HF_HUB_OFFLINE unset "
        f"to load {hub_id} from the Hub.")


def _offline() -> Optional[str]:
    """The variable that puts the Hub offline, if any, read as `huggingface_hub` and `datasets` read
    it (1/ON/YES/TRUE, any case): `HF_HUB_OFFLINE=yes` must not be taken for a network."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return var
    return None


def _local_target(name: str, folder: Optional[Path]) -> Path:
    """Where the shared file of dataset `name` belongs: what an error tells a person to provide."""
    return (folder or Path("../shared/data")) / SHARED_DATASETS[name]


def _vote_problem(meta: Optional[dict[str, Any]], fields: list[list[str]]) -> Optional[str]:
    """Why a row's vote counts cannot be trusted, else None; whole counts are made ints in `meta`.

    A count must be a whole number (`"3"` or 3; `"1.5"` or `"x"` is no count of annotators), and
    the votes must add up to the row's `count` (annotators), else the shares would be made up."""
    if not meta:
        return None
    votes = []
    for names in fields:
        col = next((f for f in names if f in meta), None)
        if col is not None:
            votes.append(col)
    for col in [*votes, *(["count"] if "count" in meta else [])]:
        value = meta[col]
        if isinstance(value, str) and value.strip().isdigit():
            meta[col] = int(value.strip())
        elif not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return f"vote count {col}={value!r} is not a whole number"
    if votes and "count" in meta and sum(meta[c] for c in votes) != meta["count"]:
        return (f"votes {'+'.join(votes)} add up to {sum(meta[c] for c in votes)}, "
                f"not count={meta['count']}")
    return None


def _hub_reachable(hub_id: str) -> bool:
    try:
        from huggingface_hub import HfApi

        HfApi().dataset_info(hub_id, timeout=5)
        return True
    except Exception:  # noqa: BLE001 - any failure means: not available from here
        return False


def load_labelled(name: str, shared_dir: Optional[str | os.PathLike[str]] = None,
                  taxonomy: Any = None, limit: Optional[int] = None) -> Any:
    """A pandas DataFrame [id, text, source_label, policy_label, vote_shares] of a shared dataset.

    Rows go through the same RowBuilder as ingest, so ids and label mapping match the store;
    rows ingest would quarantine are left out here too (they are not trainable), each listed in
    `attrs["skipped"]` on one line naming file, line and field. `vote_shares` is the annotators'
    share per policy label where the source records votes (else None); rows whose vote counts
    cannot be read (not whole numbers, or not adding up to `count`) keep their label and are
    listed in `attrs["unreadable_votes"]`. The Hub copy (`hub_as_local`) gives what the file gives;
    a Hub that cannot be loaded raises DataNotFound naming where the file goes.
    An id given twice keeps its first row, as ingest does: a repeat is left out, and a row whose
    text differs (ingest's conflict) is left out and listed in `attrs["conflicts"]`.
    A file whose header lacks a column the preset maps raises IngestError (every row would be left out).
    """
    import pandas as pd

    from .readers import BadRow
    from .taxonomy import load_taxonomy

    tax = taxonomy or load_taxonomy()
    loc = locate_dataset(name, shared_dir)
    pre = PRESETS[name]
    cols = pre.columns  # the Hub copy is shaped as the file (`hub_as_local`): one mapping, one result
    if loc.fmt == "hf":
        rows: Iterable[tuple[int, dict[str, Any]]] = hub_as_local(name, read_hf(loc.path, "train"))
    else:  # a mapped column the header lacks fails in one line, not as an empty frame
        used = [c for c in (cols.id, cols.text, cols.label, *cols.meta) if c is not None]
        rows = read_delimited(loc.path, "\t" if pre.fmt == "tsv" else ",", pre.quoting, used)
    smap = tax.sources.get(pre.source)
    build = RowBuilder(tax, pre.source, smap.surface if smap is not None else "post",
                       ColumnMap(id=cols.id, text=cols.text, label=cols.label, meta=cols.meta), run_id=0)
    vote_fields = list(smap.votes.values()) if smap is not None else []
    out, bad_votes, conflicts, skipped = [], [], [], []
    texts: dict[str, str] = {}  # id -> the text ingest would store under it: the first row's
    it = iter(rows)
    rowno = 0
    while limit is None or len(out) < limit:
        try:
            lineno, row = next(it)
        except StopIteration:
            break
        except IngestError as exc:
            if loc.fmt != "hf":
                raise
            # The Hub answered the probe but `datasets` cannot load from it (offline, gone): say
            # where the file goes instead, as when the Hub is not tried at all.
            target = _local_target(name, shared_data_dir(shared_dir))
            raise DataNotFound(f"{_one_line(exc)}; put the file at {target} (or pass --shared-data "
                               f"FOLDER) to load {name!r} without the Hub") from None
        rowno += 1
        try:
            if "__error__" in row:
                raise row["__error__"]
            item = build(lineno, row, rowno)
        except BadRow as bad:  # ingest would quarantine it: left out, but never silently
            skipped.append(f"{loc.path} line {lineno} field {bad.field!r}: {_one_line(bad)}")
            continue
        if item["id"] in texts:  # an id read before: ingest keeps the first row, so do we
            if texts[item["id"]] != item["text"]:  # ingest's conflict (quarantined), not a second label
                conflicts.append(f"{loc.path} line {lineno}: id {item['id'][:80]!r} read before with a different text")
            continue
        texts[item["id"]] = item["text"]
        problem = _vote_problem(item["metadata"], vote_fields)
        try:
            if problem is not None:
                raise ValueError(problem)
            shares = tax.vote_shares(pre.source, item["metadata"], item["text"])
        except ValueError as exc:
            # Ingest keeps such a row (votes are extra) and so do we: its majority label still trains.
            shares = None
            bad_votes.append(f"{loc.path} line {lineno}: {_one_line(exc)}")
        out.append((item["id"], item["text"], item["source_label"], item["policy_label"], shares))
    df = pd.DataFrame(out, columns=["id", "text", "source_label", "policy_label", "vote_shares"])
    df.attrs["unreadable_votes"] = bad_votes
    df.attrs["conflicts"] = conflicts
    df.attrs["skipped"] = skipped
    return df


def _one_line(exc: BaseException) -> str:
    """An error's message on one line of bounded length: a hostile cell must not print whole."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."
