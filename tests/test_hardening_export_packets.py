"""The label export, escalation packets, notes and display settings, attacked as a careless or
hostile user would.

1. `export --overwrite` went by names alone: a folder of one's own called `dataset` (or a link to
   one), or a Spark `labels.parquet` folder of part files, was deleted as "an earlier export"; a
   file name holding a line break split the refusal over two lines. A Hub push into an existing
   public repo (`push_to_hub` keeps its visibility) published every text, author and note.
2. A note of zero-width characters only passed "a note must not be blank": an invisible note.
3. An escalation packet carried every other item's text whole: ingest sets no length on a text
   and the author history may list 500, so one prolific author's packet ran to megabytes. Its
   author reference was a plain hash of the id: hashing candidate ids (phone numbers) undid it.
4. Display settings saved twice at once (blur and grayscale ticked together): a new user's second
   save failed with a duplicate key on PostgreSQL, and a known user's lost the first setting.
"""
from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest
from sqlalchemy import update

import labeling.wellbeing as wellbeing
from core.schema import Item
from labeling.cases import build_cases
from labeling.claims import next_case
from labeling.decisions import decide
from labeling.export import ExportError, export_labels
from labeling.notes import NoteError, add_note, list_notes
import labeling.packets as packets
from labeling.packets import escalate_with_packet
from test_queue_support import T0, add_scored, at_once, case_ids, meeting, quiet

CONTEXT_CHARS = getattr(packets, "CONTEXT_CHARS", 2000)  # how much of another item's text a packet keeps


@pytest.fixture
def cfg(queue_config):
    return quiet(queue_config)


@pytest.fixture
def decided(any_store, taxonomy, cfg):
    """Two spam items, each decided by ann: something to export."""
    add_scored(any_store, taxonomy, [{"id": "a", "label": "spam", "p": 0.9}, {"id": "b", "label": "spam", "p": 0.9}])
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    for _ in range(2):
        case = next_case(any_store, "ann", "spam", config=cfg)
        decide(any_store, taxonomy, case["id"], "ann", "spam", action="remove", config=cfg)
    return any_store


# -- 1. --overwrite replaces only what an export writes ------------------------------------------
def test_overwrite_never_deletes_a_dataset_folder_that_no_export_wrote(decided, taxonomy, tmp_path):
    own = tmp_path / "own"
    (own / "dataset").mkdir(parents=True)
    (own / "dataset" / "thesis.tex").write_text("keep me")
    spark = tmp_path / "spark"
    (spark / "labels.parquet").mkdir(parents=True)
    (spark / "labels.parquet" / "part-00000.parquet").write_text("keep me")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "dataset").symlink_to(own / "dataset")
    odd = tmp_path / "odd"
    (odd / "dataset").mkdir(parents=True)
    (odd / "dataset" / "a\nb").write_text("keep me")
    for out, message in [(own, "its dataset folder holds thesis.tex"),
                         (spark, "its labels.parquet is not a file"),
                         (linked, "its dataset is not a folder"),
                         (odd, "its dataset folder holds a b, not")]:
        with pytest.raises(ExportError, match=message) as err:
            export_labels(decided, taxonomy, out, overwrite=True)  # was: deleted as an earlier export
        assert "\n" not in str(err.value)
    assert (own / "dataset" / "thesis.tex").read_text() == "keep me"
    assert (spark / "labels.parquet" / "part-00000.parquet").read_text() == "keep me"
    assert (linked / "dataset").is_symlink() and (odd / "dataset" / "a\nb").exists()

    out = tmp_path / "out"  # an earlier export, even one a reader mapped (datasets caches there), is replaced
    export_labels(decided, taxonomy, out)
    (out / "dataset" / "cache-0123456789abcdef.arrow").write_bytes(b"")
    assert export_labels(decided, taxonomy, out, overwrite=True)["replaced"] is True
    assert not (out / "dataset" / "cache-0123456789abcdef.arrow").exists()


def test_an_export_is_never_pushed_into_an_existing_public_repo(decided, taxonomy, tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    pushed, public = [], {"me/open": False, "me/closed": True}
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda self, repo, **kw: pushed.append(repo))
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info",
                        lambda self, repo, **kw: SimpleNamespace(id=repo, private=public[repo]))
    with pytest.raises(ExportError, match=r"push to me/open failed: me/open is a public dataset repo .* make it "
                                          r"private first") as err:
        export_labels(decided, taxonomy, tmp_path / "open", push_to_hub="me/open")  # was: pushed, texts and all
    assert "\n" not in str(err.value) and pushed == []
    assert (tmp_path / "open" / "labels.parquet").is_file()  # written, and audited as not pushed
    assert export_labels(decided, taxonomy, tmp_path / "closed", push_to_hub="me/closed")["pushed_to"] == "me/closed"
    assert pushed == ["me/closed"]


# -- 2. an invisible note is a blank one -----------------------------------------------------------
def test_a_note_of_invisible_characters_only_is_refused_as_blank(any_store, taxonomy):
    add_scored(any_store, taxonomy, [{"id": "a", "label": "scam", "p": 0.9}])
    for body in ("\u200b\u200b", " \u2060\ufeff ", "\u200d\n\u200c"):
        with pytest.raises(NoteError, match="must not be blank"):
            add_note(any_store, "item", "a", body, "ann")
    assert add_note(any_store, "item", "a", "\u200bseen before", "ann")["body"] == "\u200bseen before"
    assert [n["body"] for n in list_notes(any_store, "item", "a", principal="tester")["notes"]] == ["\u200bseen before"]


# -- 3. an escalation packet's size is bounded -----------------------------------------------------
def test_an_escalation_packet_cuts_other_items_texts_and_keeps_the_cases_own(any_store, taxonomy, cfg,
                                                                             review_settings, campaign_settings):
    own = "cheap pills " * 1000
    long = "win a prize " * 20_000  # 240,000 characters
    add_scored(any_store, taxonomy, [{"id": "x", "label": "spam", "p": 0.9, "text": own}]
               + [{"id": f"o{i}", "label": "spam", "p": 0.9, "text": f"{i} {long}"} for i in range(5)])
    with any_store.begin() as conn:
        conn.execute(update(Item.__table__).values(author_id="prolific"))
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    out = escalate_with_packet(any_store, taxonomy, case_ids(any_store)["x"], "ann", "wave", cfg, review_settings,
                               campaign_settings)
    raw = open(out["packet_path"], encoding="utf-8").read()
    assert len(raw) < len(own) + 5 * (CONTEXT_CHARS + 500) + 20_000  # was over 1.2 million characters
    filed = json.loads(raw)
    assert filed["evidence"]["item"]["text"] == own  # the evidence stays whole
    recent = filed["author"]["recent"]
    assert len(recent) == 5 and all(r["text"].endswith(f"... ({len(long) + 2 - CONTEXT_CHARS:,} more characters)")
                                    and r["text"][:CONTEXT_CHARS] == f"{r['item_id'][1:]} {long}"[:CONTEXT_CHARS]
                                    for r in recent)


def test_a_packets_author_reference_cannot_be_undone_by_hashing_candidate_ids(any_store, taxonomy, cfg,
                                                                              review_settings, campaign_settings):
    add_scored(any_store, taxonomy, [{"id": "x", "label": "spam", "p": 0.9}, {"id": "y", "label": "spam", "p": 0.9},
                                     {"id": "z", "label": "spam", "p": 0.9}])
    with any_store.begin() as conn:
        conn.execute(update(Item.__table__).where(Item.id.in_(["x", "y"])).values(author_id="+447700900123"))
        conn.execute(update(Item.__table__).where(Item.id == "z").values(author_id="+447700900124"))
    build_cases(any_store, taxonomy, cfg, now=T0, progress=False)
    ids = case_ids(any_store)
    refs = {}
    for item in ("x", "y", "z"):
        packet = escalate_with_packet(any_store, taxonomy, ids[item], "ann", "wave", cfg, review_settings,
                                      campaign_settings)["packet"]
        assert packet["evidence"]["item"]["author_ref"] == packet["author"]["author_ref"]
        refs[item] = packet["author"]["author_ref"]
    assert refs["x"] == refs["y"] != refs["z"]  # stable per author, distinct between authors
    guess = "author-" + hashlib.sha256(b"+447700900123").hexdigest()[:16]
    assert refs["x"] != guess and refs["x"].startswith("author-")  # was: the sender's number, hashed


# -- 4. display settings saved at once -------------------------------------------------------------
@pytest.mark.parametrize("known", [False, True], ids=["new-user", "known-user"])
def test_two_display_settings_saved_at_once_are_both_kept(any_store, review_settings, monkeypatch, known):
    if known:
        wellbeing.set_preferences(any_store, "ann", review_settings, blur=False, grayscale=False)
    meet = meeting(2)  # both read the stored settings before either writes (where the store lets them)
    for name in ("insert", "update"):
        real = getattr(wellbeing, name, None)
        if real is not None:
            monkeypatch.setattr(wellbeing, name, lambda t, real=real: (meet(), real(t))[1])
    got = at_once(lambda: wellbeing.set_preferences(any_store, "ann", review_settings, blur=True),
                  lambda: wellbeing.set_preferences(any_store, "ann", review_settings, grayscale=True))
    assert [type(g).__name__ for g in got] == ["dict", "dict"]  # was an IntegrityError (duplicate key)
    assert wellbeing.preferences(any_store, "ann", review_settings) == {"blur": True, "grayscale": True}
