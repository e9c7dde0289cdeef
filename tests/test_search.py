"""Search and the campaign CLI end to end; the `slow` tests load the real MiniLM model."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import insert

from workbench.cli import cli
from core.schema import Item
from core.store import open_store
from core.text import text_hash

TEXTS = {
    "w1": "WINNER!! As a valued network customer you have been selected to receive a £900 prize reward! To claim call 09061701461. Claim code KL341. Valid 12 hours only.",
    "w2": "WINNER!! As a valued network customer you have been selected to receivea £900 prize reward! To claim call 09061701444. Claim code KL311. Valid 12 hours only.",
    "r1": "Your free ringtone is waiting to be collected. Simply text the password MIX to 85069 to verify.",
    "h1": "Sorry, I'll call later",
    "h2": "Are we still on for dinner tonight at the usual place?",
    "h3": "The meeting moved to 3pm, see you there",
    "h4": "Can you pick up some milk on the way home",
}


def _store_with_items(tmp_path):
    data = tmp_path / "data"
    store = open_store(data)
    with store.begin() as conn:
        conn.execute(insert(Item.__table__), [
            {"id": k, "source": "t", "surface": "sms", "text": v, "text_hash": text_hash(v),
             "created_at": dt.datetime(2026, 1, 1, 8, i)} for i, (k, v) in enumerate(TEXTS.items())])
    store.dispose()
    return data


def _run(data, *args):
    res = CliRunner().invoke(cli, ["--data-dir", str(data), *args])
    return res


def test_cli_errors_are_one_line(tmp_path):
    data = _store_with_items(tmp_path)
    for args in (["campaigns", "show", "42"], ["similar", "w1"], ["campaigns", "timeline", "7"]):
        res = _run(data, *args)
        assert res.exit_code == 1, res.output
        assert res.output.startswith("Error: ") and len(res.output.strip().splitlines()) == 1
        assert "Traceback" not in res.output


@pytest.mark.slow
def test_cli_cluster_search_similar_with_minilm(tmp_path):
    data = _store_with_items(tmp_path)
    res = _run(data, "cluster", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["mode"] == "full" and summary["items_clustered"] == len(TEXTS)
    assert summary["index"]["kind"] == "flat"

    res = _run(data, "search", "You have been selected to receive a £500 prize! Call 09061700000 to claim", "--json", "-k", "3")
    hits = json.loads(res.stdout)
    assert {hits[0]["item_id"], hits[1]["item_id"]} == {"w1", "w2"}  # the known near-duplicates first
    assert hits[0]["campaign_id"] is not None and hits[0]["campaign_id"] == hits[1]["campaign_id"]

    res = _run(data, "similar", "w1", "--json", "-k", "2")
    sim = json.loads(res.stdout)
    assert sim[0]["item_id"] == "w2" and sim[0]["similarity"] > 0.95

    listed = json.loads(_run(data, "campaigns", "list", "--json").stdout)
    assert listed[0]["size"] == 2
    cid = listed[0]["id"]
    shown = json.loads(_run(data, "campaigns", "show", str(cid), "--json").stdout)
    assert {m["item_id"] for m in shown["members"]} == {"w1", "w2"}
    png = tmp_path / "tl.png"
    tl = json.loads(_run(data, "campaigns", "timeline", str(cid), "--png", str(png), "--json").stdout)
    assert tl["buckets"][-1]["size"] == 2 and png.exists()
