"""Hardening of configured patterns and stored tiers.

Escalation and refine patterns run on every candidate's text, which an attacker writes: on
Python's backtracking `re`, `(a+)+$` took 0.05 / 0.16 / 0.62 s on 18 / 20 / 22 a's and "!", so one
40-character post hung every case build. They now run on RE2 (linear time), and a pattern RE2
cannot run as written is refused when the taxonomy loads. A tier removed from the taxonomy while
stored cases and decisions still name it raised KeyError in `tier_weight` / `sla_minutes`: the
SLA sweep, escalation and appeals stopped for every such case."""
from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.config import ConfigError, config_dir
from core.schema import Case, Decision
from core.taxonomy import load_taxonomy
from core.text import normalize_light, pattern_search
from labeling import appeals as APP
from labeling import decisions as DEC
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.escalation import escalate, sweep
from labeling.priority import score_features, tier_weight
from labeling.routing import match_escalation, patterns_match

from test_queue_support import T0, add_scored

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cfg(tmp_path):
    out = tmp_path / "cfg"
    shutil.copytree(config_dir(), out)
    return out


def _edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


_THREAT = "patterns: ['\\b(i|we)"
_REFINE = "pattern: '\\b(win|"


# -- patterns on attacker-written text ----------------------------------------------------------------
def test_a_catastrophic_pattern_cannot_hang_escalation_or_ingest(cfg):
    """`(a+)+$` as an escalation pattern and as a refine pattern, run on 40 a's and "!": on `re`
    that is about 2**18 times the 0.62 s of 22 a's. In a child process, so a hang is killed."""
    tax = cfg / "taxonomy.yaml"
    _edit(tax, _THREAT, "patterns: ['(a+)+$', '\\b(i|we)")
    _edit(tax, _REFINE, "pattern: '(a+)+$|\\b(win|")
    script = textwrap.dedent(f"""
        from core.taxonomy import load_taxonomy
        from labeling.routing import match_escalation
        tax = load_taxonomy({str(tax)!r})
        text = "a" * 40 + "!"
        crit = match_escalation(tax, text, {{"harassment": 0.9}})
        print(crit.id if crit else None, tax.map_source_label("sms_spam", "spam", text))
    """)
    try:
        out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("matching a 41-character text against (a+)+$ did not finish in 120 s")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["None", "spam"]  # no match (a's then "!" is not "a+ at the end")


@pytest.mark.parametrize("pattern, why", [
    (r"(\w)\1{3}", "backreference"),
    (r"kill(?= you)", "lookahead"),
    (r"(?<!s)kill", "lookbehind"),
    (r"kill you\Z", r"\Z"),
    (r"(?x) kill \s you", "verbose flag"),
    (r"kil{,2} you", "{,n}: a literal on RE2, {0,n} on re"),
    (r"\bубью\b", "ASCII-only \\b around a Cyrillic word: never matches on RE2"),
    (r"угроза \w+", "ASCII-only \\w after a Cyrillic word"),
])
def test_an_escalation_pattern_re2_cannot_run_as_written_is_one_line_naming_file_criterion_and_pattern(
        cfg, pattern, why):
    tax = cfg / "taxonomy.yaml"
    _edit(tax, _THREAT, f"patterns: [{_yaml_quoted(pattern)}, '\\b(i|we)")
    with pytest.raises(ConfigError) as err:
        load_taxonomy(tax)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 500, msg
    for needle in (str(tax), "credible_threat", pattern, "not a valid regular expression"):
        assert needle in msg, (why, msg)


def test_a_refine_pattern_re2_cannot_run_is_refused_naming_the_pattern(cfg):
    tax = cfg / "taxonomy.yaml"
    _edit(tax, _REFINE, "pattern: '(?=x)\\b(win|")
    with pytest.raises(ConfigError) as err:
        load_taxonomy(tax)
    msg = str(err.value)
    assert "\n" not in msg and "sources.sms_spam.refine.0.pattern" in msg and "(?=x)" in msg, msg


def _yaml_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Texts the bundled patterns must judge exactly as they did on Python's `re` (IGNORECASE, on the
# raw text or its `normalize_light` form): plain hits and misses, case, invisible characters,
# fullwidth and non-Latin neighbours, a lone surrogate (RE2 reads UTF-8), long gaps.
_TEXTS = [
    "I will kill you tomorrow", "we gonna SHOOT up the place", "i'll burn it", "I am going to kill",
    "you're dead", "You Are going to die", "kill them all", "skill you have", "killer app",
    "k\u200bill you", "ｋｉｌｌ ｙｏｕ", "i\u00a0will\u00a0hurt", "i will\nstab", "we'll\tkill everyone",
    "minor nude pics", "underage photos", "under age " + "x" * 41 + " nude", "under age " + "x" * 30 + " nude",
    "kids sex", "preteens naked", "child actor photos", "a minor in photos", "minors\u00adpics",
    "WIN a prize now", "you won!", "call 0900123 now", "ringtone club", "awarded", "award", "winning",
    "bonus caller prize", "selected to receive", "cash", "cashier", "claim\u200byour", "wïn", "guaranteed!",
    "убью kill you", "é kill you", "kill\ud800you", "kill you\ud800", "", "a" * 50 + "!",
]


def _python_re_reference(patterns, text):
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    return any(r.search(text) or r.search(normalize_light(text)) for r in compiled)


def test_the_bundled_patterns_judge_texts_as_python_re_did(taxonomy):
    """Regression guard for the engine change (it passes on `re` too, by design): every bundled
    escalation and refine pattern gives the same answer on RE2 as on `re` for these texts."""
    refine = taxonomy.sources["sms_spam"].refine
    for text in _TEXTS:
        for crit in taxonomy.escalation:
            if crit.patterns:
                assert patterns_match(crit, text) == _python_re_reference(crit.patterns, text), (crit.id, text)
        for rule in refine:
            assert pattern_search(rule.regex, text) == _python_re_reference([rule.pattern], text), text
    scores = {label: 0.9 for label in taxonomy.labels}
    assert match_escalation(taxonomy, "I will kill you", scores).id == "credible_threat"
    assert taxonomy.map_source_label("sms_spam", "spam", "you WON a prize") == "scam"


# -- tiers stored before the taxonomy dropped them ------------------------------------------------------
def _cfg(queue_config):
    return queue_config.model_copy(update={"qa_share": 0.0, "calibration_sets": []})


def _retier(store, item_ids, tier):
    """What cases built under an older taxonomy hold: `tier` as their severity and feature."""
    C = Case.__table__
    with store.begin() as conn:
        for r in conn.execute(select(C.c.id, C.c.meta).where(C.c.item_id.in_(item_ids))).all():
            meta = dict(r.meta, features=dict(r.meta["features"], severity=tier))
            conn.execute(update(C).where(C.c.id == r.id).values(severity=tier, meta=meta))


def test_a_removed_tier_reads_as_the_lowest_tier(taxonomy):
    assert taxonomy.lowest_tier == "P3"
    assert tier_weight(taxonomy, "P9") == tier_weight(taxonomy, "P3") > 0
    assert taxonomy.sla_minutes("P9") == taxonomy.sla_minutes("P3")
    assert taxonomy.stored_tier("P9") == "P3" and taxonomy.stored_tier("P1") == "P1"
    assert taxonomy.stored_tier(None) is None


def test_the_sweep_ranks_cases_of_a_removed_tier_with_one_warning(any_store, queue_config, caplog):
    """Two cases stored at `P9`: the sweep raised KeyError('P9') and refreshed no priority at all."""
    taxonomy = load_taxonomy()  # its own: the warning is given once per loaded taxonomy
    cfg = _cfg(queue_config)
    add_scored(any_store, taxonomy, [{"id": f"s{i}", "label": "scam", "p": 0.9} for i in range(3)])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    _retier(any_store, ["s0", "s1"], "P9")
    later = T0 + dt.timedelta(hours=2)  # before the P1 case (s2) is due for SLA escalation
    with caplog.at_level(logging.WARNING):
        out = sweep(any_store, taxonomy, cfg, now=later, progress=False)
    assert out["reprioritised"] == 3
    warned = [r for r in caplog.records if "P9" in r.getMessage()]
    assert len(warned) == 1 and "\n" not in warned[0].getMessage() and "P3" in warned[0].getMessage()
    C = Case.__table__
    with any_store.read() as conn:
        rows = {r.item_id: r for r in conn.execute(select(C.c.item_id, C.c.priority, C.c.created_at,
                                                          C.c.due_at, C.c.meta))}
    s0 = rows["s0"]
    as_p3 = dict(s0.meta["features"], severity="P3")
    assert s0.priority == pytest.approx(score_features(taxonomy, as_p3, cfg, s0.created_at, s0.due_at, later)[0])


def test_a_case_of_a_removed_tier_can_be_escalated(any_store, taxonomy, queue_config):
    cfg = _cfg(queue_config)
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    _retier(any_store, ["a"], "P9")
    with any_store.read() as conn:
        case_id = conn.execute(select(Case.__table__.c.id)).scalar_one()
    when = T0 + dt.timedelta(minutes=10)
    out = escalate(any_store, taxonomy, case_id, "ann", "looks worse than it reads", cfg, now=when)
    assert out["queue"] == cfg.escalation_queue
    assert out["due_at"] == (when + dt.timedelta(minutes=taxonomy.sla_minutes("P3"))).isoformat()
    out = escalate(any_store, taxonomy, case_id, "ann", "credible threat", cfg, severity="P0", now=when)
    assert out["severity"] == "P0"


def test_a_decision_at_a_removed_tier_can_be_appealed(any_store, taxonomy, queue_config):
    """The decision stored at `P9`: filing its appeal raised KeyError('P9'), no appeal possible."""
    cfg = _cfg(queue_config)
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9, "text": "claim your prize"}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    c = next_case(any_store, "ann", "fraud", now=T0, config=cfg)
    older = taxonomy.model_copy(update={"severities": {**taxonomy.severities, "P9": taxonomy.severities["P2"]}})
    DEC.decide(any_store, older, c["id"], "ann", "scam", "block_sender", severity="P9", rationale="prize lure",
               now=T0 + dt.timedelta(minutes=5), config=cfg)  # decided under the taxonomy that had P9
    with any_store.read() as conn:
        assert conn.execute(select(Decision.__table__.c.severity)).scalar_one() == "P9"
    case = APP.appeal(any_store, "a", "user-1", "this was my bank", taxonomy,
                      now=T0 + dt.timedelta(hours=1), config=cfg)
    assert case["queue"] == cfg.appeals_queue and case["severity"] == "P3"
