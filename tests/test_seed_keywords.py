"""Keyword seeding (`workbench seed --keyword WORD` / `--keywords FILE`): items holding a keyword
as a whole word or phrase (case, Unicode form and spacing folded) become seeds, each explained by
its keyword, round-robin with the examples; a bad keyword is refused in one line."""
from __future__ import annotations

import json

from click.testing import CliRunner

from labeling.seeding import check_keyword, keyword_similarities, nearest_round_robin
from test_seed_cli import CHAT, PRIZE, data_dir  # noqa: F401 (the fixture)
from workbench.cli import cli


def test_keyword_similarities_match_whole_words_in_a_seeded_order():
    texts = ["Send it by ZELLE today", "zellefan here", "pay with a GIFT\u00a0 card", "gift-card deal", "nothing"]
    draws = [0.5, 0.1, 0.9, 0.2, 0.3]
    s = keyword_similarities(texts, ["zelle", "gift card"], draws)
    assert s.shape == (5, 2)
    assert s[0, 0] > 0.99 and s[1, 0] == -1          # a whole word, not a prefix of another
    assert s[2, 1] > 0.99 and s[3, 1] == -1          # spacing folded (NFKC + whitespace), a hyphen is not a space
    assert (s[4] == -1).all()
    # Among a keyword's matches the seeded draw decides the order, not the row number.
    s2 = keyword_similarities(["a zelle", "b zelle", "c zelle"], ["zelle"], [0.7, 0.2, 0.4])
    picks = nearest_round_robin(s2, 3, 0.3)
    assert [r for r, _, _ in picks] == [1, 2, 0]


def test_check_keyword_refuses_in_one_line():
    assert check_keyword("  Gift   CARD ", "k") == "gift card"
    for bad, why in (("", "empty keyword"), ("a\x00b", "NUL byte"), ("x" * 201, "over the limit of 200")):
        try:
            check_keyword(bad, "--keyword 1")
        except Exception as exc:  # noqa: BLE001 - the message is what is checked
            assert why in str(exc) and str(exc).startswith("--keyword 1:") and "\n" not in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def _seed(data, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data), "seed", "--policy", "spam", "--neighbours", "6",
                                    "--uniform-share", "0", "--max-similarity", "1", *args])


def test_cli_keyword_seeds_the_items_holding_it_and_says_why(data_dir, tmp_path):  # noqa: F811
    # "cafe" is in half the chat items; "TRAIN was late" in the other half: one keyword each.
    words = tmp_path / "words.txt"
    words.write_text("# scam words\nTRAIN was late\n", encoding="utf-8")
    res = _seed(data_dir, "--keyword", "Cafe", "--keywords", str(words), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["seeded"] == 6 and out["keywords"] == 2 and out["examples"] == 0
    by_kw = {}
    for it in out["items"]:
        by_kw.setdefault(it["keyword"], []).append(it["item_id"])
    assert {k: len(v) for k, v in by_kw.items()} == {"cafe": 3, "train was late": 3}  # round-robin
    texts = dict(zip([f"c{i}" for i in range(len(CHAT))], CHAT))
    assert all("cafe" in texts[i] for i in by_kw["cafe"]) and all("train" in texts[i] for i in by_kw["train was late"])
    # Keywords and an example share the round-robin; the example's seeds are the spam items.
    res = _seed(data_dir, "--keyword", "cafe", "--query", PRIZE, "--json")
    out = json.loads(res.stdout)
    kinds = {("kw" if it["keyword"] else "ex"): [] for it in out["items"]}
    for it in out["items"]:
        kinds["kw" if it["keyword"] else "ex"].append(it["item_id"])
    assert len(kinds["kw"]) == len(kinds["ex"]) == 3 and all(i.startswith("s") for i in kinds["ex"])


def test_cli_bad_keywords_are_one_line_errors(data_dir, tmp_path):  # noqa: F811
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    for args in (["--keyword", " "], ["--keyword", "x" * 300], ["--keywords", str(tmp_path / "missing.txt")],
                 ["--keywords", str(empty)], ["--keyword", "a\x00b"]):
        res = _seed(data_dir, *args)
        assert res.exit_code != 0 and res.output.startswith("Error:") and "Traceback" not in res.output, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1, (args, res.output)
    # A keyword nothing holds seeds nothing from it (no error: the uniform sample may still run).
    res = _seed(data_dir, "--keyword", "zzqx", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["seeded"] == 0
    assert keyword_similarities(["a"], [], []).shape == (1, 0)
