"""Template normalisation and entity extraction for campaign linking.

A scam wave sends one template with a fresh callback number, claim code or prize amount per
message. `normalize_template` maps those variable parts to tokens (`<url>`, `<phone>`,
`<shortcode>`, `<email>`, `<money>`, `<num>`) so the variants collide, while
`extract_entities` keeps the values themselves: a shared premium number or URL host links
messages even when their wording differs. Both run on `core.text.normalize_light` output,
so case, Unicode form and spacing never matter, with what a reader cannot tell apart folded too
(`_forms`): other scripts' digits, dashes inside a number, an ideographic dot in a link,
Greek or Cyrillic look-alike letters in Latin text, combining marks piled on Latin text
("z̴a̴l̴g̴o̴") and a link reversed under a right-to-left override, so a wave written with them
stays one wave.
"""
from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from dataclasses import dataclass, field

from core.text import normalize_light, visible_text

ENTITY_KINDS = ("url", "host", "email", "phone", "shortcode")
# Bumped whenever a text's template or entities change; a graph built under another version is
# re-clustered by the next `workbench cluster` (old and new items would otherwise not collide).
# 4: an e-mail's domain kept as written (look-alikes in punycode). 5: a URL's path kept in its
# written case (short links are case-sensitive), a WhatsApp link's number a phone, e-mails with an
# internationalised domain or a non-ASCII local part, "O" for 0 and "/" in numbers, and spelled or
# spaced dots in an unambiguous link ("www dot x dot com", "x . com/claim", "x dot co dot uk").
# 6: combining marks on Latin letters, digits or punctuation dropped ("z̴a̴l̴g̴o̴"), a right-to-left
# override read as shown, "[at]" for @, a number spelled in words after "call", no number with a
# second trunk zero ("0 0 0 0 0 0 0 0 0 0", "0033 1 23 45 67 89"), an O-number before "or" kept,
# "[", "]", "_", "*" and "·" between a number's digit groups.
# 7: a 2-digit area code after a bracketed trunk zero ("+44 (0)20 7946 0018", "0044 (0)20 ...").
NORMALIZE_VERSION = 7

# Top-level domains seen in the wild in SMS / social spam; a bare `name.tld` is only taken as a
# host with one of these, so "e.g" or "u.s" never become hosts.
_TLDS = (
    "com|net|org|info|biz|co|uk|tv|mobi|me|io|ly|ac|us|de|fr|ru|cn|in|eu|xyz|top|club|online|"
    "site|app|link|click|shop|store|live|gov|edu|ws|cc|to|gl|gd|it|nl|es|ie|au|ca|"
    # gTLDs much abused by scam waves that are no English word ("quiz.win", "ok.today" are not hosts)
    "vip|icu|buzz|cyou|sbs|cfd|pw"
)
# Every pattern below costs linear time on any text (one long text must not stall `cluster`): a
# match can only start at the beginning of a run (the lookbehinds) and repeats are bounded, so no
# start re-scans a long run that an earlier start already scanned.
# The local part takes Latin, Greek and Cyrillic letters ("möller@", "иван@"): ASCII-only, it began
# mid-word, and "möller@x.de" and "mäller@x.de" were both "ller@x.de". Scripts written without
# spaces stay out, so "请联系support@x.com" is still "support@x.com". The domain takes any letter
# ("x@münchen.de"), stored in punycode like a URL's host.
_EMAIL_LOCAL = r"a-z0-9._%+\u00c0-\u024f\u0370-\u03ff\u0400-\u052f-"
_EMAIL = re.compile(
    r"(?<![" + _EMAIL_LOCAL + r"])[" + _EMAIL_LOCAL + r"]{1,64}@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}"
)
# A URL with a scheme or a www. prefix; SMS often breaks it with a space after "http://wap." or
# "www." ("http://wap. xxxmobilemovieclub.com"), which the optional `\s?` rejoins. Labels are
# bounded (63 characters, as in DNS; at most 9 before the top-level domain).
# Labels take any letter, so an internationalised host ("münchen-preis.de") is one too; its value
# is stored in punycode (`_ascii_host`), the form its xn-- spelling already has.
_URL_PREFIXED = re.compile(
    r"(?:https?://|www\.)(?:\s?[\w-]{1,63}\.){0,8}\s?[\w-]{1,63}(?:\.[a-z]{2,})+(?::\d{1,5})?(?:[/?#][^\s]*)?"
)
_URL_BARE = re.compile(
    r"(?<![@\w.-])(?:[\w-]+\.)+(?:" + _TLDS + r")(?![\w-])(?:/[^\s]*)?"
)
# A host written as an IP address: with a scheme, or bare when a path or port follows.
_URL_IP = re.compile(
    r"(?:https?://|(?<![\w.:/-])(?=(?:\d{1,3}\.){3}\d{1,3}(?:/|:\d)))(?:\d{1,3}\.){3}\d{1,3}(?![\d.]\d)"
    r"(?::\d{1,5})?(?:[/?#][^\s]*)?"
)
# Defanged links as threat-intel and spam write them ("hxxps://evil[.]com", "evil(dot)com"):
# rewritten to the plain form before matching, so they link with the plain link.
_DEFANG_SCHEME = re.compile(r"\bhxxp(s?)(?:://|\[:\]//)")
# "[at]" for @ in an e-mail ("claims[at]x.com", "claims (at) x (dot) com"; read after the dots are
# made plain), only where a dotted domain follows: "meet me (at) home" stays as written.
_DEFANG_AT = re.compile(r"(?<=[\w.%+-]) ?(?:\[at\]|\(at\)|\{at\}|\[@\]|\(@\)|\{@\}) ?(?=[\w-]{1,63}\.[\w-])")
_DEFANG_DOT = re.compile(r"(?<=[a-z0-9-]) ?(?:\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)|\{dot\}) ?(?=[a-z0-9-])")
# A host with dots spelled out or spaced ("evil dot com", "evil . com"), rejoined only where no
# sentence reads so (`_spelled_host`): after www or a scheme, spaced before a path ("x . com/a"),
# ending "co dot uk" or " . com"; "ok. me too", "ok . me too", "the dot com bubble" stay words.
# A sentence's end (". ") is no separator, so "thanks. evil . com" is evil.com. At most 5 labels
# of 63 characters: each start (a word's first letter) reads a bounded stretch (linear time).
_SEP = r"(?: dot | \. ?|\.)"
_SPELLED_HOST = re.compile(r"(?<![\w.-])(?:[a-z0-9-]{1,63}" + _SEP + r"){1,5}(?:" + _TLDS + r")(?![\w-])/?")
_SEP_RE = re.compile(_SEP)
_SPACED_SEP = re.compile(r" dot | \.")
_SPELLED_SURE = re.compile(r"^www" + _SEP + r"|(?:^|[ .])(?:co|org|ac|gov|ltd|plc|net|me)" + _SEP + r"uk/?$"
                           r"| \. (?:com|net|org|info|biz|xyz|icu)$")
# UK-style numbers: 0 + 9-10 digits, optionally grouped by spaces or dashes (0800 169 6031), or
# +44 / 0044 international form. Digits glued to text ("08452810075over18's") still match, but
# not the first digits of a longer number (an order or tracking number): those of two different
# numbers made one phone key and linked unrelated texts. A trunk 0 after +44 ("+44 07700 ...")
# is read from the 0: taken after the country code it made a 12-digit number cut short.
_PHONE = re.compile(
    r"(?<![\d£$€])(?:(?:\+44|0044)\s?(?!0)|0)(?:\d[\s-]?){8,9}\d(?!\d)"
)
# Obfuscated numbers `_PHONE` misses: digit by digit ("0 9 0 6 ..."), dotted ("0906.170.1461"),
# bracketed ("(0906) 1701461"), slashed ("0906/170/1461": a '/' only before 3+ digits, so a date
# or "1461/2" ends the run) or with a trunk zero ("+44 (0) 906 ..."). A candidate is a whole
# run of digits and separators; `_obfuscated_phone` keeps it only when its groups look like a
# number (all single digits, or all of 3+ digits), so times, dates and prices stay out.
# Square brackets, "_", "*" and a middle dot separate groups too ("[0906] 170 1461", "0906*170*1461").
_PHONE_RUN = re.compile(r"(?<![\w£$€.,/+-])(?:\+44|0044|[(\[]0|0)(?:[ .()\[\]_*·-]{1,3}\d|/\d{3}|\d)+")
# The same with letter O for zero ("09OO 123 4567", "O7700 900123"); `_o_phone` decides. No
# trailing condition, so a start never fails after reading its run (linear, like `_PHONE_RUN`).
_PHONE_O_RUN = re.compile(r"(?<![\w£$€.,/+-])(?:\+44|0044|[(\[]0|0|o)(?:[ .()\[\]_*·-]{1,3}[\do]|/[\do]{3}|[\do])*")
_O_NEAR_DIGIT = re.compile(r"\do|o\d")
# A WhatsApp chat link's number ("wa.me/447700900123", "api.whatsapp.com/send?phone=44..."), read
# from the cleaned URL: the same number as "07700 900123" in another text. UK numbers only, as
# every phone entity (a number in another country has no trunk form to link with).
_WA_ME = re.compile(r"wa\.me/(?:\+|%2b)?(\d{9,15})(?![\w])", re.I)
_WA_SEND = re.compile(r"(?:api\.|web\.)?whatsapp\.com/send/?\?(?:[^#&]*&)*?phone=(?:\+|%2b)?(\d{9,15})(?![\w])",
                      re.I)
# A number spelled in words ("zero seven seven zero zero ...", "oh nine oh six"), after a word that
# says a number follows; `_word_phone` keeps a whole run of 10 or 11 digits only. A run is read
# once (no start after "-" or inside a word), each start reads a bounded stretch (linear).
_DIGIT_WORD = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
               "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_DW = "|".join(_DIGIT_WORD)
_PHONE_WORDS = re.compile(r"(?<![\w-])(?:zero|oh)(?:(?: ?- ?| )(?:" + _DW + r")){9,10}(?![\w-])")
_PHONE_CUE = re.compile(r"\b(?:call|ring|dial|phone|tel|text|txt|number|no|mobile|whatsapp|contact|on)\W{0,3}$")
_TRUNK = re.compile(r"^(?:\+44|0044) ?\(0\)")
# Short codes: five digits starting 6-8 (UK premium SMS ranges) not part of money or a longer
# number, nor an amount ("75000 pounds", "75000k"); `_MONEY` spans are skipped as well.
_SHORTCODE = re.compile(
    r"(?<![\d£$€.,])[6-8]\d{4}(?![\d,]|\.\d|p\b|%|k\b| ?(?:quid|grand|euros?|bucks)\b)"
)
# `(?<!\d,)`: a number's inner comma group ("1,000") is never a start of its own (linear time).
_MONEY = re.compile(r"[£$€]\s?\d[\d,]*(?:\.\d+)?(?:k|m)?|\b(?<!\d,)\d[\d,]*(?:\.\d+)?\s?(?:pounds|gbp|usd|dollars|p\b|ppm\b)")
_WORD_WITH_DIGIT = re.compile(r"\b\w*\d\w*\b")
_PUNCT_RUN = re.compile(r"([!?.,*\-_=~])\1+")
_SPACE = re.compile(r"\s+")
# The www./wap./m. prefix of a host (not its only label: "m.com" stays as it is).
_SUBDOMAIN = re.compile(r"^(?:www|wap|m)\.(?=[^/?#]*\.)")
# A URL's scheme and host: the part whose case does not matter (its path's does).
_AUTHORITY = re.compile(r"(?:https?://)?[^/?#]*")
_DEFAULT_PORT = re.compile(r"^([^/?#]*):(?:80|443)(?=$|[/?#])")

# -- folding what a reader cannot tell apart --------------------------------------------------
# Every fold maps one character to one character, so a span found in the folded text is the same
# span of the text as written (`_forms`): URLs keep their real host (a look-alike domain is
# another domain), while templates and patterns read the folded form.
# Dashes a phone number is written with ("0906–170–1461"), folded only between digits.
_DIGIT_DASH = re.compile(r"(?:(?<=\d)|(?<=\d ))[\u2010-\u2015\u2212\u2043\ufe58](?= ?\d)")
# The ideographic full stop, which browsers read as a dot in a host name ("prize。com").
_IDEO_DOT = re.compile(r"(?<=[a-z0-9-])\u3002(?=[a-z0-9])")
# Cyrillic and Greek letters that look like Latin ones (as casefolded; an upper-case look-alike
# such as Cyrillic Н or Т folds to the letter it imitated), and Latin small capitals.
_LOOKALIKE = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "н": "h", "і": "i", "ї": "i", "ј": "j", "к": "k",
    "ӏ": "l", "м": "m", "о": "o", "р": "p", "ԛ": "q", "г": "r", "ѕ": "s", "т": "t", "ц": "u", "ѵ": "v",
    "ԝ": "w", "х": "x", "у": "y", "ү": "y", "с": "c", "ԁ": "d", "ɡ": "g",
    "α": "a", "β": "b", "ε": "e", "ζ": "z", "η": "h", "ι": "i", "κ": "k", "μ": "m", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w",
}
_SMALL_CAPS = dict(zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢɑɩı", "abcdefghijklmnoprstuvwyzaii"))
_GREEK_CYRILLIC = re.compile(r"[\u0370-\u03ff\u0400-\u052f\u1f00-\u1fff]")
_ASCII_LETTER = re.compile(r"[a-z]")
_TOKEN = re.compile(r"\S+")
# A right-to-left override (U+202E) shows the characters after it, to a closing PDF (U+202C), the
# next embedding or override, or the line's end, in reverse: "\u202emoc.live//:ptth" reads
# "http://evil.com". Such a run with no right-to-left letter is read as shown (`_as_shown`).
_OVERRIDE = re.compile("\u202e([^\u202a-\u202e\u2066-\u2069\n\r\u2028\u2029]*)(\u202c?)")
_WHITESPACE = re.compile(r"\s")
_RTL_LETTER = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefe\U00010800-\U00010fff\U0001e800-\U0001efff]")


@functools.cache
def _always_table() -> dict[int, str]:
    """Non-ASCII decimal digits ("٠٩٠٦", "०९०६": NFKC keeps them) to ASCII, and Latin small capitals."""
    table = {c: str(unicodedata.decimal(chr(c))) for c in range(0x80, 0x20000)
             if unicodedata.category(chr(c)) == "Nd"}
    table.update({ord(k): v for k, v in _SMALL_CAPS.items()})
    return table


_LOOKALIKE_TABLE = {ord(k): v for k, v in _LOOKALIKE.items()}


@functools.cache
def _stray_marks() -> re.Pattern[str]:
    """A run of combining marks (Mn, Mc, Me) NFKC left on an ASCII character, a look-alike or a Latin
    letter, with that character: no composed form exists ("z̴a̴l̴g̴o̴", a strike-through), so no
    language writes it; the marks dropped, a marked link, number or word reads as the plain one.
    Zalgo piles on accents that compose too ("ẁ̖҉"): two or more marks left on an accented Latin
    letter go with its accents (`_bare`); one (a Yoruba tone on "ẹ") stays, as do marks after other
    letters (Devanagari vowel signs, Hebrew points). Linear: a match is one character and its marks."""
    planes = (range(0x300, 0x20000), range(0xE0100, 0xE01F0))  # where the marks live
    spans: list[list[int]] = []
    for c in (c for r in planes for c in r if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me")):
        if spans and spans[-1][1] == c - 1:
            spans[-1][1] = c
        else:
            spans.append([c, c])
    marks = "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in spans)
    return re.compile(r"[\x20-\x7e\u00c0-\u024f\u1e00-\u1eff" + "".join(_LOOKALIKE) + "][" + marks + "]+")


def _accented(ch: str) -> bool:
    """Whether `ch` is an accented Latin letter (a `_stray_marks` base past ASCII, no look-alike)."""
    return "\u00c0" <= ch <= "\u1eff" and not _GREEK_CYRILLIC.match(ch)


def _bare(ch: str) -> str:
    """An accented Latin letter without its accents ("ẁ" -> "w"); any other character as it is."""
    return unicodedata.normalize("NFD", ch)[0] if _accented(ch) else ch


def _as_shown(text: str) -> str:
    """`text` with each right-to-left override run of Latin text (`_OVERRIDE`) in the order it is
    shown, so a reversed link or number reads as its plain copy; other text as written. Only a
    deliberate run: closed by a PDF, or one token (a link, a number, a file name). An override
    dropped into a wave's words, left open, shows them garbled: read as an invisible character,
    so the copy still reads as the plain text it was written as."""
    def shown(m: re.Match[str]) -> str:
        run = m.group(1)
        if _RTL_LETTER.search(run) or not (m.group(2) or not _WHITESPACE.search(run)):
            return m.group(0)
        return "\u202e" + run[::-1] + m.group(2)
    return _OVERRIDE.sub(shown, text)


def _unconfuse(text: str) -> str:
    """Greek and Cyrillic look-alikes read as the Latin letters they imitate: in every word that
    mixes them with Latin letters, and everywhere when the text has Latin letters and no other
    Greek or Cyrillic letter (a Latin text in disguise). Genuine Greek or Cyrillic words stay."""
    found = _GREEK_CYRILLIC.findall(text)
    if not found:
        return text
    if _ASCII_LETTER.search(text) and all(ch in _LOOKALIKE for ch in found):
        return text.translate(_LOOKALIKE_TABLE)
    return _TOKEN.sub(lambda m: m.group(0).translate(_LOOKALIKE_TABLE)
                      if _ASCII_LETTER.search(m.group(0)) and _GREEK_CYRILLIC.search(m.group(0)) else m.group(0),
                      text)


@dataclass(frozen=True)
class Entities:
    """The linkable values found in one text, each kind a sorted tuple of distinct values."""

    url: tuple[str, ...] = ()
    host: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    phone: tuple[str, ...] = ()
    shortcode: tuple[str, ...] = ()
    _fields: tuple[str, ...] = field(default=ENTITY_KINDS, repr=False, compare=False)

    def items(self, kinds: tuple[str, ...] | list[str] = ENTITY_KINDS) -> list[tuple[str, str]]:
        """(kind, value) pairs for the requested kinds, in kind then value order."""
        return [(k, v) for k in kinds for v in getattr(self, k)]

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(getattr(self, k)) for k in ENTITY_KINDS if getattr(self, k)}

    def __bool__(self) -> bool:
        return any(getattr(self, k) for k in ENTITY_KINDS)


def _host_of(url: str) -> str:
    u = re.sub(r"\s", "", url)
    u = re.sub(r"^https?://", "", u)
    host = re.split(r"[/?#:]", u, maxsplit=1)[0].strip(".")
    return _SUBDOMAIN.sub("", host)


def _ascii_host(host: str) -> str:
    """An internationalised host in punycode ("xn--..."), as a browser resolves it; as written
    when it is no valid IDNA name."""
    if host.isascii() or len(host) > 253 or any(len(label) > 63 for label in host.split(".")):
        return host  # (no DNS name is longer; punycode time grows with the square of a label)
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _clean_url(url: str, cased: str | None = None) -> str:
    """The URL without scheme, the www./wap./m. prefix `_host_of` drops, a default port, trailing
    punctuation or '/', its host in punycode: one link written several ways is one entity. Its
    path, query and fragment are read from `cased` (the same span in its written case): a short
    link's path is case-sensitive, "bit.ly/AbCd" and "bit.ly/aBcD" are two links."""
    if cased is not None:
        m = _AUTHORITY.match(url)
        host_end = m.end() if m else 0
        url = url[:host_end] + cased[host_end:]
    u = re.sub(r"\s", "", url).rstrip(".,;:!?)'\"")
    u = re.sub(r"^https?://", "", u)
    u = _DEFAULT_PORT.sub(r"\1", _SUBDOMAIN.sub("", u)).rstrip("/")
    cut = re.search(r"[/?#:]", u)
    end = cut.start() if cut else len(u)
    return _ascii_host(u[:end]) + u[end:]


def _uk_number(digits: str | None) -> str | None:
    """`digits` when they can be a UK number in trunk form (0, then a digit 1-9, 10 or 11 digits in
    all), else None: "0 0 0 0 0 0 0 0 0 0" or a foreign "0033 1 23 45 67 89" read from its first 0
    made one phone key of unrelated texts."""
    return digits if digits and len(digits) in (10, 11) and digits[0] == "0" and digits[1] != "0" else None


def _phone_digits(raw: str) -> str | None:
    digits = re.sub(r"\D", "", raw)
    if digits.startswith("0044"):
        digits = "0" + digits[4:]
    elif digits.startswith("44") and raw.lstrip().startswith("+"):
        digits = "0" + digits[2:]
    return _uk_number(digits)


def _word_phone(light: str, s: int, raw: str) -> str | None:
    """The digits of a `_PHONE_WORDS` run after a word saying a number follows ("call", "on"), or None."""
    if not _PHONE_CUE.search(light, max(0, s - 16), s):
        return None
    return _uk_number("".join(_DIGIT_WORD[w] for w in re.findall(r"[a-z]+", raw)))


def _obfuscated_phone(raw: str) -> str | None:
    """The digits of a `_PHONE_RUN` candidate, or None when it does not look like one number:
    its digit groups must be all single digits ("0 9 0 6 ...") or, past a lone leading 0, all of
    3+ digits ("0906.170.1461"), so "01.02.2024 10.30" or "0.5p 1 2" are never a phone."""
    trunk = _TRUNK.match(raw)
    groups = re.findall(r"\d+", raw[trunk.end():] if trunk else raw)
    intl = raw.startswith(("+44", "0044"))
    if intl and not trunk:
        groups = groups[1:]  # the country code is a group of its own
    rest = groups[1:] if groups and groups[0] == "0" else groups
    if not rest or not (all(len(g) == 1 for g in groups) and "/" not in raw or all(len(g) >= 3 for g in rest)
                        or trunk and len(rest[0]) >= 2 and all(len(g) >= 3 for g in rest[1:])):
        return None  # (a London-style "+44 (0)20 7946 0018": a 2-digit area code after the trunk)
    digits = ("0" if intl else "") + "".join(groups)
    if intl and digits.startswith("00"):  # "+44 07700 900123": the trunk 0 written after +44
        digits = digits[1:]
    return _uk_number(digits)


def _o_phone(raw: str, after: str) -> str | None:
    """The digits of a `_PHONE_O_RUN` candidate with letter O for zero, or None: an O must sit in a
    group with a real digit 1-9 ("09oo", not "0 or"), 4+ such digits in all, no letter right after
    it (a word), and with O read as 0 it must be a number `_PHONE` or `_obfuscated_phone` takes."""
    if "o" not in raw or after.isalpha() or len(re.findall(r"[1-9]", raw)) < 4:
        return None
    if any("o" in g and not re.search(r"[1-9]", g) for g in re.findall(r"[\do]+", raw)):
        return None
    folded = raw.replace("o", "0")
    return _phone_digits(folded) if _PHONE.fullmatch(folded) else _obfuscated_phone(folded)


def _whatsapp_phone(url: str) -> str | None:
    """The UK number a cleaned WhatsApp chat link opens, in the form of every phone entity."""
    m = _WA_ME.match(url) or _WA_SEND.match(url)
    if not m or not m.group(1).startswith("44"):
        return None
    return _uk_number("0" + m.group(1)[2:].removeprefix("0"))  # "+44 0..." as "+44 ..." (see `_PHONE`)


def _edit(text: str, edits: list[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for s, e, new in edits:
        out += [text[pos:s], new]
        pos = e
    return "".join(out) + text[pos:]


def _spelled_host(light: str, m: re.Match[str]) -> bool:
    """Whether a `_SPELLED_HOST` candidate is a link and no sentence: it has a spaced or spelled
    dot, and www or a scheme before it, a path after a spaced dot, or a "co dot uk" or " . com"
    ending."""
    span = m.group(0)
    if not _SPACED_SEP.search(span):
        return False
    if span.endswith("/") and " ." in span and light[m.end():m.end() + 1] not in ("", " "):
        return True  # ("the dot com/internet era" is a sentence)
    return bool(_SPELLED_SURE.search(span)) or light.endswith("://", 0, m.start())


def _defang(light: str, *twins: str) -> tuple[str, ...]:
    """`light` with defanged links made plain ("hxxps://a[.]com" -> "https://a.com", "www dot a
    dot com" -> "www.a.com"), and the same replacements made at the same places in each of
    `twins` (its unfolded copies, `light` itself when none is given)."""
    twins = twins or (light,)
    for needed, find in ((("hxxp",), lambda t: [(m.start(), m.end(), f"http{m.group(1)}://")
                                                 for m in _DEFANG_SCHEME.finditer(t)]),
                         ((".", "dot"), lambda t: [(m.start(), m.end(), ".") for m in _DEFANG_DOT.finditer(t)]),
                         ((" dot ", " ."), lambda t: [(m.start() + d.start(), m.start() + d.end(), ".")
                                                          for m in _SPELLED_HOST.finditer(t) if _spelled_host(t, m)
                                                          for d in _SEP_RE.finditer(m.group(0))]),
                         (("at]", "at)", "at}", "@]", "@)", "@}"),
                          lambda t: [(m.start(), m.end(), "@") for m in _DEFANG_AT.finditer(t)])):
        if not any(n in light for n in needed):  # the common case: nothing to rewrite
            continue
        edits = find(light)
        if edits:
            light, twins = _edit(light, edits), tuple(_edit(t, edits) for t in twins)
    return (light, *twins)


@functools.cache
def _long_fold_table() -> dict[int, str]:
    """The characters whose casefold is longer than one ("ß" -> "ss"), to their casefold."""
    return {c: chr(c).casefold() for c in range(0x10000) if len(chr(c).casefold()) != 1}


def _cased(text: str, light: str) -> str:
    """`light` with the case as written (what casefold changed, aligned character by character:
    "ß" is "ss" in both), or `light` itself where the two do not line up."""
    cased = _SPACE.sub(" ", visible_text(text)).strip()
    if len(cased) != len(light):  # a character that folds to two ("ß" -> "ss") is written so
        cased = cased.translate(_long_fold_table())
    return cased if len(cased) == len(light) and cased.casefold() == light else light


def _forms(text: str) -> tuple[str, str, str]:
    """(folded, written, cased): the text as every pattern and template reads it (light-normalised,
    digits, dashes between digits, ideographic dots and look-alike letters folded, links
    defanged), the same characters with letters as written, for the real host of a URL, and
    those again in their written case, for a URL's case-sensitive path."""
    if "\u202e" in text:
        text = _as_shown(text)
    light = normalize_light(text)
    cased = _cased(text, light)
    if light.isascii():  # the common case: nothing to fold
        light, written, cased = _defang(light, light, cased)
        return light, written, cased
    table = _always_table()
    written, cased = light.translate(table), cased.translate(table)
    marks = [(m.start(), m.end()) for m in _stray_marks().finditer(written)
             if m.end() - m.start() > 2 or not _accented(m.group(0)[0])]
    if marks:  # dropped at the same places in both: they stay aligned
        written, cased = (_edit(t, [(a, b, _bare(t[a])) for a, b in marks]) for t in (written, cased))
    written, cased = _DIGIT_DASH.sub("-", written), _DIGIT_DASH.sub("-", cased)
    light = _unconfuse(written)
    dots = [m.start() for m in _IDEO_DOT.finditer(light)]  # read on the folded letters
    if dots:
        light, written, cased = (_put(light, dots, "."), _put(written, dots, "."), _put(cased, dots, "."))
    light, written, cased = _defang(light, written, cased)
    return light, written, cased


def _put(text: str, places: list[int], ch: str) -> str:
    chars = list(text)
    for i in places:
        chars[i] = ch
    return "".join(chars)


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0)) for m in pattern.finditer(text)]


class _Taken:
    """Non-overlapping spans kept sorted, so whether a new one overlaps any costs a binary search
    (checking every span taken so far made a text of thousands of numbers or links quadratic:
    100 KB of short codes took 11 s in `cluster`)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def free(self, s: int, e: int) -> bool:
        i = bisect.bisect_right(self.starts, s)  # spans before i start at or before s
        return not (i and self.ends[i - 1] > s) and (i == len(self.starts) or self.starts[i] >= e)

    def add(self, s: int, e: int) -> None:
        i = bisect.bisect_right(self.starts, s)
        self.starts.insert(i, s)
        self.ends.insert(i, e)


def _entity_spans(light: str, written: str | None = None, cased: str | None = None) -> list[tuple[int, int, str, str]]:
    """Non-overlapping (start, end, kind, value) spans, the earlier-listed kind winning overlaps.
    A URL's host is read from `written` (the same span, letters as written: `_forms`), its path
    from `cased` (in its written case too)."""
    written = light if written is None else written
    cased = written if cased is None else cased
    found: list[tuple[int, int, str, str]] = []
    taken = _Taken()

    def take(s: int, e: int, kind: str, value: str) -> None:
        found.append((s, e, kind, value))
        taken.add(s, e)

    for s, e, raw in (_spans(_EMAIL, light) if "@" in light else []):
        at = raw.rindex("@")  # the local part folded; the domain as written: a look-alike is another domain
        take(s, e, "email", f"{raw[:at]}@{_ascii_host(written[s + at + 1:e].lower())}")
    for pattern in (_URL_IP, _URL_PREFIXED, _URL_BARE):
        for s, e, _raw in _spans(pattern, light):
            if taken.free(s, e):
                take(s, e, "url", _clean_url(written[s:e], cased[s:e]))
    for s, e, raw in _spans(_PHONE, light):
        digits = _phone_digits(raw) if taken.free(s, e) else None
        if digits:
            take(s, e, "phone", digits)
    for s, e, raw in _spans(_PHONE_RUN, light):
        digits = _obfuscated_phone(raw) if taken.free(s, e) else None
        if digits:
            take(s, e, "phone", digits)
    for s, e, raw in (_spans(_PHONE_O_RUN, light) if _O_NEAR_DIGIT.search(light) else []):
        body = raw.rstrip("o")
        if light[e:e + 1].isalpha() and body != raw and body[-1:] in tuple(" .()[]_*·-"):
            raw = body.rstrip(" .()[]_*·-")  # the run read on into a word ("... 1461 or"): no digit
            e = s + len(raw)
        digits = _o_phone(raw, light[e:e + 1]) if taken.free(s, e) else None
        if digits:
            take(s, e, "phone", digits)
    for s, e, raw in (_spans(_PHONE_WORDS, light) if "zero" in light or "oh" in light else []):
        digits = _word_phone(light, s, raw) if taken.free(s, e) else None
        if digits:
            take(s, e, "phone", digits)
    # an amount ("75000 pounds") is money, never a short code; the template still says <money>
    money = _Taken()
    for s, e, _raw in _spans(_MONEY, light):
        money.add(s, e)
    for s, e, raw in _spans(_SHORTCODE, light):
        if taken.free(s, e) and money.free(s, e):
            take(s, e, "shortcode", raw)
    return sorted(found)


def _entities_from(spans: list[tuple[int, int, str, str]]) -> Entities:
    values: dict[str, set[str]] = {k: set() for k in ENTITY_KINDS}
    for _s, _e, kind, value in spans:
        values[kind].add(value)
        if kind == "url":
            host = _host_of(value)
            if host:
                values["host"].add(host)
            phone = _whatsapp_phone(value)
            if phone:
                values["phone"].add(phone)
        elif kind == "email":
            values["host"].add(value.rsplit("@", 1)[1])
    return Entities(**{k: tuple(sorted(v)) for k, v in values.items()})


def _template_from(light: str, spans: list[tuple[int, int, str, str]]) -> str:
    out: list[str] = []
    pos = 0
    for s, e, kind, _value in spans:
        out.append(light[pos:s])
        out.append(f" <{kind}> ")
        pos = e
    out.append(light[pos:])
    body = "".join(out)
    body = _MONEY.sub(" <money> ", body)
    body = _WORD_WITH_DIGIT.sub(" <num> ", body)
    body = _PUNCT_RUN.sub(r"\1", body)
    return _SPACE.sub(" ", body).strip()


def analyse(text: str) -> tuple[str, Entities]:
    """`normalize_template(text)` and `extract_entities(text)` in one pass over the text."""
    light, written, cased = _forms(text)
    spans = _entity_spans(light, written, cased)
    return _template_from(light, spans), _entities_from(spans)


def extract_entities(text: str) -> Entities:
    """URLs (and their hosts), e-mails, phone numbers (incl. 09xx premium) and SMS short codes."""
    return _entities_from(_entity_spans(*_forms(text)))


def normalize_template(text: str) -> str:
    """The text with variable parts as tokens, so template variants of one message collide."""
    light, written, cased = _forms(text)
    return _template_from(light, _entity_spans(light, written, cased))
