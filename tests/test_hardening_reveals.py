"""Reveals counted against a reader's exposure budget, attacked at the store's keys and each door.

1. A reveal through the API of an item without a case was stored under `caseless_key(item_id)`,
   a 31-bit hash of the id. Two items whose keys collide ("item-8744" and "item-121143", found by
   a birthday search over 121,144 ids) shared one row: the reader's reveal of the second was taken
   as "already revealed" and never counted (2 severe texts read, exposure 1). A case-less reveal is
   now found by reader and item id (migration 0012 indexes it), and stored under the first free key
   of the item's own probe sequence (its old key first), so no two items share one and rows stored
   before still count once.
2. `packets.reveal_text` and `show_case(reveal_by=...)` without a taxonomy stored the case's tier
   (its top label alone), not `wellbeing.reveal_tier`: a spam-topped case masked for a hate score
   counted as not severe. Both now refuse a reveal without the taxonomy.
3. A case whose stored `meta` is not an object (a hand-edited or corrupt row) failed every reveal
   of it with AttributeError; a display-settings row that is not an object failed the Review
   screen's page load the same way.
"""
from __future__ import annotations

import hashlib
import inspect

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy import inspect as sa_inspect

from core.principals import Principal
from core.schema import Case, Reveal, UserPreference, utcnow
from core.store import open_store
from labeling.cases import build_cases
from labeling.errors import QueueError
from labeling.packets import reveal_text, show_case
from labeling.wellbeing import exposure, preferences, reveal_tier
from test_queue_support import add_scored, case_ids, quiet

ANN = Principal("ann", "analyst")
HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.90, "harassment": 0.03}
HATE_BELOW_TOP = {"benign": 0.05, "spam": 0.60, "scam": 0.03, "hate": 0.30, "harassment": 0.02}
# Two item ids whose 31-bit case-less keys are equal (a real collision, not a patched key space).
A, B = "item-8744", "item-121143"


def _old_key(item_id: str) -> int:
    """The key the API stored a case-less reveal under before this fix (pinned: such rows exist)."""
    digest = hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).digest()
    return -(1 + int.from_bytes(digest[:8], "big") % (2**31 - 1))


def _rows(store):
    with store.read() as conn:
        return [tuple(r) for r in conn.execute(select(Reveal.id, Reveal.analyst, Reveal.case_id, Reveal.item_id,
                                                      Reveal.severity, Reveal.created_at).order_by(Reveal.id))]


def _api_reveal(store, item_id):
    from workbench.api_reveal import item_view
    from workbench.context import AppContext

    return item_view(AppContext(store=store), item_id, ANN, reveal=True)


# -- 1. case-less reveals: one per reader and item, whatever the keys ---------------------------------
def test_the_colliding_ids_really_share_the_old_key():
    from labeling.wellbeing import caseless_key

    assert _old_key(A) == _old_key(B) and A != B
    assert caseless_key(A) == _old_key(A)  # probe 0 is the old key: rows stored before are found
    assert caseless_key(A, 1) != caseless_key(B, 1) and caseless_key(A, 1) < 0


def test_two_caseless_items_whose_keys_collide_each_count_once(any_store, roles, review_settings, taxonomy):
    """Was severe 1 of 2 texts read: the second item's reveal was taken as already revealed."""
    add_scored(any_store, taxonomy, [{"id": i, "label": "hate", "scores": HATE, "text": f"vile {i}"} for i in (A, B)])
    for item_id in (A, B, B, A):  # a second read of either counts once
        assert _api_reveal(any_store, item_id)["text"] == f"vile {item_id}"
    seen = exposure(any_store, ANN, review_settings)
    assert (seen["severe"], seen["revealed"]) == (2, 2)
    rows = _rows(any_store)
    assert sorted(r[3] for r in rows) == sorted([A, B]) and all(r[2] < 0 for r in rows)
    assert len({r[2] for r in rows}) == 2  # each under a key of its own
    from labeling.wellbeing import record_caseless_reveal

    bob = Principal("bob", "analyst")
    with any_store.begin() as conn:  # another reader counts each once too
        assert record_caseless_reveal(conn, bob, B, "P1", utcnow())
        assert record_caseless_reveal(conn, bob, A, "P1", utcnow())
        assert not record_caseless_reveal(conn, bob, B, "P1", utcnow())


def test_a_reveal_stored_under_the_old_key_still_counts_once_after_the_upgrade(any_store, roles, review_settings,
                                                                               taxonomy):
    """Rows written before the fix are neither lost, rewritten nor counted again."""
    add_scored(any_store, taxonomy, [{"id": i, "label": "hate", "scores": HATE, "text": f"vile {i}"} for i in (A, B)])
    with any_store.begin() as conn:  # as the old code stored A's reveal
        conn.execute(insert(Reveal.__table__).values(analyst="ann", case_id=_old_key(A), item_id=A,
                                                     severity=review_settings.severe_tiers[0], created_at=utcnow()))
    before = _rows(any_store)
    for item_id in (A, B, A, B):
        _api_reveal(any_store, item_id)
    after = _rows(any_store)
    assert after[0] == before[0] and len(after) == 2 and after[1][3] == B  # A's row as it was; B's added
    assert exposure(any_store, ANN, review_settings)["severe"] == 2


def test_the_upgrade_to_0012_keeps_every_reveal_and_an_old_one_still_counts_once(any_store, roles, review_settings,
                                                                                taxonomy):
    """A store at 0011 with a case-less reveal under its old key: migrated, the row is as it was,
    the look-up by reader and item has its index, and only the colliding item's reveal is new."""
    from alembic import command

    add_scored(any_store, taxonomy, [{"id": i, "label": "hate", "scores": HATE, "text": f"vile {i}"} for i in (A, B)])
    with any_store.begin() as conn:
        cfg = any_store._alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0011")
        conn.execute(insert(Reveal.__table__).values(analyst="ann", case_id=_old_key(A), item_id=A,
                                                     severity=review_settings.severe_tiers[0], created_at=utcnow()))
    assert any_store.schema_revision() == "0011"
    before = _rows(any_store)
    store = open_store(any_store.data_dir, None if any_store.is_sqlite else any_store.url)
    try:
        assert store.schema_revision() == store.head_revision()
        assert "ix_reveals_analyst_item" in {ix["name"] for ix in sa_inspect(store.engine).get_indexes("reveals")}
        assert _rows(store) == before
        for item_id in (A, B, A, B):
            _api_reveal(store, item_id)
        assert _rows(store)[0] == before[0] and [r[3] for r in _rows(store)] == [A, B]
        assert exposure(store, ANN, review_settings)["severe"] == 2
    finally:
        store.dispose()


def test_a_caseless_reveal_that_finds_every_probe_taken_is_one_line(sqlite_store, monkeypatch):
    """A store that says every key is taken (and none is this item's) ends in one line, not a loop."""
    import labeling.wellbeing as wellbeing
    from labeling.wellbeing import record_caseless_reveal

    monkeypatch.setattr(wellbeing, "_first_reveal", lambda *a, **k: False)
    with sqlite_store.begin() as conn, pytest.raises(QueueError) as err:
        record_caseless_reveal(conn, ANN, "x\ny", "P1", utcnow())
    assert "\n" not in str(err.value) and "ann" in str(err.value) and "x y" in str(err.value)


# -- 2. one rule for the tier, at every door -------------------------------------------------------
@pytest.fixture
def masked_spam(any_store, taxonomy, queue_config):
    """A spam-topped case (P3 by its top label) masked for a hate score: reveal_tier says hate."""
    add_scored(any_store, taxonomy, [{"id": "s", "label": "spam", "scores": HATE_BELOW_TOP, "text": "buy, vermin"}])
    build_cases(any_store, taxonomy, quiet(queue_config), progress=False)
    return case_ids(any_store)["s"]


def test_reveal_text_has_no_default_for_the_taxonomy_or_settings(any_store, masked_spam):
    for name in ("taxonomy", "settings"):
        param = inspect.signature(reveal_text).parameters[name]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is inspect.Parameter.empty
    with pytest.raises(TypeError):
        reveal_text(any_store, masked_spam, ANN)  # was stored at the case's tier, P3
    assert _rows(any_store) == []


@pytest.mark.parametrize("door", ["reveal_text", "show_case"])
def test_every_case_door_stores_the_reveal_tier_or_refuses(any_store, taxonomy, review_settings, masked_spam, door):
    """Whatever a caller passes, a reveal is stored at `reveal_tier` (hate's tier here) or refused:
    was stored at the case's tier (spam's, not severe) when the taxonomy was left out."""
    with any_store.read() as conn:
        case = conn.execute(select(Case.__table__).where(Case.id == masked_spam)).mappings().first()
        want = reveal_tier(conn, taxonomy, review_settings, "s", case)
    assert case["severity"] != want and want in review_settings.severe_tiers  # the case's tier would undercount
    calls = {"reveal_text": [lambda: reveal_text(any_store, masked_spam, ANN),
                             lambda: reveal_text(any_store, masked_spam, ANN, taxonomy=taxonomy,
                                                 settings=review_settings)],
             "show_case": [lambda: show_case(any_store, masked_spam, review_settings, reveal_by=ANN),
                           lambda: show_case(any_store, masked_spam, review_settings, reveal_by=ANN,
                                             taxonomy=taxonomy)]}
    for call in calls[door]:  # the one without the taxonomy first: it was the one stored
        try:
            call()
        except (TypeError, QueueError):
            pass
    assert [r[4] for r in _rows(any_store)] == [want]
    assert exposure(any_store, ANN, review_settings)["severe"] == 1


def test_show_case_refuses_a_reveal_without_the_taxonomy_in_one_line(any_store, review_settings, masked_spam):
    with pytest.raises(QueueError) as err:
        show_case(any_store, masked_spam, review_settings, reveal_by=ANN)
    assert "\n" not in str(err.value) and str(masked_spam) in str(err.value)
    assert _rows(any_store) == []  # nothing stored at the wrong tier
    assert show_case(any_store, masked_spam, review_settings)["masked"]  # a plain show needs none


# -- 3. a corrupt row fails no reveal and no page load ------------------------------------------------
@pytest.mark.parametrize("meta", [["not", "an", "object"], "scores"])
def test_a_case_whose_meta_is_not_an_object_is_still_revealed_and_counted(any_store, taxonomy, review_settings,
                                                                          masked_spam, meta):
    with any_store.begin() as conn:
        conn.execute(update(Case.__table__).where(Case.id == masked_spam).values(meta=meta))
    assert reveal_text(any_store, masked_spam, ANN, taxonomy=taxonomy, settings=review_settings) == "buy, vermin"
    assert exposure(any_store, ANN, review_settings)["severe"] == 1


def test_display_settings_stored_as_a_non_object_read_as_the_defaults(any_store, review_settings):
    with any_store.begin() as conn:
        conn.execute(insert(UserPreference.__table__).values(user_name="ann", prefs=["blur"], updated_at=utcnow()))
    assert preferences(any_store, ANN, review_settings) == {"blur": review_settings.default_blur,
                                                            "grayscale": review_settings.default_grayscale}
