"""Exposure to severe content counted per shift, not once per analyst and case for ever.

The defect: a reveal is stored once per analyst and case (`reveals`) and the case then stays
revealed for that analyst. An analyst who revealed a severe case yesterday and reads it again
today (it came back through re-review, an appeal, an escalation or the label-error queue; the API's
item view; `cases show --reveal`) is exposed again, but today's shift counted nothing: `exposure`
counted reveal rows by their first time only. Each exposure is now kept (`exposures`, migration
0016: a span per analyst and case whose exposures lie at most `EXPOSURE_GAP` apart) and counted
once per (analyst, item) in every shift it falls in; the stored first reveal and its audit event
stay as they were.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, insert, select
from sqlalchemy import inspect as sa_inspect

from core.principals import Principal
from core.schema import AuditEvent, Reveal, utcnow
from core.store import open_store
from labeling.cases import build_cases
from labeling.packets import reveal_text
from labeling.wellbeing import exposure, record_caseless_reveal, record_reveal, team_exposure
from test_queue_support import add_scored, case_ids, quiet

ANN = Principal("ann", "analyst")
LEA = Principal("lea", "lead")
HATE = {"benign": 0.05, "spam": 0.01, "scam": 0.01, "hate": 0.90, "harassment": 0.03}
DAY1 = dt.datetime(2026, 12, 6, 9, 0)  # ann's first shift
DAY2 = dt.datetime(2026, 12, 7, 10, 0)  # her next one, 25 hours later
H = dt.timedelta(hours=1)


def _hate_case(store, taxonomy, queue_config, item_id: str = "h1") -> int:
    add_scored(store, taxonomy, [{"id": item_id, "label": "hate", "scores": HATE, "text": f"vile {item_id}"}])
    build_cases(store, taxonomy, quiet(queue_config), progress=False)
    return case_ids(store)[item_id]


def _stored(store) -> tuple[list[tuple], int]:
    """Every reveal row as stored, and the number of `text.reveal` audit events."""
    with store.read() as conn:
        rows = [tuple(r) for r in conn.execute(select(Reveal.__table__).order_by(Reveal.id))]
        events = conn.execute(select(func.count()).select_from(AuditEvent.__table__)
                              .where(AuditEvent.action == "text.reveal")).scalar_one()
    return rows, events


def _severe(store, settings, at: dt.datetime) -> tuple[int, int]:
    seen = exposure(store, ANN, settings, now=at)
    return seen["severe"], seen["revealed"]


def test_a_case_revealed_again_in_a_later_shift_counts_in_that_shift(any_store, taxonomy, queue_config,
                                                                     review_settings):
    """Was (0, 0) on day 2: the reveal row of day 1 was the only one, outside day 2's shift."""
    case_id = _hate_case(any_store, taxonomy, queue_config)
    reveal_text(any_store, case_id, ANN, DAY1, taxonomy=taxonomy, settings=review_settings)
    first = _stored(any_store)
    assert _severe(any_store, review_settings, DAY1 + H) == (1, 1)
    for k in range(3):  # the case back on her screen three times today: one exposure today
        assert reveal_text(any_store, case_id, ANN, DAY2 + k * H, taxonomy=taxonomy,
                           settings=review_settings) == "vile h1"
    assert _severe(any_store, review_settings, DAY2 + 3 * H) == (1, 1)
    assert _severe(any_store, review_settings, DAY1 + H) == (1, 1)  # day 1 as it was: still one
    assert _severe(any_store, review_settings, DAY1 + 12 * H) == (0, 0)  # between the shifts: none
    assert _stored(any_store) == first  # the first reveal and its one audit event, unchanged
    rows = team_exposure(any_store, LEA, review_settings, now=DAY2 + 3 * H)
    assert [(r["analyst"], r["severe"], r["revealed"]) for r in rows] == [("ann", 1, 1)]


def test_exposures_far_apart_in_one_span_do_not_fill_the_shift_between(any_store, review_settings):
    """Exposures at 09:00 and 12:00, then daily: a shift that holds none of them counts none, and
    one that ends just after an exposure counts it however long ago the first one was."""
    with any_store.begin() as conn:
        assert record_reveal(conn, ANN, 7, "h7", "P0", DAY1)
        for at in (DAY1 + 3 * H, DAY2, DAY2 + 30 * H):
            assert not record_reveal(conn, ANN, 7, "h7", "P0", at)
    settings = review_settings.model_copy(update={"shift_hours": 2.0})
    assert _severe(any_store, settings, DAY1 + 2 * H) == (1, 1)
    assert _severe(any_store, settings, DAY1 + 2.5 * H) == (0, 0)  # 00:30 to 11:30 hold none: (09:00, 12:00)
    assert _severe(any_store, settings, DAY1 + 4.5 * H) == (1, 1)
    assert _severe(any_store, settings, DAY2 - H) == (0, 0)
    assert _severe(any_store, settings, DAY2 + H) == (1, 1)
    assert _severe(any_store, settings, DAY2 + 12 * H) == (0, 0)
    assert _severe(any_store, settings, DAY2 + 31 * H) == (1, 1)


def test_a_case_read_again_at_a_severe_tier_counts_as_severe_in_that_shift(any_store, review_settings):
    """Revealed at P3, then escalated (its text now counts at P0) and read again the same shift,
    given in another zone: was 0 severe, the stored row's P3 being all that counted."""
    pacific = dt.timezone(dt.timedelta(hours=-8))
    with any_store.begin() as conn:
        assert record_reveal(conn, ANN, 7, "h7", "P3", DAY2)
        assert not record_reveal(conn, ANN, 7, "h7", "P0", (DAY2 + H).replace(tzinfo=dt.timezone.utc)
                                 .astimezone(pacific))
    assert _severe(any_store, review_settings, DAY2 + 0.5 * H) == (0, 1)
    assert _severe(any_store, review_settings, DAY2 + 2 * H) == (1, 1)
    assert _severe(any_store, review_settings, DAY2 + 8.75 * H) == (1, 1)  # 10:45 to 18:45: the P0 read at 11:00 alone
    assert _severe(any_store, review_settings, DAY2 + 9.25 * H) == (0, 0)


def test_a_caseless_item_read_again_through_the_api_today_counts_today(any_store, roles, taxonomy,
                                                                        review_settings):
    """The API's item view of an item without a case, read yesterday and again now: was 0 today."""
    from workbench.api_reveal import item_view
    from workbench.context import AppContext

    add_scored(any_store, taxonomy, [{"id": "c1", "label": "hate", "scores": HATE, "text": "vile c1"}])
    with any_store.begin() as conn:
        assert record_caseless_reveal(conn, ANN, "c1", "P0", utcnow() - 20 * H)
    before = _stored(any_store)
    assert exposure(any_store, ANN, review_settings)["severe"] == 0
    assert item_view(AppContext(store=any_store), "c1", ANN, reveal=True)["text"] == "vile c1"
    assert item_view(AppContext(store=any_store), "c1", ANN, reveal=True)["text"] == "vile c1"
    assert (exposure(any_store, ANN, review_settings)["severe"], _stored(any_store)[0]) == (1, before[0])


def test_the_upgrade_to_0016_keeps_every_reveal_and_counts_a_later_exposure(any_store, taxonomy, queue_config,
                                                                         review_settings):
    """A store at 0015 with yesterday's reveal: migrated, the row is as it was and counts in its
    own shift; read again today it counts today too."""
    from alembic import command

    case_id = _hate_case(any_store, taxonomy, queue_config)
    with any_store.begin() as conn:
        cfg = any_store._alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0015")
        conn.execute(insert(Reveal.__table__).values(analyst="ann", case_id=case_id, item_id="h1", severity="P0",
                                                     created_at=DAY1))
    before = _stored(any_store)
    store = open_store(any_store.data_dir, None if any_store.is_sqlite else any_store.url)
    try:
        assert store.schema_revision() == store.head_revision()
        assert "exposures" in sa_inspect(store.engine).get_table_names()
        assert _stored(store) == before
        assert _severe(store, review_settings, DAY1 + H) == (1, 1)
        reveal_text(store, case_id, ANN, DAY2, taxonomy=taxonomy, settings=review_settings)
        assert _severe(store, review_settings, DAY2 + H) == (1, 1)
        assert _stored(store) == before
    finally:
        store.dispose()


def test_the_review_screen_showing_a_revealed_case_in_a_later_shift_counts_it(any_store, taxonomy, queue_config,
                                                                               review_settings, campaign_settings):
    """The Review screen shows a case its viewer revealed yesterday unmasked (`review_packet`):
    that reading counts in today's shift, once however often the screen renders it."""
    from labeling.packets import review_packet

    case_id = _hate_case(any_store, taxonomy, queue_config)
    reveal_text(any_store, case_id, ANN, DAY1, taxonomy=taxonomy, settings=review_settings)
    first = _stored(any_store)
    for k in range(3):
        packet = review_packet(any_store, taxonomy, case_id, review_settings, campaign_settings, now=DAY2 + k * H,
                               viewer=ANN)
        assert packet["revealed"] and packet["item"]["text"] == "vile h1"
    assert _severe(any_store, review_settings, DAY2 + 3 * H) == (1, 1)
    assert _stored(any_store) == first
    # a viewer who never revealed it sees it masked and is charged nothing
    bob = Principal("bob", "analyst")
    assert not review_packet(any_store, taxonomy, case_id, review_settings, campaign_settings, now=DAY2,
                             viewer=bob)["revealed"]
    assert exposure(any_store, bob, review_settings, now=DAY2 + H)["revealed"] == 0
