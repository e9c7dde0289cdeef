"""Simulated analysts for `workbench demo`: a small team works the queues so the learning loop
(retrain behind the gate, the label-error scan, the evaluation report, drift) has human
decisions to work on.

They go through the same service calls as the review screen (`next_case`, `decide`, `skip`)
and the role matrix applies to them (two analysts and a lead, none of them an account: they are
in-process principals of the demo). Each answers with the item's source label through the
taxonomy (a campaign case: its members' most common one), so the decisions are as right as the
shared datasets are; a seeded share of answers is deliberately wrong, as a tired reviewer's
are, so the label-error scan has real slips to find. Cases a simulated analyst may not decide
(a campaign without `bulk`, a QA re-review of their own decision) are skipped, as a person
would, and go to someone else.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional, Sequence

from sqlalchemy import func, select

from core.hooks import PermissionDenied
from core.principals import Principal
from core.schema import CampaignMember, Decision, Item

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy
    from labeling.queue_config import QueueConfig

TEAM: tuple[Principal, ...] = (Principal("sim-ana", "analyst", "local"), Principal("sim-ben", "analyst", "local"),
                               Principal("sim-lea", "lead", "local"))
MISTAKE = "simulated slip: not the source label"


def work_queues(config: "QueueConfig") -> list[str]:
    """The queues the team drains, in config order: not appeals, not the lead's re-review queue."""
    off = {config.appeals_queue, config.label_errors.queue}
    return [q for q in config.queues if q not in off]


def source_answer(store: "Store", case: dict[str, Any]) -> Optional[str]:
    """The label a careful analyst gives: the item's policy label, or a campaign's most common
    member label; None when the source has none."""
    with store.read() as conn:
        if case.get("campaign_id") is not None:
            rows = conn.execute(select(Item.policy_label).join(CampaignMember, CampaignMember.item_id == Item.id)
                                .where(CampaignMember.campaign_id == case["campaign_id"])).scalars().all()
            counts = Counter(r for r in rows if r)
            return counts.most_common(1)[0][0] if counts else None
        return conn.execute(select(Item.policy_label).where(Item.id == case["item_id"])).scalar()


def team_cases(store: "Store", team: Sequence[Principal] = TEAM) -> int:
    """How many cases `team` has decided in this store (an earlier demo run's included)."""
    with store.read() as conn:
        return int(conn.execute(select(func.count(Decision.case_id.distinct()))
                                .where(Decision.reviewer.in_([p.name for p in team]))).scalar() or 0)


def simulate_decisions(store: "Store", taxonomy: "Taxonomy", config: "QueueConfig", n: int, *,
                       mistake_rate: float = 0.03, seed: int = 7, team: Sequence[Principal] = TEAM,
                       progress: bool = True) -> dict[str, Any]:
    """Up to `n` case decisions by `team`, rotating over analysts and `work_queues`; returns
    counts (cases decided, decision rows written, per queue and analyst, slips as decision rows,
    QA audits, overrides, skips). Stops early when every queue is empty for everyone."""
    from tqdm.auto import tqdm

    from labeling.claims import next_case, skip
    from labeling.decisions import decide
    from labeling.errors import LabelingError

    rng = random.Random(seed)
    queues = work_queues(config)
    by_queue: Counter[str] = Counter()
    by_analyst: Counter[str] = Counter()
    out = {"cases": 0, "decisions": 0, "slips": 0, "qa_audit": 0, "overrides": 0, "skipped": 0,
           "no_source_label": 0}
    empty: set[tuple[str, str]] = set()
    turn = 0
    with tqdm(total=n, desc="simulated analysts", unit="case", disable=not progress) as bar:
        while out["cases"] < n and len(empty) < len(queues) * len(team):
            who = team[turn % len(team)]
            queue = queues[(turn // len(team)) % len(queues)]
            turn += 1
            if (queue, who.name) in empty:
                continue
            case = next_case(store, who, queue, config)
            if case is None:
                empty.add((queue, who.name))
                continue
            truth = source_answer(store, case)
            if truth is None:
                skip(store, case["id"], who, config, reason="demo: no source label to answer with")
                out["no_source_label"] += 1
                continue
            label, rationale = truth, f"demo: the source dataset's label ({truth})"
            if rng.random() < mistake_rate:
                label = rng.choice([lab for lab in taxonomy.labels if lab != truth])
                rationale = f"demo: {MISTAKE} ({truth})"
            try:
                view = decide(store, taxonomy, case["id"], who, label, rationale=rationale, config=config)
            except (LabelingError, PermissionDenied) as exc:  # not theirs to decide: someone else will
                skip(store, case["id"], who, config, reason=f"demo: {str(exc)[:150]}")
                out["skipped"] += 1
                continue
            out["cases"] += 1
            out["decisions"] += len(view["decision_ids"])
            out["slips"] += len(view["decision_ids"]) if label != truth else 0  # a campaign: each member
            out["qa_audit"] += view["kind"] == "qa_audit"
            out["overrides"] += bool(view["is_override"])
            by_queue[queue] += 1
            by_analyst[who.name] += 1
            bar.update(1)
    out.update(by_queue=dict(by_queue), by_analyst=dict(by_analyst))
    return out
