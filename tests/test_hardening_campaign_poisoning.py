"""Campaign poisoning through a shared decoy: scams citing a real, public link or helpline.

A scam wave that cites a genuine gov.uk page (or a bank's helpline) to look official linked, by
that entity, every honest message citing the same page into its campaign, where a bulk action
on the campaign hit the honest author; an adversary can do it on purpose. Public entities (a
`public_hosts` host, a `public_phones` number, or a host the store shows across many unrelated
texts) no longer link; a scam's own number or link still does.
"""
from __future__ import annotations

import numpy as np
import pytest

from clustering import explore, service
from clustering.campaigns import CampaignGraph
from clustering.config import CampaignSettings, IndexSettings, load_campaign_settings
from clustering.normalize import extract_entities
from core.config import ConfigError
from test_campaigns import HashingEmbedder, add_items, campaign_of

DECOY = "https://www.gov.uk/claim-tax-refund"
SCAMS = [f"HMRC: you are due a tax refund of £264.50. Claim now at {DECOY} before it expires",
         f"HMRC notice: you are due a tax refund of £310.20. Claim now at {DECOY} before it expires today",
         f"HMRC: you are due a tax refund of £198.00, claim now at {DECOY} before it expires"]
HONEST = f"Found the page about claiming back tax on work uniforms {DECOY}, worth a look"


def _settings(**kw) -> CampaignSettings:
    base = dict(similarity_threshold=0.8, index=IndexSettings(hnsw_min_size=10_000))
    return CampaignSettings(**{**base, **kw})


def _members(store, ids) -> dict[str, object]:
    return {i: campaign_of(store, i) for i in ids}


def test_scams_citing_a_gov_uk_page_do_not_pull_in_an_honest_message_citing_it(any_store):
    rows = [(f"s{i}", t) for i, t in enumerate(SCAMS)] + [("honest", HONEST), ("h0", "dinner tonight?")]
    add_items(any_store, rows)
    service.cluster(any_store, _settings(), embedder=HashingEmbedder(), show_progress=False)
    wave = campaign_of(any_store, "s0")
    assert wave is not None
    assert _members(any_store, ["s0", "s1", "s2", "honest", "h0"]) == \
        {"s0": wave, "s1": wave, "s2": wave, "honest": None, "h0": None}
    detail = explore.campaign_detail(any_store, wave)
    assert detail["size"] == 3
    # The decoy is still shown as what the wave shares, marked as not linking.
    assert {e["value"]: (e["items"], e["links"]) for e in detail["entities"]["url"]} == \
        {"gov.uk/claim-tax-refund": (3, False)}


def test_a_listed_helpline_does_not_link_but_the_scams_own_number_does(any_store):
    helpline = "0300 200 3300"
    rows = [("s0", f"Your bank account is frozen. Call 07700 900123 now, or ring {helpline} to check"),
            ("x0", "Hi mum, new phone, text me on 07700 900123 x"),  # the wave's own number: links
            ("honest", f"HMRC were actually helpful for once, rang them on {helpline} this morning")]
    add_items(any_store, rows)
    service.cluster(any_store, _settings(public_phones=(helpline,)), embedder=HashingEmbedder(),
                    show_progress=False)
    wave = campaign_of(any_store, "s0")
    assert wave is not None
    assert _members(any_store, ["s0", "x0", "honest"]) == {"s0": wave, "x0": wave, "honest": None}


def _wave(n: int, dim: int, rng: np.random.Generator, axis: int) -> np.ndarray:
    v = np.zeros((n, dim), dtype=np.float32)
    v[:, axis] = 1.0
    v[:, axis + 1:axis + 3] = 0.05 * rng.normal(size=(n, 2))
    return v / np.linalg.norm(v, axis=1, keepdims=True)  # every pair ~0.99: one wave


def _partition(g: CampaignGraph) -> set[frozenset[str]]:
    return {frozenset(g.item_ids[r] for r in rows) for rows in g.components().groups(1).values()}


@pytest.mark.parametrize("cut", [None, 9])
def test_a_page_on_a_host_cited_across_unrelated_texts_does_not_link(cut):
    """citizensadvice.org.uk is on no list, but five unrelated texts in the store cite it (more
    than entity_max_df=4): a page on it is public. A scam host cited by one wave stays linkable."""
    rng = np.random.default_rng(3)
    dim = 40
    eye = np.eye(dim, dtype=np.float32)
    scam, site = "citizensadvice.org.uk/debt-help", "citizensadvice.org.uk"
    texts = [f"scam wave {i}: settle your debt today at {scam}" for i in range(3)]
    texts += [f"honest: their advice at {scam} helped us"]
    texts += [f"unrelated {i}: see {site}/page-{i}" for i in range(5)]
    # A wave of 6 on its own host (too common to link by host), and two different-worded
    # messages sharing one of its links: that link is the scam's own and still links them.
    texts += [f"prize wave {i}: claim at prize-win.icu/a{i}" for i in range(6)]
    texts += ["x: prize-win.icu/claim/77", "y: verify at prize-win.icu/claim/77"]
    vectors = np.concatenate([_wave(3, dim, rng, 0), eye[[10]], eye[11:16], _wave(6, dim, rng, 4), eye[[20, 21]]])
    ids = [t.split(":")[0] for t in texts]
    st = _settings(entity_max_df=4, max_campaign_texts=None)
    g = CampaignGraph(st, dim)
    lo = 0
    for hi in ([cut] if cut else []) + [len(ids)]:  # in one go, and attached in two runs
        g.add(ids[lo:hi], [f"k{i}" for i in range(lo, hi)], [extract_entities(t) for t in texts[lo:hi]],
              vectors[lo:hi])
        lo = hi
    parts = _partition(g)
    assert frozenset({"scam wave 0", "scam wave 1", "scam wave 2"}) in parts
    assert frozenset({"honest"}) in parts
    assert frozenset({"x", "y"}) in parts


@pytest.mark.parametrize("field,value,message", [
    ("public_hosts", "[gov uk]", "is not a host name"),
    ("public_hosts", "gov.uk", "expected a list of host names"),
    ("public_phones", "['159']", "is not one phone number"),
])
def test_bad_public_entities_are_one_line_naming_the_file_and_field(tmp_path, field, value, message):
    path = tmp_path / "campaigns.yaml"
    path.write_text(f"{field}: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_campaign_settings(path)
    text = str(exc.value)
    assert str(path) in text and field in text and message in text
    assert len(text.strip().splitlines()) == 1


def test_public_entities_are_read_as_texts_give_them():
    st = CampaignSettings(public_hosts=["WWW.Citizensadvice.org.uk", "*.gov.uk"], public_phones=["+44 300 200 3300"])
    assert st.public_hosts == ("citizensadvice.org.uk", "gov.uk")
    assert st.public_phones == extract_entities("ring 0300 200 3300").phone
    assert "gov.uk" in CampaignSettings().public_hosts  # on by default
    assert st.linking_key() != CampaignSettings().linking_key()  # a change re-clusters
