"""Hostile and look-alike text against entity extraction, campaign search, seeding and lookups.

Entities link campaigns, so a pattern that is slow on one long text stalls `cluster`, an amount
taken for a short code merges ham into spam, and an obfuscated number or a defanged link escapes
linking. Queries a user types (search, seed, find) are refused in one line when unusable.
"""
from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from clustering import explore, service
from clustering.normalize import _EMAIL, _MONEY, _URL_PREFIXED, extract_entities, normalize_template
from clustering.search import search_text
from clustering.service import CampaignError
from core.config import config_dir
from core.principals import Principal
from labeling.errors import QueueError
from labeling.queue_config import load_queue_config
from labeling.search import SearchError, search
from labeling.seeding import check_example, check_keyword, seed_cases
from test_campaigns import HashingEmbedder, add_items, campaign_of, settings
from test_seeding import BagOfWords, _store
from workbench.cli import cli


@pytest.fixture(scope="module")
def cfg(taxonomy):
    return load_queue_config(config_dir(), taxonomy=taxonomy).model_copy(update={"calibration_sets": []})


# -- linear time: no match starts inside a run an earlier start already read ---------------------
@pytest.mark.parametrize("pattern,text,start", [
    (_EMAIL, "abcdefgh.ij-kl@prize.com", 5),   # inside the local part
    (_EMAIL, "1.2.3.4.5.6@x.co", 2),
    (_MONEY, "1,2,3,4,5 pounds", 2),           # inside a comma-grouped number
    (_MONEY, "10,000,000 pounds", 3),
])
def test_a_match_only_starts_at_the_start_of_a_run(pattern, text, start):
    """Each start re-scanning the rest of the run made `analyse` quadratic (a 100k-character text
    cost a minute); a match anchored at the run's start costs one scan of it."""
    assert pattern.match(text) is not None
    assert pattern.match(text, start) is None


def test_a_url_start_reads_a_bounded_number_of_labels():
    """`www.` followed by "a. " again and again was read to the end from every `www.`."""
    assert _URL_PREFIXED.match("www." + " a." * 20 + "com") is None
    assert _URL_PREFIXED.match("www.a.b.c.d.e.f.g.h.prize.co.uk").group(0) == "www.a.b.c.d.e.f.g.h.prize.co.uk"


# -- amounts are money, never short codes ---------------------------------------------------------
@pytest.mark.parametrize("text", [
    "Congratulations! You have won 75000 pounds in our weekly draw",
    "the old house finally sold for 75000 pounds",
    "it costs 70000 gbp or 70000k",
])
def test_an_amount_is_not_a_short_code(text):
    assert extract_entities(text).shortcode == ()
    assert "<money>" in normalize_template(text) and "<shortcode>" not in normalize_template(text)
    assert extract_entities(text + ", text WIN to 87121").shortcode == ("87121",)  # a real one still is


def test_an_amount_does_not_link_ham_to_spam_and_a_spaced_number_links(sqlite_store):
    add_items(sqlite_store, [
        ("e1", "Congratulations! You have won 75000 pounds in our weekly draw. Reply YES to claim"),
        ("e2", "Mum says the old house finally sold for 75000 pounds, can't believe it lol"),
        ("e5", "Tax refund of your last year is ready, claim before friday by calling 0 9 0 6 5 5 5 0 0 0 2"),
        ("e6", "Lonely? Meet local girls tonight, just dial 0 9 0 6 5 5 5 0 0 0 2 now")])
    service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    assert campaign_of(sqlite_store, "e1") is None or campaign_of(sqlite_store, "e1") != campaign_of(sqlite_store, "e2")
    assert campaign_of(sqlite_store, "e5") is not None
    assert campaign_of(sqlite_store, "e5") == campaign_of(sqlite_store, "e6")


# -- obfuscated numbers and defanged links -------------------------------------------------------
@pytest.mark.parametrize("text", [
    "Call 0 9 0 6 1 7 0 1 4 6 1 now",
    "Call 0906.170.1461",
    "Call (0906) 1701461",
    "Call +44 (0) 906 170 1461",
    "Call 0044 (0) 906.170.1461",
    # dates, times, prices and versions beside it stay out
    "on 01.02.2024 at 10.30, 0.5p per min, v0.9.1: call 0906.170.1461",
    "meet 09.30 or 10.45 (0.50 each) then ring 0 9 0 6 1 7 0 1 4 6 1",
])
def test_obfuscated_numbers_are_one_phone(text):
    assert extract_entities(text).phone == ("09061701461",)
    assert "<phone>" in normalize_template(text)


@pytest.mark.parametrize("text", [
    "visit hxxps://evil-prize[.]com/claim",
    "visit hxxp[:]//evil-prize.com/claim",
    "visit evil-prize[.]com/claim",
    "visit evil-prize(dot)com/claim",
    "visit evil-prize [dot] com/claim",
])
def test_defanged_links_link_with_the_plain_one(text):
    ents = extract_entities(text)
    assert ents.host == ("evil-prize.com",) and ents.url == ("evil-prize.com/claim",)
    assert normalize_template(text) == "visit <url>"


# -- queries a user types ------------------------------------------------------------------------
@pytest.mark.parametrize("text,message", [("win \udca3100 prize", "not UTF-8"), ("\u200b", "empty search text"),
                                          ("\u200b\u2060 \ufeff", "empty search text")])
def test_campaign_search_refuses_unusable_text(sqlite_store, campaign_settings, text, message):
    with pytest.raises(CampaignError, match=message):
        search_text(sqlite_store, text, campaign_settings)


def test_cli_search_with_a_latin1_byte_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "search", "win \udca3100 prize"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.startswith("Error: search text is not UTF-8") and len(res.output.strip().splitlines()) == 1


def test_seed_checks_refuse_undecodable_and_invisible_text(sqlite_store, taxonomy, cfg):
    with pytest.raises(QueueError, match=r"^--query 1: .*not UTF-8"):
        check_example("win \udca3100 prize", "--query 1")
    with pytest.raises(QueueError, match=r"^--query 2: .*invisible"):
        check_example("\u200b\u200d", "--query 2")
    with pytest.raises(QueueError, match=r"^--keyword 1: .*not UTF-8"):
        check_keyword("pr\udce9mio", "--keyword 1")
    _store(sqlite_store, taxonomy, cfg)
    with pytest.raises(QueueError, match="non-empty example"):  # nothing visible: nothing to embed
        seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=["\u200b"], embedder=BagOfWords())
    with pytest.raises(QueueError, match="^example 1: .*not UTF-8"):
        seed_cases(sqlite_store, taxonomy, cfg, "eng", policy="spam", examples=["win \udca3"], embedder=BagOfWords())


@pytest.mark.parametrize("query", ["case:99999999999999999999", "campaign:99999999999999999999", "case:\u00b2",
                                   "campaign:\u00b9", "case:" + "9" * 400, "campaign:9223372036854775808"])
def test_find_refuses_an_id_that_is_not_a_number_it_can_hold(sqlite_store, review_settings, roles, query):
    with pytest.raises(SearchError, match=r"needs a (case|campaign) number"):
        search(sqlite_store, query, Principal("ann", "analyst"), review_settings)


def test_merged_campaigns_are_listed_and_an_unknown_status_refused(sqlite_store, tmp_path):
    add_items(sqlite_store, [("p0", "ring 09050000001 now"), ("p1", "call 09050000001 today please"),
                             ("q0", "your parcel: 09050000002"), ("q1", "parcel waiting 09050000002 asap")])
    s = settings(similarity_threshold=0.99)
    service.cluster(sqlite_store, s, embedder=HashingEmbedder(), show_progress=False)
    add_items(sqlite_store, [("r0", "numbers 09050000001 and 09050000002 both work")],
              start=dt.datetime(2026, 2, 1))
    assert service.cluster(sqlite_store, s, embedder=HashingEmbedder(), show_progress=False)["campaigns_merged"] == 1
    merged = explore.list_campaigns(sqlite_store, status="merged")
    assert [c["status"] for c in merged] == ["merged"] and merged[0]["size"] == 0
    assert sorted(c["status"] for c in explore.list_campaigns(sqlite_store, status="all")) == ["active", "merged"]
    assert [c["status"] for c in explore.list_campaigns(sqlite_store)] == ["active"]
    with pytest.raises(CampaignError, match="unknown status 'bogus'"):
        explore.list_campaigns(sqlite_store, status="bogus")
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "campaigns", "list", "--status", "bogus"])
    assert res.exit_code == 2 and "'bogus' is not one of" in res.output
