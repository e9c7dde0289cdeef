"""A campaign case's prediction: its members' predictions of record, read by the model's own rule.

The one rule of a predicted label is the scoring model's: probabilities times its tuned per-label
decision weights, arg-max (`models.base.PolicyClassifier.predict_from_proba`), stored as each
prediction's `label` and carried by an item case as its `predicted_label` (`core.predictions`
picks which prediction counts). A campaign case follows the same rule through its members:

- its label is the one most members' predictions of record carry (a plurality of their stored
  labels); a tie goes to the more harmful label (the taxonomy's tier weight: the stricter queue
  reads it), then to the higher mean score, then to the taxonomy's order;
- its score is the members' mean probability of that label, as an item's score is its
  probability of its predicted label (routes' min_score / max_score read it);
- its scores and uncertainty are the members' means (risk and priority read them).

Not the arg-max of the mean raw scores: that drops the decision weights, so a campaign of
members each predicted scam (scam's weight tuned up for a rare class) came out benign, went to
the general queue while its members went to fraud, and confirming scam on it was an override.
Not the weights applied to the mean either: the weights live in the model's artifact, not the
store, and members may be scored by different versions (a champion, a former champion).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from core.taxonomy import Taxonomy

from .priority import label_harm_weights


@dataclass(frozen=True)
class CampaignPrediction:
    """What a campaign case carries as the model's suggestion (see the module's docstring)."""

    label: str
    score: float
    scores: dict[str, float]
    uncertainty: float
    votes: dict[str, int]


def campaign_prediction(taxonomy: Taxonomy, members: Sequence[Mapping[str, Any]],
                        harm: Optional[np.ndarray] = None) -> CampaignPrediction:
    """The campaign's label, score, mean scores and uncertainty from its members' predictions of
    record (mappings with `label`, `scores`, `uncertainty`), by the rule of the module's docstring.
    Raises ValueError for no members (a campaign case needs scored members)."""
    if not members:
        raise ValueError("a campaign prediction needs at least one scored member")
    harm = label_harm_weights(taxonomy) if harm is None else harm
    weight = {lbl: float(harm[i]) for i, lbl in enumerate(taxonomy.labels)}
    order = {lbl: i for i, lbl in enumerate(taxonomy.labels)}

    def mean_of(lbl: str) -> float:
        return float(np.mean([float((m.get("scores") or {}).get(lbl, 0.0)) for m in members]))

    scores = {lbl: mean_of(lbl) for lbl in taxonomy.labels}
    votes = Counter(str(m["label"]) for m in members if m.get("label"))
    if votes:
        label = max(votes, key=lambda lbl: (votes[lbl], weight.get(lbl, 0.0), mean_of(lbl),
                                            -order.get(lbl, len(order))))
    else:  # no stored label at all (never written by scoring): the mean's arg-max is all there is
        label = max(scores, key=lambda lbl: scores[lbl])
    return CampaignPrediction(label=label, score=mean_of(label), scores=scores,
                              uncertainty=float(np.mean([float(m.get("uncertainty") or 0.0) for m in members])),
                              votes=dict(votes))
