"""Hostile YAML configs, second pass: alias bombs, cycles, deep nesting, huge files, quoted numbers,
YAML 1.1 booleans as names, label names a store or a screen cannot hold, and settings that loaded
but broke far from the file (a sweeper thread, a session deadline, a logout link). Each must be
one line naming the file and field, never a traceback and never a silent wrong value."""
from __future__ import annotations

import shutil

import pytest

from clustering.config import load_campaign_settings
from core.config import ConfigError, config_dir
from core.taxonomy import load_taxonomy
from core.web_config import load_web_config
from evaluation.config import load_evaluation_config
from labeling.review_config import load_review_settings
from models.config import load_models_config


@pytest.fixture
def cfg(tmp_path):
    out = tmp_path / "cfg"
    shutil.copytree(config_dir(), out)
    return out


def _edit(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _refused(load, *needles):
    """The ConfigError of `load()`, asserted to be one line holding every needle."""
    with pytest.raises(ConfigError) as err:
        load()
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 400, msg[:600]
    for needle in needles:
        assert needle in msg, msg
    return msg


_NEW_POLICY = """  {name}:
    title: "x"
    violating: true
    severity: P2
    policy_ref: "TS-X"
    actions: [remove]
    default_action: remove

# Escalation criteria"""


def _add_policy(cfg, name):
    _edit(cfg / "taxonomy.yaml", "\n# Escalation criteria", _NEW_POLICY.format(name=name))


# -- the YAML document itself --------------------------------------------------------------------
def test_an_alias_bomb_is_refused_before_anything_walks_it(cfg):
    bomb = "x0: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"x{i + 1}: &b{i} [{', '.join(['*' + ('a' if i == 0 else f'b{i - 1}')] * 10)}]\n" for i in range(4))
    _edit(cfg / "models.yaml", "kinds:\n", bomb + "kinds:\n  nblr: {alpha: *b3}\nkinds_x:\n")
    _refused(lambda: load_models_config(cfg), "models.yaml", "line", "expand to more than")


def test_an_alias_inside_what_it_names_is_a_cycle(cfg):
    _edit(cfg / "taxonomy.yaml", 'version: "2026.11.1"', "version: &v [*v]")
    _refused(lambda: load_taxonomy(cfg), "taxonomy.yaml: line 4", "cycle")


@pytest.mark.parametrize("nest", ["[" * 3000 + "]" * 3000, "{a: " * 3000 + "1" + "}" * 3000])
def test_deep_nesting_is_one_line_not_a_recursion_error(cfg, nest):
    (cfg / "taxonomy.yaml").write_text(f"version: {nest}\n", encoding="utf-8")
    _refused(lambda: load_taxonomy(cfg), "taxonomy.yaml: line 1", "nested more than")


def test_a_huge_file_is_refused_unread(cfg):
    with open(cfg / "taxonomy.yaml", "a", encoding="utf-8") as fh:
        fh.write("# " + "x" * (1 << 20) + "\n")
    _refused(lambda: load_taxonomy(cfg), "taxonomy.yaml", "larger than")


def test_a_raw_control_character_is_one_line_with_its_line(cfg):
    _edit(cfg / "review.yaml", "similar_k: 8", "similar_k: 8\x1b")
    _refused(lambda: load_review_settings(cfg), "review.yaml: line", "U+001B")


def test_an_escaped_control_character_is_refused_by_field(cfg):
    # In double quotes "\b" is a backspace, not a word boundary: the criterion never matched.
    _edit(cfg / "taxonomy.yaml", r"patterns: ['\b(underage|under\s?age|minor|child|kid|preteen)s?\b.{0,40}\b(nude|naked|sex|pics|photos)\b']",
          r'patterns: ["\bchild\b"]')
    _refused(lambda: load_taxonomy(cfg), "field 'escalation[1].patterns[0]'", "U+0008")


def test_an_empty_file_says_so(cfg):
    (cfg / "web.yaml").write_text("# all settings removed\n", encoding="utf-8")
    _refused(lambda: load_web_config(cfg), "web.yaml: the file is empty")


# -- values of the wrong type, read silently as another ------------------------------------------
@pytest.mark.parametrize("file,old,new,field,load", [
    ("taxonomy.yaml", "sla_minutes: 30,", 'sla_minutes: "30",', "severities.P0.sla_minutes", load_taxonomy),
    ("review.yaml", "mask_min_score: 0.15", 'mask_min_score: "0.5"', "mask_min_score", load_review_settings),
    ("web.yaml", "window_seconds: 900", 'window_seconds: "900"', "login.window_seconds", load_web_config),
    ("models.yaml", "weight_grid: [1.0, 3.0, 10.0]", 'weight_grid: ["1", 3.0, 10.0]', "learning.weight_grid.0",
     load_models_config),
])
def test_a_quoted_number_is_refused(cfg, file, old, new, field, load):
    _edit(cfg / file, old, new)
    _refused(lambda: load(cfg), file, f"field '{field}'", "without quotes")


@pytest.mark.parametrize("value", ['"no"', "0"])
def test_a_boolean_field_takes_only_true_or_false(cfg, value):
    _edit(cfg / "taxonomy.yaml", "    violating: false", f"    violating: {value}")
    _refused(lambda: load_taxonomy(cfg), "field 'policies.benign.violating'", "true or false")


@pytest.mark.parametrize("file,old,load", [
    ("taxonomy.yaml", 'version: "2026.11.1"', load_taxonomy),
    ("evaluation.yaml", 'version: "2026.12.1"', load_evaluation_config),
    ("review.yaml", 'version: "2026.11.1"', load_review_settings),
])
def test_a_version_written_as_a_float_is_refused_not_truncated(cfg, file, old, load):
    _edit(cfg / file, old, "version: 2026.10")  # read as 2026.1
    _refused(lambda: load(cfg), file, "field 'version'", "quotes")


def test_a_yes_policy_name_names_the_problem(cfg):
    _add_policy(cfg, "yes")
    _refused(lambda: load_taxonomy(cfg), "field 'policies'", "the key true", "quotes")


@pytest.mark.parametrize("labels,why", [
    ("{ham: benign, spam: spam, yes: spam}", "in quotes"),         # became the label "True"
    ("{ham: benign, spam: spam, ' spam': benign}", "given twice"),  # ingest strips: which one wins?
])
def test_source_labels_that_no_row_can_carry_are_refused(cfg, labels, why):
    _edit(cfg / "taxonomy.yaml", "labels: {ham: benign, spam: spam}", f"labels: {labels}")
    _refused(lambda: load_taxonomy(cfg), "field 'sources.sms_spam.labels'", why)


def test_a_source_label_given_as_number_and_text_is_refused(cfg):
    _edit(cfg / "taxonomy.yaml", 'labels: {"0": hate,', 'labels: {"0": hate, 0: benign,')
    _refused(lambda: load_taxonomy(cfg), "field 'sources.davidson.labels'", "given twice")


# -- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,why", [
    ('"<img src=x onerror=alert(1)>"', "letters, digits"),
    ('"hat\\u202ee"', "letters, digits"),     # a bidi override: shows as another label
    ('"ｈａｔｅ"', "letters, digits"),           # fullwidth: NFKC folds it onto hate
    ('"hate "', "letters, digits"),
    ("Hate", "differ only in case"),
    ("x" * 51, "at most 50"),                # decisions.label is String(50): PostgreSQL refuses it
])
def test_a_policy_label_must_be_a_plain_distinct_name(cfg, name, why):
    _add_policy(cfg, name)
    _refused(lambda: load_taxonomy(cfg), "field 'policies'", why)


def test_a_tier_longer_than_its_column_is_refused(cfg):
    _edit(cfg / "taxonomy.yaml", "  P3: {name: low", "  critical_p4: {name: lowest, sla_minutes: 9000, weight: 1}\n"
                                                     "  P3: {name: low")
    _refused(lambda: load_taxonomy(cfg), "field 'severities'", "at most 10")


def test_escalation_ids_and_action_lists_are_distinct(cfg):
    _edit(cfg / "taxonomy.yaml", "id: child_safety", "id: Credible_Threat")
    _refused(lambda: load_taxonomy(cfg), "field 'escalation'", "differ only in case")
    _edit(cfg / "taxonomy.yaml", "id: Credible_Threat", "id: child_safety")
    _edit(cfg / "taxonomy.yaml", "actions: [no_action]", "actions: [no_action, no_action]")
    _refused(lambda: load_taxonomy(cfg), "field 'policies.benign.actions'", "more than once")


def test_name_limits_are_the_store_columns():
    from core import schema
    from core.taxonomy import MAX_LABEL_CHARS, MAX_REF_CHARS, MAX_TIER_CHARS, MAX_VERSION_CHARS

    assert schema.Decision.__table__.c.label.type.length == MAX_LABEL_CHARS
    assert schema.Decision.__table__.c.action.type.length == MAX_LABEL_CHARS
    assert schema.Item.__table__.c.policy_label.type.length == MAX_LABEL_CHARS
    assert schema.Case.__table__.c.severity.type.length == MAX_TIER_CHARS
    assert schema.Decision.__table__.c.severity.type.length == MAX_TIER_CHARS
    assert schema.Decision.__table__.c.taxonomy_version.type.length == MAX_VERSION_CHARS
    assert schema.Decision.__table__.c.policy_ref.type.length == MAX_REF_CHARS
    assert schema.Item.__table__.c.source_label.type.length == MAX_REF_CHARS


# -- settings that loaded, then failed far from the file -----------------------------------------
def test_session_timeouts_that_overflow_a_date_are_refused(cfg):
    _edit(cfg / "web.yaml", "idle_timeout_seconds: 1800", "idle_timeout_seconds: 100000000000000")
    _refused(lambda: load_web_config(cfg), "field 'session.idle_timeout_seconds'")
    _edit(cfg / "web.yaml", "idle_timeout_seconds: 100000000000000", "idle_timeout_seconds: 1800")
    _edit(cfg / "web.yaml", "absolute_timeout_hours: 12", "absolute_timeout_hours: 1.0e12")
    _refused(lambda: load_web_config(cfg), "field 'session.absolute_timeout_hours'")


@pytest.mark.parametrize("url", ['"javascript:alert(document.cookie)"', '"/out\\r\\nSet-Cookie: a=b"',
                                 '"/sign_out?rd=/caf\u00e9\u20ac"', '"//evil.example/"'])
def test_a_logout_url_must_be_a_path_or_http_url(cfg, url):
    _edit(cfg / "web.yaml", "logout_url: null", f"logout_url: {url}")
    _refused(lambda: load_web_config(cfg), "field 'sso.logout_url'")


def test_a_logout_url_path_or_https_is_kept(cfg):
    _edit(cfg / "web.yaml", "logout_url: null", "logout_url: /oauth2/sign_out?rd=/")
    assert load_web_config(cfg).sso.logout_url == "/oauth2/sign_out?rd=/"


@pytest.mark.parametrize("net", ["0.0.0.0/0", "'::/0'"])
def test_trusting_every_address_as_a_proxy_is_refused(cfg, net):
    # With sso.enabled anyone could then send X-Forwarded-User and be signed in as anyone.
    _edit(cfg / "web.yaml", "trusted_proxies: []", f"trusted_proxies: [{net}]")
    _refused(lambda: load_web_config(cfg), "field 'trusted_proxies'", "every address")


def test_an_origin_with_a_query_is_refused(cfg):
    _edit(cfg / "web.yaml", "allowed_origins: []", 'allowed_origins: ["https://a.example?x"]')
    _refused(lambda: load_web_config(cfg), "field 'allowed_origins'")


@pytest.mark.parametrize("key,value", [("sweep_every_seconds: 300", 10**21), ("idle_seconds: 900", 10**21),
                                       ("lease_warning_seconds: 120", 10**21)])
def test_review_timers_past_a_day_are_refused(cfg, key, value):
    # threading.Event.wait(1e21) raises OverflowError: the sweeper thread died and no case escalated.
    _edit(cfg / "review.yaml", key, f"{key.split(':')[0]}: {value}")
    _refused(lambda: load_review_settings(cfg), f"field '{key.split(':')[0]}'")


def test_an_ensemble_members_params_are_checked_on_load(cfg):
    _edit(cfg / "models.yaml", "params: {C: 2.0}", "params: {C: -2.0}")
    _refused(lambda: load_models_config(cfg), "field 'kinds'", "ensemble.members[0].params.C", "> 0")


def test_ignore_hosts_are_read_as_entities_store_hosts(cfg):
    _edit(cfg / "campaigns.yaml", "ignore_hosts: [t.co, bit.ly,", "ignore_hosts: [t.co, www.Bit.ly.,")
    assert "bit.ly" in load_campaign_settings(cfg).ignore_hosts  # the entity is bit.ly: it never matched
    _edit(cfg / "campaigns.yaml", "www.Bit.ly.,", "'bit ly',")
    _refused(lambda: load_campaign_settings(cfg), "field 'ignore_hosts'")


def test_every_shipped_config_still_loads(cfg):
    taxonomy = load_taxonomy(cfg)
    load_review_settings(cfg, taxonomy)
    load_models_config(cfg)
    load_evaluation_config(cfg)
    load_web_config(cfg)
    load_campaign_settings(cfg)


def test_a_tier_at_the_limit_is_stored_and_one_past_it_is_not_on_postgresql(any_store):
    """Why the taxonomy caps a tier at MAX_TIER_CHARS: PostgreSQL refuses the case that records a
    longer one (SQLite keeps it), far from the file that named it."""
    import sqlalchemy as sa

    from core.schema import Case
    from core.taxonomy import MAX_TIER_CHARS

    with any_store.begin() as conn:
        conn.execute(sa.insert(Case.__table__).values(queue="q", severity="P" * MAX_TIER_CHARS))
    too_long = sa.insert(Case.__table__).values(queue="q", severity="P" * (MAX_TIER_CHARS + 1))
    if any_store.dialect == "postgresql":
        with pytest.raises(sa.exc.DataError), any_store.begin() as conn:
            conn.execute(too_long)
    with any_store.read() as conn:
        assert conn.execute(sa.select(Case.__table__.c.severity)).scalars().all()[0] == "P" * MAX_TIER_CHARS
