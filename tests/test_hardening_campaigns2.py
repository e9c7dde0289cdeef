"""Campaign detection against a wave crafted to evade it, damaged index files and bad counts.

A scam wave written with look-alike letters, other scripts' digits, typographic dashes in its
number or an ideographic dot in its link split into one campaign per variant and lost the shared
phone number and host that link differently-worded messages; a damaged graph file stopped
`cluster` (or ended the process) instead of re-clustering; a negative count listed everything
and failed on PostgreSQL.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from clustering import explore, search, service
from clustering import normalize
from clustering.normalize import extract_entities, normalize_template
from clustering.service import CampaignError
from test_campaigns import HashingEmbedder, add_items, campaign_of, corpus, partition, settings
from workbench.cli import cli

PLAIN = "URGENT your parcel could not be delivered. Pay the fee at royalmail-fee.com/pay or call 07700 900123 today"


# -- entities and templates of an evasive wave ---------------------------------------------------
@pytest.mark.parametrize("number", [
    "٠٧٧٠٠ ٩٠٠١٢٣",            # Arabic-Indic digits (NFKC keeps them)
    "۰۷۷۰۰۹۰۰۱۲۳",             # Extended Arabic-Indic
    "०७७०० ९००१२३",            # Devanagari
    "07700–900–123",           # en dashes
    "07700‑900‑123",           # non-breaking hyphens
    "07700 − 900 − 123",       # minus signs with spaces
    "+44 7700—900123",         # em dash
])
def test_a_number_in_other_digits_or_dashes_is_the_same_phone(number):
    text = PLAIN.replace("07700 900123", number)
    assert extract_entities(text).phone == ("07700900123",)
    assert normalize_template(text) == normalize_template(PLAIN)


@pytest.mark.parametrize("link", ["royalmail-fee。com/pay", "royalmail-fee｡com/pay", "https://royalmail-fee.com:443/pay"])
def test_a_link_with_an_ideographic_dot_or_default_port_is_the_same_link(link):
    ents = extract_entities(PLAIN.replace("royalmail-fee.com/pay", link))
    assert ents.url == ("royalmail-fee.com/pay",) and ents.host == ("royalmail-fee.com",)
    assert normalize_template(PLAIN.replace("royalmail-fee.com/pay", link)) == normalize_template(PLAIN)


@pytest.mark.parametrize("text", [
    "URGENT уоur раrсеl could not be delivered. Pay the fee at royalmail-fee.com/pay or call 07700 900123 today",
    "URGENT your pаrcel could nоt be dеlivered. Pаy the fee at royalmail-fee.com/pay or call 07700 900123 today",
    "ᴜʀɢᴇɴᴛ your parcel could not be delivered. Pay the fee at royalmail-fee.com/pay or call 07700 900123 today",
    "URGЕNТ YOUR PАRCEL could not be delivered. Pay the fee at royalmail-fee.com/pay or call 07700 900123 today",
])
def test_look_alike_letters_give_the_plain_template(text):
    assert normalize_template(text) == normalize_template(PLAIN)
    assert extract_entities(text) == extract_entities(PLAIN)


def test_genuine_greek_and_cyrillic_stay_as_written():
    assert normalize_template("Привет, как дела? кот на мосту") == "привет, как дела? кот на мосту"
    assert normalize_template("καλημέρα φίλε μου") == "καλημέρα φίλε μου"
    # a bilingual text: only the word mixing scripts is folded
    assert normalize_template("hello мир, рay now") == "hello мир, pay now"


def test_an_internationalised_host_is_one_entity_in_punycode_and_a_look_alike_stays_its_own():
    a = extract_entities("Gewinn abholen: münchen-preis.de/gewinn")
    b = extract_entities("Gewinn abholen: xn--mnchen-preis-dlb.de/gewinn")
    assert a.host == b.host == ("xn--mnchen-preis-dlb.de",) and a.url == b.url
    fake = extract_entities("pay at rоyalmail-fee.com/pay")  # Cyrillic о: another domain
    assert fake.host == ("royalmail-fee.com".replace("royalmail-fee", "rоyalmail-fee").encode("idna").decode(),)
    assert normalize_template("pay at rоyalmail-fee.com/pay") == "pay at <url>"


@pytest.mark.parametrize("text,host", [("login at http://192.168.4.20/bank now", "192.168.4.20"),
                                       ("login at 203.0.113.9/verify now", "203.0.113.9"),
                                       ("claim at prize-win.vip today", "prize-win.vip"),
                                       ("claim at prize-win.icu today", "prize-win.icu")])
def test_ip_hosts_and_abused_top_level_domains_are_links(text, host):
    assert extract_entities(text).host == (host,)
    assert "<url>" in normalize_template(text)
    assert extract_entities("version 1.2.3.4 is out, see you at 10.30").host == ()


def test_an_evasive_wave_is_one_campaign_with_its_shared_entities(sqlite_store):
    variants = [PLAIN,
                PLAIN.replace("07700 900123", "07700–900–123"),
                PLAIN.replace("07700 900123", "٠٧٧٠٠٩٠٠١٢٣"),
                PLAIN.replace("royalmail-fee.com", "royalmail-fee。com"),
                PLAIN.replace("your parcel", "уоur раrсеl").replace("delivered", "dеlivеrеd")]
    rows = [(f"w{i}", t) for i, t in enumerate(variants)]
    # different wording: only the shared number (typed with dashes) or the host links these
    rows += [("x0", "Hi mum, new phone, text me on 07700–900–123 x"),
             ("y0", "Your account is locked, verify at royalmail-fee。com/login"),
             ("h0", "are we still on for dinner tonight?")]
    add_items(sqlite_store, rows)
    service.cluster(sqlite_store, settings(similarity_threshold=0.9), embedder=HashingEmbedder(), show_progress=False)
    wave = campaign_of(sqlite_store, "w0")
    assert wave is not None
    assert {i: campaign_of(sqlite_store, i) for i, _ in rows} == {**{i: wave for i, _ in rows}, "h0": None}
    ents = explore.campaign_detail(sqlite_store, wave)["entities"]
    assert {e["value"]: e["items"] for e in ents["phone"]} == {"07700900123": 6}
    assert {e["value"]: e["items"] for e in ents["host"]} == {"royalmail-fee.com": 6}


def test_a_graph_built_under_older_rules_is_reclustered(sqlite_store):
    add_items(sqlite_store, corpus())
    service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    meta_path = service.graph_dir(sqlite_store) / "graph.json"
    meta = json.loads(meta_path.read_text())
    assert meta["normalize_version"] == normalize.NORMALIZE_VERSION
    del meta["normalize_version"]  # as every graph saved before the rules changed
    meta_path.write_text(json.dumps(meta))
    s = service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)
    assert s["mode"] == "full" and "template and entity rules changed" in s["reason"]
    assert service.cluster(sqlite_store, settings(), embedder=HashingEmbedder(), show_progress=False)["mode"] == "incremental"


# -- damaged index and graph files ----------------------------------------------------------------
def _npz_edit(**edits):
    def go(d):
        arrays = dict(np.load(d / "graph.npz"))
        arrays.update({k: f(arrays[k]) for k, f in edits.items()})
        np.savez(d / "graph.npz", **arrays)
    return go


def _write(name, data):
    def go(d):
        (d / name).write_bytes(data(d / name))
    return go


DAMAGE = {
    "empty graph.npz": _write("graph.npz", lambda p: b""),
    "truncated graph.npz": _write("graph.npz", lambda p: p.read_bytes()[:len(p.read_bytes()) // 2]),
    "empty index_delta.npy": _write("index_delta.npy", lambda p: b""),
    "negative item_node": _npz_edit(item_node=lambda a: a - 100),
    "float item_node": _npz_edit(item_node=lambda a: a.astype(float)),
    "ent_key past the entities": _npz_edit(ent_key=lambda a: a + 1000),
    "ent_item past the items": _npz_edit(ent_item=lambda a: a + 1000),
    "ent_item shorter than ent_key": _npz_edit(ent_item=lambda a: a[:-1]),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_graph_file_is_refused_in_one_line_and_reclustered(sqlite_store, damage):
    add_items(sqlite_store, corpus())
    st = settings()
    service.cluster(sqlite_store, st, embedder=HashingEmbedder(), show_progress=False)
    before = partition(sqlite_store)
    damage(service.graph_dir(sqlite_store))
    with pytest.raises(CampaignError, match="run `workbench cluster --rebuild`"):
        search.similar_items(sqlite_store, "a0", st)  # a negative position ended the process
    s = service.cluster(sqlite_store, st, embedder=HashingEmbedder(), show_progress=False)
    assert s["mode"] == "full" and "unusable" in s["reason"]
    assert partition(sqlite_store) == before
    hits = search.similar_items(sqlite_store, "a0", st, k=3)  # its template copies
    assert {h["item_id"] for h in hits} == {"a1", "a2", "a3"} and hits[0]["similarity"] == 1.0


@pytest.mark.parametrize("data", [b"", b"\x93NUMPY garbage", b"\x00" * 40], ids=["empty", "truncated", "garbage"])
def test_a_damaged_labels_file_only_means_every_campaign_is_rewritten(sqlite_store, data):
    add_items(sqlite_store, corpus())
    st = settings()
    service.cluster(sqlite_store, st, embedder=HashingEmbedder(), show_progress=False)
    before = partition(sqlite_store)
    path = service.graph_dir(sqlite_store) / "labels.npy"
    path.write_bytes(data)
    s = service.cluster(sqlite_store, st, embedder=HashingEmbedder(), show_progress=False)
    assert s["mode"] == "incremental" and partition(sqlite_store) == before


# -- counts a user types --------------------------------------------------------------------------
def test_bad_counts_are_refused_by_the_services(any_store):
    add_items(any_store, corpus())
    st = settings()
    service.cluster(any_store, st, embedder=HashingEmbedder(), show_progress=False)
    cid = campaign_of(any_store, "a0")
    for bad in (-1, 10**20):  # -1 listed everything on SQLite and failed on PostgreSQL; 10**20 overflowed
        with pytest.raises(CampaignError, match="limit must be a whole number"):
            explore.list_campaigns(any_store, limit=bad)
        with pytest.raises(CampaignError, match="min size must be a whole number"):
            explore.list_campaigns(any_store, min_size=10**20 if bad > 0 else -10**20)
        with pytest.raises(CampaignError, match="members must be a whole number"):
            explore.campaign_detail(any_store, cid, members_limit=bad)
    for bad in (0, -5):  # answered "no similar items"
        with pytest.raises(CampaignError, match="k must be a whole number from 1"):
            search.similar_items(any_store, "a0", st, k=bad)
        with pytest.raises(CampaignError, match="k must be a whole number from 1"):
            search.search_text(any_store, "prize", st, k=bad, embedder=HashingEmbedder())
    assert len(explore.campaign_detail(any_store, cid, members_limit=2)["members"]) == 2


@pytest.mark.parametrize("args", [["campaigns", "list", "--limit", "-1"],
                                  ["campaigns", "list", "--limit", "99999999999999999999"],
                                  ["campaigns", "show", "1", "--members", "-3"],
                                  ["search", "prize", "-k", "0"], ["similar", "a0", "-k", "-1"]])
def test_cli_bad_counts_are_one_line(tmp_path, args):
    res = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), *args])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "must be a whole number" in res.output and len(res.output.strip().splitlines()) == 1

