"""Search by text, item id, author, tag, note, case and campaign, within the principal's rights:
texts come back masked, and without `reveal` no text match on a hidden text (no probing)."""
from __future__ import annotations

import pytest

from core.hooks import PermissionDenied
from core.principals import Principal
from labeling.cases import build_cases
from labeling.masking import mask_text
from labeling.notes import add_note, add_tag
from labeling.search import SearchError, parse_query, search

from test_context import _author
from test_queue_support import add_campaign, add_scored

ITEMS = [
    {"id": "s1", "label": "scam", "p": 0.9, "text": "You WON a prize, call 09061701461 now"},
    {"id": "s2", "label": "scam", "p": 0.9, "text": "Claim your prize: 100% genuine, call today"},
    {"id": "h1", "label": "hate", "p": 0.8, "text": "those people are vile vermin"},
    {"id": "b1", "label": "benign", "p": 0.97, "text": "lunch at noon? vile weather though"},
]


@pytest.fixture
def store(any_store, taxonomy, queue_config):
    add_scored(any_store, taxonomy, ITEMS)
    _author(any_store, ["s1", "s2"], "u1")
    _author(any_store, ["h1"], "u2")
    build_cases(any_store, taxonomy, queue_config, progress=False)
    return any_store


def _ids(out):
    return sorted(r["item_id"] for r in out["results"])


def test_search_by_each_field(store, review_settings, roles):
    ann = Principal("ann", "analyst")
    assert _ids(search(store, "PRIZE", ann, review_settings)) == ["s1", "s2"]  # case-insensitive text
    assert _ids(search(store, "100%", ann, review_settings)) == ["s2"]  # LIKE wildcards are literal
    assert _ids(search(store, "s1", ann, review_settings)) == ["s1"]  # an item id
    assert _ids(search(store, "author:u1", ann, review_settings)) == ["s1", "s2"]
    assert _ids(search(store, "u2", ann, review_settings)) == ["h1"]
    add_tag(store, "item", "s2", "bank-impersonation", ann)
    add_note(store, "item", "b1", "Sender is the canteen manager", ann)
    out = search(store, "tag:Bank Impersonation", ann, review_settings)
    assert _ids(out) == ["s2"] and out["results"][0]["tags"] == ["bank-impersonation"]
    assert out["results"][0]["matched"] == ["tag"]
    assert _ids(search(store, "canteen", ann, review_settings)) == ["b1"]  # notes are searchable
    hit = search(store, "id:s1", ann, review_settings)["results"][0]
    assert hit["case_id"] is not None and hit["queue"] and hit["author_id"] == "u1" and hit["predicted"] == "scam"
    assert _ids(search(store, f"case:{hit['case_id']}", ann, review_settings)) == ["s1"]
    cid = add_campaign(store, ["s1", "s2"])
    add_tag(store, "campaign", cid, "wave-9", ann)
    out = search(store, "wave-9", ann, review_settings)
    assert out["results"] == [] and [c["campaign_id"] for c in out["campaigns"]] == [cid]
    assert [c["campaign_id"] for c in search(store, f"campaign:{cid}", ann, review_settings)["campaigns"]] == [cid]
    assert search(store, "nothing like this", ann, review_settings)["total"] == 0


def test_results_are_masked_and_hidden_texts_cannot_be_probed(store, review_settings, roles):
    ann, vic = Principal("ann", "analyst"), Principal("vic", "viewer")
    out = search(store, "vile", ann, review_settings)
    by_id = {r["item_id"]: r for r in out["results"]}
    assert set(by_id) == {"h1", "b1"}
    assert by_id["h1"]["text"] == mask_text("those people are vile vermin") and by_id["h1"]["masked"]
    assert by_id["b1"]["text"] == "lunch at noon? vile weather though" and not by_id["b1"]["masked"]
    # a viewer (no `reveal`) finds the visible text only: the masked one would leak its words
    assert _ids(search(store, "vile", vic, review_settings)) == ["b1"]
    # but finds the masked item by id, masked
    got = search(store, "h1", vic, review_settings)["results"]
    assert [r["item_id"] for r in got] == ["h1"] and "vile" not in got[0]["text"]


def test_paging_and_refusals(store, review_settings, roles):
    ann = Principal("ann", "analyst")
    out = search(store, "call", ann, review_settings, limit=1)
    assert out["total"] == 2 and len(out["results"]) == 1
    assert search(store, "call", ann, review_settings, limit=1, offset=1)["results"][0]["item_id"] != out["results"][0]["item_id"]
    for q, message in [("  ", "type something"), ("case:abc", "needs a case number"), ("x" * 501, "at most 500")]:
        with pytest.raises(SearchError, match=message):
            search(store, q, ann, review_settings)
    with pytest.raises(PermissionDenied, match="needs permission 'read'"):
        search(store, "prize", Principal("nobody", "no-such-role"), review_settings)
    assert parse_query("author: u1") == ("author", "u1") and parse_query("http://x") == (None, "http://x")


def test_cli_find_note_tag(tmp_path, taxonomy):
    import json

    from click.testing import CliRunner

    from core.store import open_store
    from workbench.cli import cli

    data = tmp_path / "data"
    store = open_store(data)
    add_scored(store, taxonomy, ITEMS)
    store.dispose()

    def run(*args):
        return CliRunner().invoke(cli, ["--data-dir", str(data), *args])

    assert run("note", "item", "s1", "carrier confirmed", "--as", "ann").exit_code == 0
    assert "added to item s1" in run("tag", "item", "s1", "Wave 7", "--as", "ann").output
    shown = json.loads(run("notes", "item", "s1", "--json").output)
    assert shown["tags"] == ["wave-7"] and shown["notes"][0]["author"] == "ann"
    found = json.loads(run("find", "tag:wave-7", "--json").output)
    assert [r["item_id"] for r in found["results"]] == ["s1"]
    out = run("find", "vile")
    h1 = next(line for line in out.output.splitlines() if line.strip().startswith("h1"))
    assert out.exit_code == 0 and "vile" not in h1 and "v•••" in h1  # masked
    bad = run("find", "case:abc")
    assert bad.exit_code == 1 and bad.output.startswith("Error: ") and len(bad.output.strip().splitlines()) == 1
    assert run("tag", "item", "nope", "x").output.startswith("Error: no item 'nope'")
