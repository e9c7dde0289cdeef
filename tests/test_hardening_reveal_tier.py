"""The tier a reveal counts at against the shift's exposure budget: one rule for every door.

A reveal of a case was stored at the case's tier, which comes from the model's top label alone.
A text masked for its source policy label, a decided label or a hate score below the top label
(spam at 0.6, hate at 0.3) counted as not severe: reading such texts left the exposure count
low. `wellbeing.reveal_tier` is now the one rule (the most severe of the case's tier and what
the text's evidence points to, as masking reads it); the API's item view uses it with and
without a case (it had its own fuller rule for the case-less path only).
"""
from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from core.principals import Principal
from core.schema import Case, Decision, utcnow
from labeling.cases import build_cases
from labeling.masking import is_sensitive
from labeling.wellbeing import exposure, reveal_tier
from test_models_fixtures import add_items
from test_queue_support import add_scored, case_ids, quiet

ANN = Principal("ann", "analyst")
# Masked (hate at 0.3 reaches mask_min_score 0.15), top label spam (P3): not severe by the case.
HATE_BELOW_TOP = {"benign": 0.05, "spam": 0.60, "scam": 0.03, "hate": 0.30, "harassment": 0.02}
SPAM = {"benign": 0.05, "spam": 0.90, "scam": 0.03, "hate": 0.01, "harassment": 0.01}
BENIGN = {"benign": 0.97, "spam": 0.01, "scam": 0.01, "hate": 0.005, "harassment": 0.005}


def _decide(store, taxonomy, item_id: str, label: str) -> None:
    with store.begin() as conn:
        conn.execute(insert(Decision.__table__).values(
            item_id=item_id, label=label, action="remove", kind="review", reviewer="lee",
            taxonomy_version=taxonomy.version, created_at=utcnow()))


def _case(store, case_id: int):
    with store.read() as conn:
        return conn.execute(select(Case.__table__).where(Case.id == case_id)).mappings().first()


@pytest.fixture
def spam_cases(any_store, taxonomy, queue_config):
    """Four spam-topped cases (P3): one masked by a hate score, one by its source label, one by
    a decided label, one not masked at all."""
    add_scored(any_store, taxonomy, [
        {"id": "score", "label": "spam", "scores": HATE_BELOW_TOP, "text": "buy now, you vermin"},
        {"id": "source", "label": "spam", "scores": SPAM, "text": "buy now", "truth": "hate"},
        {"id": "decided", "label": "spam", "scores": SPAM, "text": "buy later"},
        {"id": "plain", "label": "spam", "scores": SPAM, "text": "win a prize"}])
    build_cases(any_store, taxonomy, quiet(queue_config), progress=False)
    _decide(any_store, taxonomy, "decided", "hate")
    return case_ids(any_store)


def test_an_api_reveal_of_a_case_counts_at_its_texts_evidence(any_store, roles, spam_cases):
    """Was 0 severe of 4: each case is P3 by its top label, though three texts were masked as hate."""
    from workbench.api import item_view
    from workbench.context import AppContext

    ctx = AppContext(store=any_store)
    assert {_case(any_store, c)["severity"] for c in spam_cases.values()} == {"P3"}
    for item_id in spam_cases:
        assert item_view(ctx, item_id, ANN, reveal=True)["masked"] is False
    seen = exposure(any_store, ANN, ctx.review())
    assert (seen["severe"], seen["revealed"]) == (3, 4)  # hate is P1; the plain spam text stays P3


def test_reveal_tier_is_the_most_severe_of_the_case_and_the_evidence(any_store, taxonomy, review_settings,
                                                                    spam_cases):
    cases = {i: _case(any_store, c) for i, c in spam_cases.items()}
    with any_store.read() as conn:
        tier = {i: reveal_tier(conn, taxonomy, review_settings, i, case) for i, case in cases.items()}
        assert tier == {"score": "P1", "source": "P1", "decided": "P1", "plain": "P3"}
        severe = dict(_case(any_store, spam_cases["plain"]), severity="P0")  # a case escalated since
        assert reveal_tier(conn, taxonomy, review_settings, "plain", severe) == "P0"
        assert reveal_tier(conn, taxonomy, review_settings, "no such item", None) is None


def test_every_masked_text_counts_at_least_at_its_masked_policys_tier(any_store, taxonomy, review_settings):
    """Masking and exposure agree: a text masked for a policy never counts below that policy's
    tier; one nothing is known about counts at the most severe; an escalation criterion matched
    by the prediction of record counts at its tier; a benign text without a case at none; a
    prediction whose scores are no probabilities (a corrupt row) as one nothing is known about."""
    add_scored(any_store, taxonomy, [
        {"id": "h", "label": "spam", "scores": HATE_BELOW_TOP, "text": "cheap pills"},
        {"id": "t", "label": "spam", "scores": HATE_BELOW_TOP, "text": "i will kill you"},
        {"id": "b", "label": "benign", "scores": BENIGN, "text": "lunch?"},
        {"id": "odd", "label": "benign", "scores": dict(BENIGN, hate="lots"), "text": "odd"}])  # hostile
    bare = add_items(any_store, ["never scored"], [None])[0]
    hate_sla = taxonomy.sla_minutes(taxonomy.severity_of("hate"))
    with any_store.read() as conn:
        got = {i: reveal_tier(conn, taxonomy, review_settings, i) for i in ("h", "t", "b", "odd", bare)}
        assert is_sensitive(review_settings, HATE_BELOW_TOP)
        assert taxonomy.sla_minutes(got["h"]) <= hate_sla
    assert got == {"h": "P1", "t": "P0", "b": None, "odd": "P0", bare: "P0"}


def test_the_review_screen_and_cases_show_reveal_count_by_the_same_rule(any_store, taxonomy, review_settings,
                                                                        spam_cases):
    """`reveal_text` (the Review screen, an appeal) and `show_case(reveal_by=...)` (`cases show
    --reveal`) stored the case's tier (P3): with the taxonomy, `reveal_tier` as the API does."""
    from labeling.packets import reveal_text, show_case

    for item_id in ("score", "decided"):
        reveal_text(any_store, spam_cases[item_id], ANN, taxonomy=taxonomy, settings=review_settings)
    for item_id in ("source", "plain"):
        show_case(any_store, spam_cases[item_id], review_settings, reveal_by=ANN, taxonomy=taxonomy)
    seen = exposure(any_store, ANN, review_settings)
    assert (seen["severe"], seen["revealed"]) == (3, 4)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "high", None, [0.9]])
def test_a_mask_policy_score_that_is_no_number_masks_the_text(review_settings, bad):
    """`should_mask` failed open: a NaN hate score (SQLite rows written before the current
    prediction rule can hold one) left the text unmasked, since `nan >= 0.15` is False; a text or
    None score raised instead of masking."""
    from labeling.masking import should_mask

    policy = review_settings.mask_policies[0]
    assert should_mask(review_settings, {policy: bad, "benign": 0.1}, None) is True
    assert should_mask(review_settings, {policy: 0.0, "benign": 1.0}, None) is False
