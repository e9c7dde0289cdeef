"""Pure campaign-fact functions: class-based TF-IDF, exemplar, growth, timeline, mixes."""
from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pytest

from clustering import facts

T0 = dt.datetime(2026, 1, 1, 10, 0)


def test_class_tfidf_prefers_terms_specific_to_the_class():
    corpus = Counter({"call": 50, "prize": 6, "claim": 5, "later": 40, "ok": 60})
    cls = Counter({"call": 5, "prize": 5, "claim": 4})
    top = facts.class_tfidf_top_terms(cls, corpus, n_classes=10, k=2)
    assert [t for t, _ in top] == ["prize", "claim"]  # "call" is frequent everywhere
    assert top[0][1] > top[1][1] > 0
    assert facts.class_tfidf_top_terms(Counter(), corpus, 10) == []


def test_terms_of_drops_tokens_and_stop_words():
    assert facts.terms_of("you have won a <money> prize! call <phone> now") == ["won", "prize", "call"]


def test_exemplar_is_the_member_nearest_the_centroid():
    v = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert facts.exemplar_row(v[:3]) == 1
    assert facts.exemplar_row(v, weights=np.array([1, 1, 1, 10])) == 3
    with pytest.raises(ValueError):
        facts.exemplar_row(np.empty((0, 2)))


def test_growth_rates_and_recent_counts():
    times = [T0 + dt.timedelta(minutes=30 * i) for i in range(9)]  # 9 members over 4 hours
    g = facts.growth(times, now=T0 + dt.timedelta(hours=4))
    assert g["per_hour"] == pytest.approx(9 / 4) and g["per_day"] == 9
    assert g["last_hour"] == 3 and g["last_day"] == 9
    assert facts.growth([], now=T0)["last_day"] == 0


def test_timeline_fills_gaps_and_accumulates():
    times = [T0, T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(hours=3)]
    series = facts.timeline(times, "h")
    assert [(n, c) for _, n, c in series] == [(2, 2), (0, 2), (0, 2), (1, 3)]
    daily = facts.timeline(times + [T0 + dt.timedelta(days=2)], "D")
    assert [n for _, n, _ in daily] == [3, 0, 1]
    with pytest.raises(ValueError):
        facts.timeline(times, "w")


def test_label_mix_and_mean_scores():
    assert facts.label_mix(["scam", None, "scam", "spam"]) == {"scam": 2, "spam": 1}
    assert facts.mean_scores([{"benign": 0.2, "scam": 0.8}, {"benign": 0.4, "scam": 0.6}]) == \
        {"benign": pytest.approx(0.3), "scam": pytest.approx(0.7)}
    assert facts.mean_scores([]) == {}
