"""Sections of the evaluation report, rendered as Markdown (report.md) and HTML (report.html, the UI).

A `Section` is a title, a short text, tables and plot names; `report.evaluation_sections` builds
them from the figures, and both renderers here draw the same sections, so the Markdown file, the
self-contained HTML file and the UI's Evaluation tab never disagree. Every rate cell carries its
interval and n ("0.42 [0.31, 0.54] n=57").
"""
from __future__ import annotations

import base64
import html
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    markdown: Optional[str] = None  # a section rendered elsewhere (drift), used as it is


class Md(str):
    """Markdown this code writes itself (a cell's **changed**): rendered as markup. Every other
    cell and header is plain text, escaped, so a name from the data cannot become markup."""


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>!|#~])")
# What GitHub-flavoured Markdown links without any markup (autolinks): `http:`, `www.` and an
# e-mail's `@`; a backslash after the scheme (before the dot, the at) keeps them text
_AUTOLINK = re.compile(r"((?:https?|ftp)(?=:)|www(?=\.))|@", re.IGNORECASE)
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # CommonMark: a backslash escapes any ASCII punctuation
# Bidirectional controls (U+202A-202E, U+2066-2069) shown as their code points: a name holding
# U+202E made a row of figures read backwards in a text viewer.
_BIDI = {c: f"[U+{c:04X}]" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def plain(v: Any) -> str:
    """`v` as text that Markdown shows as written: a policy, slice, analyst, queue or model name, or
    an item's language, reaches the report from configs and ingested data, and a `<img onerror>`,
    `[link](url)` or `![pixel](url)` in it must stay text in report.md (the HTML escapes it too);
    so must a bare `http://…`, `www.…` or `name@host`, which a GFM viewer makes a live link."""
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(str(v).splitlines()))
    return _AUTOLINK.sub(lambda m: m.group(1) + "\\" if m.group(1) else "\\@", text).translate(_BIDI)


_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")


def ident(v: Any) -> str:
    """A model version or other id as written when it is a plain identifier (letters, digits,
    `_ . : -`: nothing there starts markup but an intraword-safe `_`), so a search of report.md
    for `tfidf_lr-2026…` finds it; anything else as `plain` text."""
    s = str(v)
    return s if _IDENT.fullmatch(s) and not re.search(r"(?i)www\.|(?:https?|ftp):", s) else plain(s)


_PUNCT_AFTER_BACKSLASH = re.compile(r"\\(?=[!-/:-@\[-`{-~]|$)")
_PROSE_SPECIAL = re.compile(r"([<>]|\](?=\())")


def prose(v: Any) -> str:
    """A sentence this code wrote around names from the data (a gate's reason, a warning, why a
    set was not compared) as one line of Markdown that holds no tag, link, image or autolink:
    `<`, `>`, the `](` of a link and a backslash that would escape them are escaped, as are bare
    URLs and e-mails; backticks, `_` and `[0, 1]` stay as written (the raw file reads as before)."""
    text = _PUNCT_AFTER_BACKSLASH.sub(r"\\\\", " ".join(str(v).splitlines()))
    text = _PROSE_SPECIAL.sub(r"\\\1", text)
    return _AUTOLINK.sub(lambda m: m.group(1) + "\\" if m.group(1) else "\\@", text).translate(_BIDI)


def write_atomic(path: str | Path, data: bytes | str) -> str:
    """Write `data` to `path` through a temporary file in the same folder and `os.replace`: a
    reader (the UI, a browser) sees the old file or the new one, never half a PNG or report, and
    a write that fails leaves the old file as it was."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)  # mkstemp's is 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


def measured(v: Any) -> bool:
    """A number to show: not None, NaN or infinite (a 0/0 or a non-finite stored score read as
    "nan" in a report, a figure a reader takes for a measurement)."""
    return v is not None and math.isfinite(v)


def percent(conf: float) -> str:
    """A confidence level as a percentage ("90%", "99.5%"): `int(conf * 100)` read 0.58 as "57%"
    (0.58 * 100 is 57.99999999999999), a label that no longer matched the interval drawn."""
    return f"{round(conf * 100, 6):.12g}%"


def num(v: Optional[float], digits: int = 3) -> str:
    return f"{v:.{digits}f}" if measured(v) else "n/a"


def est(e: Optional[Mapping[str, Any]], digits: int = 2, with_n: bool = True) -> str:
    """"0.42 [0.31, 0.54] n=57" for an estimate dict; "n/a (n=0)" when there is nothing to estimate
    (or the estimate is not a finite number); no interval when either bound is not one."""
    if not e or not measured(e.get("estimate")):
        return Md(f"n/a (n={e.get('n', 0) if e else 0})")
    out = f"{e['estimate']:.{digits}f}"
    if measured(e.get("lo")) and measured(e.get("hi")):
        out += f" [{e['lo']:.{digits}f}, {e['hi']:.{digits}f}]"
    return Md(out + (f" n={e['n']}" if with_n else ""))  # numbers only: no escaping needed


def kappa(e: Mapping[str, Any]) -> str:
    return Md(est(e) + (f", κ {e['kappa']:.2f}" if measured(e.get("kappa")) else
                        f", κ n/a ({e['kappa_note']})" if e.get("kappa_note") else ""))


# -- Markdown --------------------------------------------------------------------------------
def _md_cell(v: Any) -> str:
    return " ".join(v.splitlines()) if isinstance(v, Md) else plain(v)


def table_markdown(t: Table) -> str:
    lines = ([f"*{t.caption}*", ""] if t.caption else []) + [
        "| " + " | ".join(_md_cell(h) for h in t.headers) + " |", "|" + "---|" * len(t.headers)]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in t.rows]
    return "\n".join(lines)


def section_markdown(s: Section, images: Optional[Mapping[str, str]] = None) -> str:
    """One section as Markdown; `images` maps plot name -> file name to link (None: no images)."""
    if s.markdown is not None:
        body = s.markdown.rstrip()
    else:
        parts = [f"## {s.title}"] + ([s.text] if s.text else [])
        parts += [table_markdown(t) for t in s.tables]
        body = "\n\n".join(parts)
    for p in s.plots:
        if images and p in images:
            body += f"\n\n![{p}]({images[p]})"
    return body + "\n"


def report_markdown(title: str, header: str, sections: Sequence[Section], images: Mapping[str, str]) -> str:
    return f"# {title}\n\n{header}\n\n" + "\n".join(section_markdown(s, images) for s in sections)


# -- HTML ------------------------------------------------------------------------------------
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITAL = re.compile(r"(?<![*\w])\*(?!\s)(.+?)\*(?!\w)")
_CODE = re.compile(r"`([^`]+)`")

CSS = """
.wb-eval{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif!important;font-size:13px!important;color:#222;
 max-width:1320px;line-height:1.35!important}
.wb-eval h1{font-size:19px!important;margin:2px 0 2px!important;font-weight:600!important}
.wb-eval h2{font-size:15px!important;margin:16px 0 4px!important;padding:0 0 2px!important;border-bottom:1px solid #ddd;
 font-weight:600!important}
.wb-eval p{margin:2px 0 6px!important;font-size:13px!important}
.wb-eval .wb-row{display:flex;flex-wrap:wrap;gap:6px 18px;align-items:flex-start}
.wb-eval .wb-scroll{overflow-x:auto;max-width:100%;margin:2px 0 4px}
.wb-eval table{border-collapse:collapse!important;font-size:12px!important;margin:0!important;width:auto!important}
.wb-eval th,.wb-eval td{border:1px solid #d8dce0!important;padding:2px 6px!important;text-align:left;
 white-space:nowrap;line-height:1.3!important;font-size:12px!important}
.wb-eval th{background:#eef1f4!important;font-weight:600!important}.wb-eval tr:nth-child(even) td{background:#f8f9fa}
.wb-eval caption{caption-side:top;text-align:left;font-style:italic;color:#555;padding:0 0 2px!important;font-size:12px}
.wb-eval img{max-width:min(100%,640px);width:auto;height:auto;margin:0!important;border:1px solid #eee}
"""


def inline_html(text: str) -> str:
    """Escape, then the little Markdown the section texts use: **bold**, *italic*, `code`; a
    backslash-escaped character (`plain`) is shown as itself and starts no markup."""
    held: list[str] = []

    def hold(m: re.Match[str]) -> str:
        held.append(m.group(1))
        return f"\x00{len(held) - 1}\x00"

    t = html.escape(_ESCAPED.sub(hold, text.replace("\x00", "")))
    t = _BOLD.sub(r"<b>\1</b>", t)
    t = _CODE.sub(r"<code>\1</code>", t)
    t = _ITAL.sub(r"<i>\1</i>", t)
    return re.sub("\x00(\\d+)\x00", lambda m: html.escape(held[int(m.group(1))]), t)


def _markdown_to_html(md: str) -> str:
    """Minimal Markdown (headings, paragraphs, lists, pipe tables) for sections rendered elsewhere."""
    out, table, para = [], [], []

    def flush() -> None:
        if para:
            out.append("<p>" + inline_html(" ".join(para)) + "</p>")
            para.clear()
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", r.strip())]
            cells = [[Md(c.strip()) for c in re.split(r"(?<!\\)\|", r.strip())[1:-1]] for r in rows]
            if cells:
                out.append(table_html(Table(cells[0], cells[1:])))
            table.clear()

    for line in md.splitlines():
        s = line.strip()
        if s.startswith("|"):
            if para:
                flush()
            table.append(s)
            continue
        if table:
            flush()
        if not s:
            flush()
        elif s.startswith("#"):
            flush()
            level = min(len(s) - len(s.lstrip("#")) + 0, 3)
            out.append(f"<h{max(level, 2)}>{inline_html(s.lstrip('#').strip())}</h{max(level, 2)}>")
        elif s.startswith(("- ", "* ")):
            flush()
            out.append("<ul><li>" + inline_html(s[2:]) + "</li></ul>")
        else:
            para.append(s)
    flush()
    return "\n".join(out)


def _html_cell(v: Any) -> str:
    return inline_html(v) if isinstance(v, Md) else html.escape(str(v))


def table_html(t: Table) -> str:
    head = "".join(f"<th>{_html_cell(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    cap = f"<caption>{inline_html(t.caption)}</caption>" if t.caption else ""
    return f'<div class="wb-scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def section_html(s: Section, pngs: Mapping[str, bytes]) -> str:
    """One section as HTML with its plots inlined as base64 PNGs."""
    if s.markdown is not None:
        body = _markdown_to_html(s.markdown)
    else:
        body = f"<h2>{inline_html(s.title)}</h2>" + "".join(
            "<p>" + inline_html(p) + "</p>" for p in s.text.split("\n\n") if p.strip())
        tables = "".join(table_html(t) for t in s.tables)
    imgs = "".join(f'<img alt="{html.escape(p)}" src="data:image/png;base64,{base64.b64encode(pngs[p]).decode()}">'
                   for p in s.plots if p in pngs)
    if s.markdown is not None:
        return f'<section>{body}<div class="wb-row">{imgs}</div></section>'
    return f'<section>{body}<div class="wb-row">{tables}{imgs}</div></section>'


def report_body_html(title: str, header: str, sections: Sequence[Section], pngs: Mapping[str, bytes]) -> str:
    """The report as an HTML fragment (style included): what the UI's Evaluation tab shows."""
    return (f'<style>{CSS}</style><div class="wb-eval"><h1>{inline_html(title)}</h1><p>{inline_html(header)}</p>'
            + "".join(section_html(s, pngs) for s in sections) + "</div>")


def report_html(title: str, header: str, sections: Sequence[Section], pngs: Mapping[str, bytes]) -> str:
    """A self-contained HTML page: no external file, script or font; plots embedded."""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{html.escape(title)}</title></head>"
            f"<body>{report_body_html(title, header, sections, pngs)}</body></html>\n")
