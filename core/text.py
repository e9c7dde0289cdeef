"""Light text normalisation and the text hash shared by ingest, the embedding cache and dedupe.

`normalize_light` only folds what never changes meaning (Unicode form, case, spacing, invisible
format characters), so two copies of one message in a scam wave hash alike while different
messages do not. It is the one normalisation for matching and hashing: an invisible character
(zero-width space or joiner, soft hyphen, word joiner, byte-order mark, bidi control: Unicode
category Cf) inside a word changes neither the hash, the template, the entities nor an escalation
pattern's match. The stored text is never normalised (it is evidence). Template-level
normalisation for campaigns (digits, URLs, phone numbers as tokens) lives in `clustering`. The
length rule for a reason a person writes (`MAX_REASON_CHARS`) lives here too, one rule for every
service and the API.
"""
from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from typing import Any, Optional, Protocol

_SPACE = re.compile(r"\s+")
_SURROGATE = re.compile("[\udc80-\udcff]")  # what `surrogateescape` makes of a byte that is not UTF-8
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # any surrogate code point: a str never holds a pair


@functools.cache
def _format_chars() -> dict[int, None]:
    """A str.translate table deleting every format (Cf) character; they live in planes 0, 1 and 14."""
    planes = (range(0x20000), range(0xE0000, 0xE1000))
    return {c: None for r in planes for c in r if unicodedata.category(chr(c)) == "Cf"}


def stated(text: Optional[str]) -> Optional[str]:
    """A reason or rationale as stored (stripped), None when it says nothing a reader can see:
    blank, or only invisible format characters (a zero-width space met "a rationale is required")."""
    text = (text or "").strip()
    return text if text and visible_text(text).strip() else None


def visible_text(text: str) -> str:
    """The text as a reader sees it: NFKC, invisible format (Cf) characters dropped; case and
    spacing kept. What a model reads, so a zero-width space or a fullwidth letter cannot make
    one copy of a wave score differently from its readable twin (which shares its hash)."""
    out = unicodedata.normalize("NFKC", text)
    if not out.isprintable():  # only then can it hold one; a text without one hashes as it always did
        out = unicodedata.normalize("NFKC", out.translate(_format_chars()))
    return out


def normalize_light(text: str) -> str:
    """NFKC, invisible format characters dropped, spacing collapsed, casefolded: the form every
    hash, template, entity and pattern match reads, so an invisible character cannot evade them."""
    return _SPACE.sub(" ", visible_text(text)).strip().casefold()


class Searchable(Protocol):
    """A compiled pattern: `compile_pattern`'s RE2 regex, or a `re.Pattern` the code builds itself."""

    def search(self, text: str) -> Any: ...


def compile_pattern(pattern: str) -> Searchable:
    """A configured pattern (escalation criteria, refine rules) compiled, case-insensitive, on RE2.

    These run on every candidate's text, which an attacker writes: on Python's backtracking `re`,
    `(a+)+$` doubled its time with each character (0.62 s at 22 a's), so one 40-character post
    hung every case build. RE2 runs in time linear in the text, whatever the pattern. ValueError,
    one line, for a pattern RE2 cannot run as written (`pattern_problem`)."""
    import re2  # google-re2; here, so `workbench --help` does not load it

    problem = pattern_problem(pattern)
    if problem is None:
        options = re2.Options()
        options.case_sensitive, options.log_errors, options.never_capture = False, False, True
        try:
            return re2.compile(pattern, options)
        except re2.error as exc:
            why = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            problem = (f"{why} (RE2 has no backreferences, lookarounds, atomic groups, possessive "
                       f"quantifiers, \\Z (write \\z) or (?x))")
    raise ValueError(f"pattern '{pattern}' is not a valid regular expression for RE2: {problem}")


def pattern_problem(pattern: str) -> Optional[str]:
    """Why RE2 would run `pattern` otherwise than Python's `re` reads it, though it compiles; None
    when it would not. `{,n}` is the characters themselves on RE2 (`{0,n}` on `re`); RE2's `\\b`
    and `\\w` know only ASCII letters, so next to a word in another script they never match."""
    escapes, i = set(), 0
    while i < len(pattern):
        if pattern[i] == "\\":
            escapes.add(pattern[i + 1:i + 2])
            i += 2
            continue
        if pattern[i] == "{" and re.match(r",[0-9]+\}", pattern[i + 1:]):
            return "RE2 reads {,n} as the characters themselves: write {0,n}"
        i += 1
    other_script = not pattern.isascii() or bool(escapes & set("pPx"))
    if other_script and escapes & set("bBwW"):
        return ("RE2's \\b and \\w match ASCII letters only, so next to a word in another script they never "
                "match: write [\\pL\\pN_] for \\w and (^|[^\\pL\\pN_]) for \\b")
    return None


def pattern_search(regex: Searchable, text: Optional[str]) -> bool:
    """True when `regex` matches the text as received or its `normalize_light` form: the one rule
    for a configured pattern (escalation criteria, identity slices, packets), so an invisible
    character or a compatibility form inside a trigger word cannot keep a text from matching,
    and a pattern written against the raw text still matches. A lone surrogate reads as U+FFFD
    (RE2 reads UTF-8, which cannot hold one)."""
    raw = replace_lone_surrogates(text or "")
    return bool(regex.search(raw)) or bool(regex.search(normalize_light(raw)))


def invisible_char(text: str) -> Optional[str]:
    """The first control (Cc) or format (Cf) character in `text`, or None: such a character makes
    two ids or authors that look identical differ, so ingest refuses them there."""
    if text.isprintable():  # the common case, in C: no Cc, Cf (nor other non-printable) character
        return None
    for ch in text:
        if (ch < " " or ch == "\x7f") if ch.isascii() else unicodedata.category(ch) in ("Cc", "Cf"):
            return ch
    return None


def text_hash(text: str) -> str:
    """Hex SHA-1 of the lightly normalised text (40 chars): the key of the embedding cache."""
    return hashlib.sha1(normalize_light(text).encode("utf-8", "surrogatepass")).hexdigest()


def has_undecodable_bytes(text: str) -> bool:
    """True when `text` was decoded with `surrogateescape` and held bytes that are not UTF-8
    (a subset of `lone_surrogate_at`: say "not UTF-8, check the encoding" for these)."""
    return bool(_SURROGATE.search(text))


def lone_surrogate_at(text: str) -> Optional[int]:
    """1-based place of the first lone surrogate (U+D800 to U+DFFF) in `text`, or None.

    The one rule for "not Unicode text": a JSON escape such as `\\ud800` decodes to one, and so
    does a byte that is not UTF-8 read with `surrogateescape`; UTF-8 cannot encode either, so a
    tokenizer, a PostgreSQL column or a JSON file refuses it. Inputs check it before they use
    the text, and refuse it in one line naming where."""
    if text.isascii():  # the common case, in C
        return None
    m = _LONE_SURROGATE.search(text)
    return m.start() + 1 if m else None


def has_lone_surrogate(text: str) -> bool:
    """True when `text` holds a lone surrogate (see `lone_surrogate_at`)."""
    return lone_surrogate_at(text) is not None


def replace_lone_surrogates(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD: what a model reads where refusing is not
    an option (scoring stored text: the batch goes on, the prediction is flagged `undecodable`)."""
    return _LONE_SURROGATE.sub("\ufffd", text) if lone_surrogate_at(text) is not None else text


# A rationale or reason a person writes (a decision, a correction, a forced promotion) is kept in
# the decision rows and the audit log for good: long enough for a careful note, never a dump.
MAX_REASON_CHARS = 5000


def reason_length_error(text: str | None, what: str, limit: int = MAX_REASON_CHARS) -> str | None:
    """The one-line refusal when `text` is over `limit` characters (None when it is within): the
    services raise it as their own error, so every free-text reason follows the same rule."""
    if text is not None and len(text) > limit:
        return f"{what} has at most {limit:,} characters, this one has {len(text):,}"
    return None


def text_error(text: str, what: str) -> Optional[str]:
    """The one-line refusal for free text people write (a note, an appeal's reason, its rationale)
    that the store cannot keep or a terminal would obey: a NUL byte (PostgreSQL refuses it), a lone
    surrogate (not UTF-8), or a control character other than tab and line breaks (`workbench notes`
    prints bodies as they are: an escape sequence would rewrite the screen). None when it is fine."""
    if (at := lone_surrogate_at(text)) is not None:
        return f"{what} holds a lone surrogate at character {at} (not valid Unicode)"
    bad = next((i for i, ch in enumerate(text) if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r"), None)
    if bad is not None:
        return f"{what} holds a control character at character {bad + 1} (U+{ord(text[bad]):04X})"
    return None


def free_text_error(text: Optional[str], what: str, limit: int = MAX_REASON_CHARS) -> Optional[str]:
    """The one rule for a reason or rationale a person writes: within `limit` characters
    (`reason_length_error`) and text the store can keep and a terminal will not obey
    (`text_error`). None when it is fine."""
    if text is None:
        return None
    return reason_length_error(text, what, limit) or text_error(text, what)


def one_line(text: Optional[str], n: int = 70) -> str:
    """An item's text on one terminal line, at most `n` characters: whitespace runs become one
    space and any other control character its escape (`\\x1b`), so a hostile text's escape
    sequence (an OSC 52 clipboard write, a line erase) is shown, never run by the terminal."""
    flat = " ".join((text or "").split())
    if flat.isprintable():  # the common case, in C
        return flat[:n]
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in flat)[:n]


def escaped(value: object, n: int = 300) -> str:
    """A path or name for a one-line message, kept as written (unlike `one_line`, whitespace is
    not folded): control characters, and the lone surrogates that stand for a non-UTF-8 name's
    bytes, as escapes; cut to `n` characters."""
    text = str(value)
    shown = text if text.isprintable() else "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return shown if len(shown) <= n else shown[:n - 1] + "…"
