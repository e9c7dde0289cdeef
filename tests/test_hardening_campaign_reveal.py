"""The tier a campaign case's reveal counts at against the shift's exposure budget.

Revealing a campaign case unmasks its members' texts on the review screen (the packet's
campaign sample), but `wellbeing.reveal_tier` looked at the case's own item alone: a spam
campaign masked only for one hate-scored member counted at the case's tier (P3, not severe)
though the analyst read that member. The reveal now counts at the most severe tier over the
case's item and every member the packet shows (a bounded sample, read in batch).
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.principals import Principal
from core.schema import Case
from labeling.cases import build_cases
from labeling.wellbeing import exposure, reveal_tier
from test_queue_support import add_campaign, add_scored, case_ids, quiet

ANN = Principal("ann", "analyst")
SPAM = {"benign": 0.05, "spam": 0.90, "scam": 0.03, "hate": 0.01, "harassment": 0.01}
# Masked (hate at 0.3 reaches mask_min_score 0.15), top label spam (P3).
HATE_BELOW_TOP = {"benign": 0.05, "spam": 0.60, "scam": 0.03, "hate": 0.30, "harassment": 0.02}


@pytest.fixture
def spam_campaign(any_store, taxonomy, queue_config):
    """A spam campaign (case tier P3) masked only because of member m4, hate-scored below its top label."""
    specs = [{"id": f"m{i}", "label": "spam", "scores": SPAM, "text": f"buy cheap watches {i}"} for i in range(4)]
    specs.append({"id": "m4", "label": "spam", "scores": HATE_BELOW_TOP, "text": "buy cheap watches, you vermin"})
    add_scored(any_store, taxonomy, specs)
    add_campaign(any_store, [s["id"] for s in specs])
    build_cases(any_store, taxonomy, quiet(queue_config), progress=False)
    return case_ids(any_store)["campaign"]


def _case(store, case_id: int):
    with store.read() as conn:
        return conn.execute(select(Case.__table__).where(Case.id == case_id)).mappings().one()


def test_a_campaign_reveal_counts_at_the_most_severe_member_it_unmasks(any_store, taxonomy, review_settings,
                                                                      campaign_settings, spam_campaign):
    """Was P3 (not severe): the case's item is plain spam, but the reveal unmasks m4's hate text."""
    from labeling.packets import reveal_text, review_packet

    case = _case(any_store, spam_campaign)
    assert (case["severity"], case["item_id"]) == ("P3", "m0")
    masked = review_packet(any_store, taxonomy, spam_campaign, review_settings, campaign_settings, viewer=ANN)
    assert masked["masked"] and "vermin" not in str(masked["campaign"]["sample"])
    with any_store.read() as conn:
        assert reveal_tier(conn, taxonomy, review_settings, "m0", case) == "P1"
    reveal_text(any_store, spam_campaign, ANN, taxonomy=taxonomy, settings=review_settings)
    shown = review_packet(any_store, taxonomy, spam_campaign, review_settings, campaign_settings, viewer=ANN)
    assert "vermin" in str(shown["campaign"]["sample"])  # what the reveal unmasked
    seen = exposure(any_store, ANN, review_settings)
    assert (seen["severe"], seen["revealed"]) == (1, 1)


def test_an_api_reveal_of_a_campaign_exemplar_counts_its_members(any_store, roles, spam_campaign):
    """The API's item view charges the item's newest case, here the campaign's: its reveal unmasks
    the members on the review screen too, so it counts them."""
    from workbench.api import item_view
    from workbench.context import AppContext

    ctx = AppContext(store=any_store)
    assert item_view(ctx, "m0", ANN, reveal=True)["masked"] is False
    seen = exposure(any_store, ANN, ctx.review())
    assert (seen["severe"], seen["revealed"]) == (1, 1)


def test_an_item_case_is_not_charged_for_a_campaign_it_is_not(any_store, taxonomy, review_settings,
                                                             queue_config):
    """Only a campaign case's reveal looks at members: a plain spam item case stays P3."""
    add_scored(any_store, taxonomy, [{"id": "solo", "label": "spam", "scores": SPAM, "text": "buy watches"}])
    build_cases(any_store, taxonomy, quiet(queue_config), progress=False)
    case = _case(any_store, case_ids(any_store)["solo"])
    with any_store.read() as conn:
        assert reveal_tier(conn, taxonomy, review_settings, "solo", case) == "P3"


def test_the_campaign_tier_reads_its_members_in_batch(any_store, taxonomy, review_settings, queue_config):
    """A campaign may hold thousands of members: the rule reads the shown sample in a fixed number
    of statements, not one (or several) per member."""
    from sqlalchemy import event

    def statements(size: int) -> int:
        ids = add_scored(any_store, taxonomy, [{"id": f"s{size}-{i}", "label": "spam", "scores": SPAM,
                                                "text": f"buy watches {size} {i}"} for i in range(size)])
        camp = add_campaign(any_store, ids)
        case = {"severity": "P3", "campaign_id": camp, "item_id": ids[0], "meta": {}}
        seen: list[str] = []
        with any_store.read() as conn:
            listen = lambda *a: seen.append(a[2])  # noqa: E731
            event.listen(conn, "before_cursor_execute", listen)
            try:
                assert reveal_tier(conn, taxonomy, review_settings, ids[0], case) == "P3"
            finally:
                event.remove(conn, "before_cursor_execute", listen)
        return len(seen)

    few = statements(3)
    assert few > 0 and few == statements(40)


def test_cases_show_masks_a_masked_campaigns_top_terms(any_store, taxonomy, review_settings, spam_campaign):
    """`cases show --json` printed a masked campaign case's top terms raw (they come from every
    member, the hate one included), while the review screen masks them until revealed."""
    from sqlalchemy import update

    from core.schema import Campaign
    from labeling.packets import show_case

    with any_store.begin() as conn:
        conn.execute(update(Campaign.__table__).values(top_terms=[["vermin", 0.9], ["watches", 0.5]]))
    shown = show_case(any_store, spam_campaign, review_settings)
    assert shown["masked"] and "vermin" not in str(shown["campaign"])
    revealed = show_case(any_store, spam_campaign, review_settings, reveal_by=ANN, taxonomy=taxonomy)
    assert "vermin" in str(revealed["campaign"]["top_terms"])
