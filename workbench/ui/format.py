"""Readable values for every tab: local times to the minute, decoded HTML entities, percentages,
short texts, and "50 of 144" counts. Pure functions (no Gradio, no store), tested without a browser.

Stored times are naive UTC (`core.schema.utcnow`); `local_time` writes them in the server's local
time zone (the `TZ` of the process), to the minute, with the zone's name where it matters: the
text of tables and Markdown (Campaigns, Operations, Search, Appeals). The Review tab's HTML uses
`render.when` instead: a `<time>` element the page shows in the viewer's own zone.
"""
from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any, Optional


def as_datetime(value: Any) -> Optional[dt.datetime]:
    """A datetime from a datetime or an ISO string (naive = UTC); None for anything else."""
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, str) and value.strip():
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def local_time(value: Any, tz: Optional[dt.tzinfo] = None, zone: bool = False) -> str:
    """`2026-12-03 09:41` in local time (`tz`, else the process's zone); '' for no time; a value
    that is not a time comes back as it was."""
    when = as_datetime(value)
    if when is None:
        return "" if value in (None, "") else str(value)
    local = when.astimezone(tz) if tz else when.astimezone()
    return local.strftime("%Y-%m-%d %H:%M") + (f" {local.tzname()}" if zone else "")


def zone_name(tz: Optional[dt.tzinfo] = None) -> str:
    """The name of the local time zone the tables use (for a column heading)."""
    now = dt.datetime.now(dt.timezone.utc)
    return (now.astimezone(tz) if tz else now.astimezone()).tzname() or "local"


def decoded(text: Any) -> str:
    """Text with HTML entities decoded (`&#128545;` -> the emoji, `&amp;` -> &), as people read it.
    Decoded twice at most: some sources store entities of entities (`&amp;#128545;`)."""
    if text is None:
        return ""
    out = html.unescape(str(text))
    return html.unescape(out) if "&" in out else out


# Bidi embeddings, overrides and isolates: invisible, yet they reorder what follows them, so
# "\u202egpj.exe" reads "exe.jpg" and a URL reads backwards. Shown as their code point instead.
_BIDI_CONTROLS = {c: f"[U+{c:04X}]" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def readable(text: Any) -> str:
    """Text as it is shown on any tab: entities decoded (`decoded`), and each bidi control that
    would reorder the text on screen written as its code point (`[U+202E]`), so what an analyst
    reads is what the text says. The one display rule under `short`, `md_escape` and `render.esc`;
    masking reads the text before it (a rule must match what the author wrote)."""
    return decoded(text).translate(_BIDI_CONTROLS)


def short(text: Any, n: int = 120) -> str:
    """One line, at most `n` characters, cut at a word with an ellipsis (`readable` text)."""
    flat = " ".join(readable(text).split())
    if len(flat) <= n:
        return flat
    cut = flat[: n - 1].rsplit(" ", 1)[0] if " " in flat[: n - 1] else flat[: n - 1]
    return cut + "…"


def percent(value: Any, digits: int = 1) -> str:
    """0.1234 -> '12.3%'; '—' for None."""
    return "—" if value is None else f"{100 * float(value):.{digits}f}%"


def minutes(value: Any) -> str:
    """Minutes as '42 min', '3.5 h' or '2.1 d'; '—' for None."""
    if value is None:
        return "—"
    m = float(value)
    if abs(m) < 90:
        return f"{m:.0f} min"
    if abs(m) < 48 * 60:
        return f"{m / 60:.1f} h"
    return f"{m / 1440:.1f} d"


def of_total(shown: int, total: int, what: str = "") -> str:
    """'50 of 144 members' (or '12 members' when all are shown)."""
    tail = f" {what}" if what else ""
    return f"{total}{tail}" if shown >= total else f"{shown} of {total}{tail}"


def page_span(page: int, size: int, total: int) -> tuple[int, int, int]:
    """(page clamped to what exists, start, end) for 1-based `page` of `size` rows over `total`."""
    pages = max(1, -(-total // size))
    page = min(max(1, int(page or 1)), pages)
    start = (page - 1) * size
    return page, start, min(start + size, total)


# Markdown syntax escaped in user text; `$` too (it starts Gradio's LaTeX), and `.` (Gradio's
# Markdown makes a bare `www.…` or `name@host.tld` a live link), and the `:` of `http:` (`_SCHEME`).
_MD_SPECIAL = "\\`*_{}[]()#+-.!|~$"
_SCHEME = re.compile(r"(?:https?|ftp)(?=:)", re.IGNORECASE)  # even inside a word: "xhttp://…" links


def md_escape(text: Any) -> str:
    """User-written text (notes, rationales, item texts, entities) safe inside Markdown: `readable`,
    then HTML and Markdown syntax escaped, so nothing typed becomes a tag, link, image, heading,
    formula or a clickable URL."""
    out = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in html.escape(readable(text), quote=False))
    return _SCHEME.sub(lambda m: m.group(0) + "\\", out)


_RAW_HTML = re.compile(r"\\?([<>])")
# What still makes something live in such text: `[` (links, images), `$` (LaTeX), `@` (an email
# autolink), and a URL's `http:` or `www.` (a backslash after the word keeps the text, not the link).
_LIVE = re.compile(rf"(?<!\\)([\[$@])|{_SCHEME.pattern}|www(?=\.)", re.IGNORECASE)


def inert_markdown(markdown: str) -> str:
    """Markdown this code wrote (headings, bold, tables) around text it may not have escaped (a
    stored report): its images dropped, and no raw HTML, link, image, autolinked URL or formula
    left in it, so a name or reason inside cannot load a pixel or run a `javascript:` link; bidi
    controls shown as in `readable`. Text already escaped (`\\<`) reads the same."""
    out = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", markdown).translate(_BIDI_CONTROLS)
    out = _RAW_HTML.sub(lambda m: "&lt;" if m.group(1) == "<" else "&gt;", out)
    return _LIVE.sub(lambda m: "\\" + m.group(1) if m.group(1) else m.group(0) + "\\", out)
