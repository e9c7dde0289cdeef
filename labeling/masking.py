"""How text is masked: one rule, one place, applied server-side before any text is shown.

Offensive text is masked (not just blurred in the browser) until the analyst reveals it, and a
reveal is an audited action (`packets.reveal_text`), as T&S wellness practice asks.

`mask_packet` is the one function every review packet passes through before it leaves the
server (the Review screen, its Gradio API, the escalation packet): while the case is masked and
not revealed by the viewer, every text in it is masked: the item, the similar past decisions'
texts, the campaign's top terms, exemplar and members, the author's other items and the earlier
decisions' rationales. A reveal unmasks the case's own texts (item, campaign); other items' texts
then follow their own rule (`shown_text`).

A similar past decision's rationale is a colleague's note about another item, which the analyst
reads to decide alike: masked word for word, "demo: the source dataset's label" read
"d•••: t•• s••••• d•••••••'s l••••", useless. What makes a note sensitive is what it quotes, so
where its item's text is masked the note is shown with its quotes masked (`mask_quotes`): each
word that the item's text holds (or, while the case is masked, the case's own texts), as the
text's own words are masked, and any word spelled out letter by letter; the analyst's own words
stay. Rationales on the case itself (earlier decisions, escalations, appeals) are about the very
text that is masked and stay masked whole until the reveal.

`sensitive_scores_sql` and `label_sensitive_sql` are the same rule as SQL conditions, for the
question "is any member of this campaign sensitive" (`notes.sensitive_campaigns`), which must
not read 100,000 members into Python on each page view; a test holds the two forms together.
"""
from __future__ import annotations

import functools
import html
import math
import re
import unicodedata
from typing import Any, Optional

from sqlalchemy import Float, Numeric, and_, case, cast, false, func, literal_column, or_, true
from sqlalchemy.dialects.postgresql import JSONB

from core.hooks import PermissionDenied, check_permission
from core.principals import Actor

from .priority import ESCALATED
from .review_config import ReviewSettings

# A letter, or a symbol that shows one: circled, parenthesised, squared and regional-indicator
# letters ("ⓥⓘⓛⓔ", "🅥🅘🅛🅔", "⒱⒤⒧⒠": So symbols, not letters, so such a word was shown as written).
_LETTER = r"(?:[^\W\d_]|[\u249c-\u24e9\U0001f110-\U0001f189\U0001f1e6-\U0001f1ff])"
# Per-row flag set while a packet is built: True when that row's own text is sensitive.
OWN_FLAG = "_sensitive"
# A packet's campaign: per top term, True when members it comes from, other than the texts the
# case shows (and a reveal of it counts), are sensitive (`terms_sensitive`). Never left in a packet.
TERMS_FLAG = "_terms_sensitive"


@functools.cache
def _glue() -> str:
    """A character class of what may sit inside or after a letter without ending its word:
    combining marks (Mn, Mc, Me) and invisible format characters (Cf)."""
    planes = (range(0x20000), range(0xE0000, 0xE1000))  # where every mark and format character lives
    glue = [c for r in planes for c in r if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me", "Cf")]
    spans: list[list[int]] = []
    for c in glue:
        if spans and spans[-1][1] == c - 1:
            spans[-1][1] = c
        else:
            spans.append([c, c])
    return "[" + "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in spans) + "]"


@functools.cache
def _word() -> "re.Pattern[str]":
    """A word: letters, with any combining marks (Mn, Mc, Me) or invisible format characters (Cf)
    inside or after them. A zero-width space, soft hyphen or combining accent after each letter
    made every letter a word of one, which was shown: "v<ZWSP>i<ZWSP>l<ZWSP>e" read "vile"."""
    cls = _glue()
    return re.compile(f"{_LETTER}(?:{cls}*{_LETTER})+{cls}*")


# What may separate the letters of a word spelled out ("f u c k", "f.u.c.k", "f - u - c - k"):
# spaces and line breaks (a dozen at most) with up to three punctuation marks (any marks or
# invisible characters on them aside), never a letter, a digit or the mask's own "•".
_SEP = re.compile(r"(?=.{1,12}$)\s*(?:(?:[^\w\s\u2022]|_)\s*){0,3}", re.S)
MIN_SPELLED = 3  # letters in a row, one at a time, that read as a word


@functools.cache
def _token() -> "re.Pattern[str]":
    """A word as `_word` reads it, or a single letter, with the marks and invisible characters after it."""
    cls = _glue()
    return re.compile(f"{_LETTER}(?:{cls}*{_LETTER})*{cls}*")


def _ordinary(letters: list[str], seps: list[str]) -> bool:
    """Separated letters that are no word: initials ("J. R. R.", "U.S.A.": up to three capitals,
    each followed by a full stop; "F.U.C.K." is no one's) or a run of the alphabet ("a b c", "x, y, z")."""
    if len(letters) <= 3 and all(ch.isupper() for ch in letters) and all(sep.startswith(".") for sep in seps):
        return True
    codes = [ord(ch.casefold()) for ch in letters]
    return all(ch.isascii() for ch in letters) and all(b - a == 1 for a, b in zip(codes, codes[1:]))


def _hide_spelled(text: str) -> str:
    """`text` with each word spelled out (at least MIN_SPELLED single letters, separators between
    them: `_SEP`) masked as a word is: its first letter kept, each further letter "•", the
    separators kept, so the text keeps its length and shape (marks after a letter go, as in a
    word). Each letter was a "word" of one, so "f u c k" was shown as written on a masked case while
    "fuck" was masked. Initials and runs of the alphabet are left as written (`_ordinary`)."""
    if len(text) < 2 * MIN_SPELLED - 1:
        return text
    glue, letter = re.compile(_glue()), re.compile(_LETTER)
    out: list[str] = []
    done = 0
    run: list["re.Match[str]"] = []

    def flush() -> None:
        nonlocal done
        if len(run) >= MIN_SPELLED:
            letters = [letter.search(t.group(0)).group(0) for t in run]  # type: ignore[union-attr]
            seps = [text[a.end():b.start()] for a, b in zip(run, run[1:])] + [text[run[-1].end():run[-1].end() + 1]]
            if not _ordinary([glue.sub("", x) for x in letters], [glue.sub("", x) for x in seps]):
                out.append(text[done:run[0].start()] + letters[0])
                out.extend(sep + "•" for sep in seps[:-1])
                done = run[-1].end()
        run.clear()

    for tok in _token().finditer(text):
        if len(letter.findall(tok.group(0))) != 1:
            flush()
            continue
        if run and not _SEP.fullmatch(glue.sub("", text[run[-1].end():tok.start()])[:13]):
            flush()
        run.append(tok)
    flush()
    return "".join(out) + text[done:]


def mask_text(text: str) -> str:
    """Keep the shape (first letter, length, punctuation, numbers, links) and hide the words: a
    word's first letter stays, each further letter becomes "•", its marks and invisible characters go.
    A word spelled out letter by letter ("f u c k", "f.u.c.k") is a word too (`_hide_spelled`).
    Masked as a page shows it: every tab decodes entities twice (`workbench.ui.format.decoded`), so
    `&#118;&#105;&#108;&#101;` (no letters to hide) read "vile" on screen; a "&" left after decoding
    becomes "＆" (U+FF06), so no later decoding turns the masked text back into words."""
    def hide(m: "re.Match[str]") -> str:
        word = m.group(0)
        letters = word if word.isalpha() else re.findall(_LETTER, word)  # the common case: letters only
        return letters[0] + "•" * (len(letters) - 1)
    decoded = html.unescape(html.unescape(text))
    return _word().sub(hide, _hide_spelled(decoded)).replace("&", "\uff06")


# Digits and signs written for letters ("f4gg0t", "$lut"): a quote in a note matched against the text.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s", "!": "i"})
MAX_NOTE_WORD = 40  # letters: a longer "word" in a note is no prose, so it is masked
MIN_STEM = 4  # letters a quoted word needs to match inside a longer one ("idiot" in "idiots")


def _fold(chunk: str) -> str:
    """A chunk of text as the letters it reads as: compatibility forms, accents and case folded, digits and
    signs used as letters read as those letters, letter-like symbols ("🅥") as their letter, marks,
    invisible characters and anything else dropped."""
    out = []
    for ch in unicodedata.normalize("NFKD", chunk.casefold()).translate(_LEET):
        if ch.isalpha():
            out.append(ch)
        elif re.fullmatch(_LETTER, ch):
            name = unicodedata.name(ch, "")
            out.append(name.rsplit(" ", 1)[-1].lower() if "LETTER " in name else "")
    return "".join(out)


def _quoted(texts: tuple[str, ...]) -> tuple[set[str], str]:
    """What a note may quote from `texts`: each whitespace-separated chunk folded (`_fold`), and
    all of their letters run together (a word spelled out or split in the text)."""
    words = [_fold(c) for t in texts for c in html.unescape(html.unescape(t)).split()]
    return {w for w in words if w}, "".join(words)


def mask_quotes(note: str, *texts: str) -> str:
    """`note` (a rationale about `texts`) with what it quotes from them masked (first letter kept,
    each further letter, digit or letter-like sign "•"), and the rest as written. A chunk (between spaces) is masked when its letters, read as
    `_fold` reads them, are a word of the texts, appear in the texts' letters run together (at
    least MIN_STEM of them), hold a word of the texts of MIN_STEM letters or more ("idiots"), or
    run past MAX_NOTE_WORD; words spelled out letter by letter are masked whatever they say.
    Decoded and its "&" made "＆" as `mask_text` does, so no later decoding makes new words."""
    words, run = _quoted(texts)
    stems = {w for w in words if len(w) >= MIN_STEM}

    def quoted(key: str) -> bool:
        if not key:
            return False
        if key in words or len(key) > MAX_NOTE_WORD or (len(key) >= MIN_STEM and key in run):
            return True
        return any(key[i:j] in stems for i in range(len(key)) for j in range(i + MIN_STEM, len(key) + 1))

    def hide(chunk: str) -> str:  # first letter kept, every further letter, digit or letter-like sign "•"
        keep = next((i for i, ch in enumerate(chunk) if _fold(ch) or ch.isdigit()), len(chunk))
        rest = re.sub(_glue(), "", chunk[keep + 1:])
        return chunk[:keep + 1] + "".join("•" if _fold(ch) or ch.isdigit() else ch for ch in rest)

    decoded = _hide_spelled(html.unescape(html.unescape(note)))
    shown = re.sub(r"\S+", lambda m: hide(m.group(0)) if quoted(_fold(m.group(0))) else m.group(0), decoded)
    return shown.replace("&", "\uff06")


def should_mask(settings: ReviewSettings, scores: Optional[dict[str, float]], policy_label: Optional[str]) -> bool:
    """Mask when a sensitive policy is likely, is the source's label, or nothing is known yet."""
    if policy_label in settings.mask_policies:
        return True
    if not scores:
        return True
    return any(_likely(scores.get(p, 0.0), settings.mask_min_score) for p in settings.mask_policies)


def _likely(v: Any, threshold: float) -> bool:
    """A score at or above `threshold`; a NaN, a text or nothing where a score should be is not
    known, so it masks (failing closed: `nan >= 0.15` is False, which showed a hate text)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return True
    return not math.isfinite(x) or x >= threshold


def is_sensitive(settings: ReviewSettings, scores: Optional[dict[str, float]], *labels: Optional[str]) -> bool:
    """`should_mask` for a text's scores, or any of `labels` (source policy, a human decision) sensitive."""
    return should_mask(settings, scores, None) or any(lab in settings.mask_policies for lab in labels if lab)


def sensitive_scores_sql(settings: ReviewSettings, dialect: str, scores: Any) -> Any:
    """`should_mask(settings, scores, None)` as a SQL condition on `scores`, a prediction's JSON
    scores (SQL NULL: no prediction), so "is any of a campaign's 100,000 members sensitive" is one
    EXISTS in the store, not every member read into Python. The same rule: no scores, or a masked
    policy's score at `mask_min_score` or more (a missing one read as 0.0); where the Python form
    fails closed (a null, a text, a non-finite number) or would raise (scores not an object), so
    does this: anything but a JSON number there masks, and scores SQLite cannot read as JSON. `dialect`: "sqlite" or "postgresql"."""
    thr = settings.mask_min_score
    missing = true() if _likely(0.0, thr) else false()
    if dialect == "postgresql":
        kind = func.json_typeof(scores)
        empty = cast(scores, JSONB) == literal_column("'{}'::jsonb")
        per = [(func.json_typeof(scores.op("->")(p)), cast(scores.op("->>")(p), Numeric), ("number",))
               for p in settings.mask_policies]
    else:
        kind = func.json_type(scores)
        empty = func.json(scores) == "{}"
        paths = [f'$."{p}"' for p in settings.mask_policies]  # a taxonomy label, bound as a value
        per = [(func.json_type(scores, path), cast(func.json_extract(scores, path), Float), ("integer", "real"))
               for path in paths]
    # a number past +-1e308 is an infinity (JSON's 1e999): not finite, so it masks, as `_likely` says
    likely = [case((t.is_(None), missing),
                   (t.in_(number), or_(v.is_(None), v >= thr, v > 1e308, v < -1e308)), else_=true())
              for t, v, number in per]
    rule = or_(scores.is_(None), kind.is_(None), kind != "object", empty, *likely)
    if dialect == "postgresql":
        return rule
    # SQLite kept a NaN as JSON it cannot read (`{"hate": NaN}`: "malformed JSON" failed the page):
    # scores it cannot read mask, as a NaN does
    return case((func.json_valid(scores) == 1, rule), else_=true())


def label_sensitive_sql(settings: ReviewSettings, label: Any) -> Any:
    """`is_sensitive`'s label part as a SQL condition: `label` (a source or decided label column)
    is a masked policy."""
    return and_(label.is_not(None), label.in_(list(settings.mask_policies)))


def shown_text(settings: ReviewSettings, text: str, scores: Optional[dict[str, float]],
               *labels: Optional[str]) -> str:
    """`text` as it may leave the server unrevealed: masked when `should_mask` says so for its
    scores or for any of `labels` (its source's policy label, a human decision's label)."""
    return mask_text(text) if is_sensitive(settings, scores, *labels) else text


def mask_terms(terms: Any) -> Any:
    """A campaign's top terms, each term masked (its count kept): shown while the case is masked."""
    return [[mask_text(str(t[0])), *t[1:]] if isinstance(t, (list, tuple)) else mask_text(str(t))
            for t in (terms or [])]


def _row(row: dict[str, Any], fields: tuple[str, ...], mask_all: bool, notes: tuple[str, ...] = (),
         case_texts: tuple[str, ...] = ()) -> dict[str, Any]:
    """A copy of `row` with `fields` masked when `mask_all` or the row's own flag says so; `notes`
    (a rationale) then with their quotes of the row's text, and while `mask_all` of the case's own
    `case_texts`, masked (`mask_quotes`)."""
    out = {k: v for k, v in row.items() if k != OWN_FLAG}
    if mask_all or row.get(OWN_FLAG, True):
        for f in fields:
            if isinstance(out.get(f), str):
                out[f] = mask_text(out[f])
        own = tuple(row[f] for f in fields if isinstance(row.get(f), str))
        for f in notes:
            if isinstance(out.get(f), str):
                out[f] = mask_quotes(out[f], *own, *(case_texts if mask_all else ()))
    return out


def _case_texts(packet: dict[str, Any]) -> tuple[str, ...]:
    """The case's own texts as the server holds them: the item's, a campaign's exemplar and members."""
    camp = packet.get("campaign") or {}
    texts = [(packet.get("item") or {}).get("text"), camp.get("exemplar_text"),
             *(m.get("text") for m in camp.get("sample") or [] if isinstance(m, dict))]
    return tuple(t for t in texts if isinstance(t, str))


def mask_metadata(meta: Any) -> Any:
    """A copy of an item's metadata with every string in it masked (`masking.mask_text`), keys,
    numbers and booleans kept: extra source columns are often free text (a reporter's comment, a
    title) that quotes or repeats the masked text. Without recursion: the input is hostile."""
    if isinstance(meta, str):
        return mask_text(meta)
    if not isinstance(meta, (dict, list)):
        return meta
    root: Any = dict(meta) if isinstance(meta, dict) else list(meta)
    todo = [root]
    while todo:
        node = todo.pop()
        for k, v in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(v, str):
                node[k] = mask_text(v)
            elif isinstance(v, (dict, list)):
                node[k] = dict(v) if isinstance(v, dict) else list(v)
                todo.append(node[k])
    return root


def mask_packet(packet: dict[str, Any], revealed: bool) -> dict[str, Any]:
    """The packet as it may leave the server: see the module notes. `packet["masked"]` says
    whether the case's own text is sensitive; `revealed` whether this viewer revealed it.

    Rows of other items (neighbours, author history, campaign members) carry `OWN_FLAG`, their
    own sensitivity; a row without it is treated as sensitive. The result never carries the flag.
    """
    hide = bool(packet.get("masked")) and not revealed
    out = dict(packet, revealed=bool(revealed and packet.get("masked")))
    if out.get("item") and hide:  # extra source columns are often free text quoting it
        out["item"] = dict(out["item"], text=mask_text(out["item"]["text"]),
                           metadata=mask_metadata(out["item"].get("metadata")))
    if hide and isinstance(out.get("case"), dict):  # an escalation's reason often quotes the text
        out["case"] = mask_case_reasons(out["case"])
    camp = out.get("campaign")
    if camp:
        camp = dict(camp)
        flags = camp.pop(TERMS_FLAG, None)
        if not hide and isinstance(flags, list):  # a term whose members beyond the case's own texts are sensitive
            camp["top_terms"] = [mask_terms([t])[0] if k >= len(flags) or flags[k] else t
                                 for k, t in enumerate(camp.get("top_terms") or [])]
        if hide:
            camp = mask_entity_values(camp)
            camp["top_terms"] = mask_terms(camp.get("top_terms"))
            if isinstance(camp.get("exemplar_text"), str):
                camp["exemplar_text"] = mask_text(camp["exemplar_text"])
        # Members are the case's own texts once revealed; else masked with it, or by their own rule.
        camp["sample"] = [{k: v for k, v in m.items() if k != OWN_FLAG} if out["revealed"] else _row(m, ("text",), hide)
                          for m in camp.get("sample") or []]
        out["campaign"] = camp
    own = _case_texts(packet) if hide else ()
    out["similar_decisions"] = [_row(r, ("text",), hide, ("rationale",), own) for r in out.get("similar_decisions") or []]
    author = out.get("author")
    if author:
        out["author"] = dict(author, recent=[_row(r, ("text",), hide) for r in author.get("recent") or []])
    out["decisions"] = [dict(d, rationale=mask_text(d["rationale"])) if hide and isinstance(d.get("rationale"), str)
                        else d for d in out.get("decisions") or []]
    if out.get("appeal") and hide:
        out["appeal"] = mask_appeal(out["appeal"])
    return out


def mask_case_reasons(case: dict[str, Any]) -> dict[str, Any]:
    """A copy of a case row with what people wrote on it masked: the escalation's reason, and the
    head of an escalated case's priority reason (which repeats it)."""
    out = mask_fields([case], ("escalation_reason",), True)[0]
    why = out.get("priority_reason")
    if isinstance(why, str) and why.startswith(ESCALATED):
        head, sep, rest = why[len(ESCALATED):].partition("; ")
        out["priority_reason"] = ESCALATED + mask_text(head) + sep + rest
    return out


def mask_appeal(appeal: dict[str, Any]) -> dict[str, Any]:
    """A copy of an appeal's packet (`appeals.appeal`) with the appellant's reason, the resolution's
    rationale and the appealed decision's rationale masked: each may quote the text."""
    out = {k: mask_text(v) if isinstance(v, str) and k in ("reason", "rationale") else v for k, v in appeal.items()}
    if isinstance(out.get("decision"), dict):
        out["decision"] = mask_fields([out["decision"]], ("rationale",), True)[0]
    return out


def mask_fields(rows: list[dict[str, Any]], fields: tuple[str, ...], hide: bool) -> list[dict[str, Any]]:
    """Copies of `rows` with `fields` masked when `hide`: while a case is masked for its viewer,
    what people wrote about its text (rationales, notes, an appeal's reason) is as sensitive."""
    return [{k: mask_text(v) if hide and k in fields and isinstance(v, str) else v for k, v in r.items()}
            for r in rows]


def members_sensitive(settings: ReviewSettings, camp: dict[str, Any]) -> bool:
    """Whether any member of a campaign is sensitive by its own rule, from `clustering.explore`'s
    summary over all members (`unscored`, `max_scores` per policy, `member_labels`: source and
    decided labels): its top terms come from every member."""
    if camp.get("unscored", 1):
        return True  # a member nothing is known about yet, or no summary at all
    return is_sensitive(settings, camp.get("max_scores"), *(camp.get("member_labels") or []))


def terms_sensitive(settings: ReviewSettings, per_term: list[Any]) -> list[bool]:
    """Per top term, whether the members it comes from (`clustering.explore`'s `term_evidence`,
    one summary per term) hold one sensitive by its own rule, or one nothing is known about (a
    term no member carries is unknown); a term only texts left out of the summary carry is not."""
    return [not isinstance(ev, dict) or bool(ev.get("unscored", 1)) or (bool(ev.get("members")) and is_sensitive(
        settings, ev.get("max_scores"), *(ev.get("member_labels") or []))) for ev in per_term]


def _terms_by_evidence(settings: ReviewSettings, camp: dict[str, Any]) -> Any:
    """The campaign's top terms, each masked by `terms_sensitive`; all of them (`members_sensitive`)
    when there is no summary per term."""
    terms, per_term = camp.get("top_terms") or [], camp.get("term_evidence")
    if isinstance(per_term, list) and len(per_term) == len(terms):
        return [mask_terms([t])[0] if hide else t for t, hide in zip(terms, terms_sensitive(settings, per_term))]
    return mask_terms(terms) if members_sensitive(settings, camp) else camp.get("top_terms")


def mask_campaign(settings: ReviewSettings, camp: dict[str, Any]) -> dict[str, Any]:
    """A campaign (`clustering.explore`'s list row or detail) as the Campaigns tab, which has no
    reveal, may show it: the exemplar and each member by its own rule (scores, source and decided
    label) or the campaign's mean rule, the top terms by `members_sensitive` or the mean rule. A
    member masked on its own case stays masked here, whatever the campaign's mean."""
    mean = should_mask(settings, camp.get("mean_scores"), None)
    out = dict(camp)
    if isinstance(out.get("exemplar_text"), str) and (mean or is_sensitive(
            settings, camp.get("exemplar_scores"), camp.get("exemplar_policy_label"), camp.get("exemplar_decided_label"))):
        out["exemplar_text"] = mask_text(out["exemplar_text"])
    out["top_terms"] = mask_terms(camp.get("top_terms")) if mean else _terms_by_evidence(settings, camp)
    if "members" in camp:
        out["members"] = [dict(m, text=mask_text(m["text"])) if isinstance(m.get("text"), str) and (mean or is_sensitive(
            settings, m.get("scores"), m.get("policy_label"), m.get("decided_label"))) else m
            for m in camp.get("members") or []]
    if mean or members_sensitive(settings, camp.get("entity_evidence") or {}):  # no summary: masked
        out = mask_entity_values(out)
    return out


def mask_entity_values(camp: dict[str, Any]) -> dict[str, Any]:
    """`camp` with its shared entities' values and the values its members' reasons name
    (`linked_by`: "similarity,url:host/path") masked: a hate wave's URL, host or e-mail address was
    shown raw beside its masked exemplar and terms (a phone number, no words, reads the same)."""
    out = dict(camp)
    if isinstance(camp.get("entities"), dict):
        out["entities"] = {kind: [dict(v, value=mask_text(str(v["value"]))) if isinstance(v, dict)
                                  and v.get("value") is not None else v for v in vals]
                           if isinstance(vals, list) else vals for kind, vals in camp["entities"].items()}
    for key in ("members", "member_links"):
        if isinstance(camp.get(key), list):
            out[key] = [dict(m, linked_by=_masked_reasons(m.get("linked_by"))) if isinstance(m, dict) else m
                        for m in out.get(key) or camp[key]]
    return out


def _masked_reasons(linked_by: Any) -> Any:
    if not isinstance(linked_by, str):
        return linked_by
    return ",".join(f"{k}:{mask_text(v)}" if sep else k for k, sep, v in (p.partition(":") for p in linked_by.split(",")))


def may_reveal(principal: Actor) -> bool:
    """Whether `principal` holds `reveal`: a reveal recorded before the role lost it unmasks
    nothing, and without it a text match on a masked item is not shown."""
    try:
        check_permission(principal, "reveal")
    except PermissionDenied:
        return False
    return True
