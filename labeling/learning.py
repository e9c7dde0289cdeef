"""The learning share: part of a queue's claims goes to the cases the model learns most from.

Review capacity spent only in risk order teaches the model little: it confirms what it already
knows. `configs/queues.yaml` `learning.queues` gives a queue a share (say 20%) of its next claims
for cases chosen by uncertainty times diversity:

- uncertainty: the margin (1 - (p1 - p2)) or normalised entropy of the prediction of record
  (`core.predictions`), at least `min_uncertainty`;
- diversity: at most one case per campaign and per text, and none within cosine `max_similarity`
  of another learning case (one per embedding cluster); among the rest the greedy pick maximises
  uncertainty x distance to the cases already picked (uncertainty-weighted k-center, over the
  cached embeddings of `models.embeddings`).

Claims are untouched (`labeling.claims` takes the highest priority): a pass pins each chosen case
at the priority of its slot, so that of the next `horizon` claims (or of the cases waiting,
when fewer wait) the configured share are learning cases, interleaved evenly with the risk order (`interleave_priorities`) after any
cold-start seeds (`labeling.seeding`), which lead the queue; `among_seeds` of the claims while
the seeds last are learning cases interleaved with them (0: every seed first;
`among_seeds_new_surface` when the seeds come from a source the champion never learnt from). A
pinned case's explanation starts with `learning:` and its `meta.learning` says why, so analysts
and evaluation know why it was served; the sweep keeps pinned priorities (`priority.pinned`).
Each pass re-plans: cases no longer chosen go back to risk order. The pure functions over arrays
come first; the benchmarks run them as the product does.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from sqlalchemy import and_, func, or_, select, update

from core import audit
from core.hooks import check_permission
from core.predictions import champion_version, predictions_of_record
from core.principals import Actor
from core.schema import CampaignMember, Case, Decision, Item, ModelVersion, utcnow
from core.store import Store, serialise
from core.taxonomy import Taxonomy
from models.metrics import UNCERTAINTY, entropy_uncertainty, margin_uncertainty  # noqa: F401 (re-exported)

from .cases import unchanged
from .priority import score_features
from .queue_config import LearningShare, QueueConfig

C = Case.__table__
I = Item.__table__
CM = CampaignMember.__table__
D = Decision.__table__
MV = ModelVersion.__table__


# -- pure functions ---------------------------------------------------------------------------
def uncertainty(probs: np.ndarray, measure: str = "margin") -> np.ndarray:
    """The configured uncertainty measure ('margin' or 'entropy', `models.metrics`) of each row."""
    if measure not in UNCERTAINTY:
        raise ValueError(f"unknown uncertainty measure {measure!r} (margin, entropy)")
    return UNCERTAINTY[measure](probs)


def learning_candidates(unc: np.ndarray, k: int, min_uncertainty: float = 0.0, pool: int = 20) -> np.ndarray:
    """Row indices `select_learning` considers, most uncertain first (ties in row order): the
    `pool` x k most uncertain rows of at least `min_uncertainty`; empty when k <= 0. A planner
    needs vectors for these rows only, not for the whole backlog."""
    unc = np.asarray(unc, dtype=float)
    if k <= 0 or unc.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    cand = np.flatnonzero(unc >= min_uncertainty)
    return cand[np.argsort(-unc[cand], kind="stable")][: max(k * pool, k)]


def select_learning(unc: np.ndarray, k: int, emb: Optional[np.ndarray] = None,
                    groups: Optional[Sequence[Any]] = None, min_uncertainty: float = 0.0,
                    max_similarity: float = 0.9, pool: int = 20, served_groups: Sequence[Any] = (),
                    served_emb: Optional[np.ndarray] = None) -> list[int]:
    """Indices of up to `k` rows, in pick order: uncertain (>= `min_uncertainty`) and diverse.

    Greedy uncertainty-weighted k-center: each pick maximises uncertainty x (1 - the largest
    cosine similarity to the rows already picked); a row in a group already picked (campaign,
    text) or within `max_similarity` of a pick is never taken. `emb` holds unit-length rows (a row
    of NaN where no vector is known: then only its groups keep it apart). Only the `pool` x k most
    uncertain eligible rows are considered, which bounds the cost on a large backlog.
    `served_groups` / `served_emb` (unit rows, NaN where unknown) are learning cases already
    served and not yet learnt from: picks so far, as far as groups and clusters go.
    """
    unc = np.asarray(unc, dtype=float)
    cand = learning_candidates(unc, k, min_uncertainty, pool)
    if cand.size == 0:
        return []
    # Groups as integer ids (one column per group a row belongs to, -1 for none), so excluding
    # the groups of a pick is one vectorised test, not a loop over the backlog.
    ids: dict[Any, int] = {}
    rows_g: list[list[int]] = []
    for i in cand:
        g = groups[i] if groups is not None else None
        keys = [x for x in g if x is not None] if isinstance(g, (set, frozenset, list, tuple)) else \
            ([] if g is None else [g])
        rows_g.append([ids.setdefault(x, len(ids)) for x in keys])
    width = max((len(r) for r in rows_g), default=0)
    gid = np.full((cand.size, max(width, 1)), -1, dtype=np.int64)
    for j, r in enumerate(rows_g):
        gid[j, :len(r)] = r
    vec = None
    known = np.zeros(cand.size, dtype=bool)
    if emb is not None:
        vec = np.asarray(emb, dtype=np.float32)[cand]
        known = ~np.isnan(vec).any(axis=1)
        vec = np.where(known[:, None], vec, 0.0).astype(np.float32)
    u = unc[cand]
    dist = np.ones(cand.size)  # 1 - max similarity to the picks so far
    alive = np.ones(cand.size, dtype=bool)
    done = [ids[x] for g in served_groups for x in (g if isinstance(g, (set, frozenset, list, tuple)) else [g])
            if x is not None and x in ids]
    if done:
        alive &= ~np.isin(gid, done).any(axis=1)
    if vec is not None and served_emb is not None and len(served_emb):
        S = np.asarray(served_emb, dtype=np.float32)
        S = S[~np.isnan(S).any(axis=1)]
        if len(S):
            sim = (vec @ S.T).max(axis=1)
            dist = np.minimum(dist, np.clip(1.0 - sim, 0.0, 1.0))
            alive &= ~(known & (sim >= max_similarity))
    out: list[int] = []
    while len(out) < k and alive.any():
        score = np.where(alive, u * dist, -np.inf)
        j = int(np.argmax(score))
        out.append(int(cand[j]))
        alive[j] = False
        mine = gid[j][gid[j] >= 0]
        if mine.size:
            alive &= ~np.isin(gid, mine).any(axis=1)
        if vec is not None and known[j]:
            sim = vec @ vec[j]
            dist = np.minimum(dist, np.clip(1.0 - sim, 0.0, 1.0))
            alive &= ~(known & (sim >= max_similarity))
    return out


def _floor(x: float) -> int:
    """floor(x), where x is a count times or over a share: 100 x 0.29 is 28.999999999999996 and
    7 / 0.28 is 24.999999999999996 in floating point, which plain floor takes one too low."""
    return int(math.floor(x + 1e-9))


def slot_positions(k: int, share: float, credit: float = 0.0) -> list[int]:
    """Claim positions (0-based) of `k` learning cases spread evenly at `share` of the claims.

    `credit`: the learning cases owed by the claims served since the last one (`claim_credit`, in
    [-1, 1 - share]): each claim adds `share`, and a learning case is due when the credit reaches 1.
    A plan made after every claim (the serve sweeper's) otherwise put the first slot `1 / share`
    claims ahead each time, and no learning case was ever claimed."""
    if k <= 0 or share <= 0:
        return []
    return [max(_floor((j + 1 - credit) / share) - 1, 0) for j in range(k)]


def interleave_priorities(risk_priorities: Sequence[float], k: int, share: float,
                          ceiling: Optional[float] = None, credit: float = 0.0) -> list[float]:
    """Priorities for `k` learning cases so that, among the risk-ordered cases (priorities given
    in claim order, highest first), claims serve `share` of learning cases, evenly spread.

    Learning case j goes after the first `slot_positions[j] - j` risk cases: its priority lies
    strictly between that case's priority and the next one's (below the last one at the end);
    several learning cases between the same two risk cases keep their pick order. Where two risk
    cases tie, the learning case ties with them too (claims then order by case id). With
    `ceiling` (the lowest priority of the cases pinned ahead of the risk order: a cold start's
    seeds), no learning case goes above it while the first risk case stays below it. `credit`: as
    `slot_positions`.
    """
    risk = [float(p) for p in risk_priorities]
    n = len(risk)
    slots = [min(pos - j, n) for j, pos in enumerate(slot_positions(k, share, credit))]
    out: list[float] = []
    for j, r in enumerate(slots):
        if n == 0:
            hi, lo = 1.0, 0.0
        else:
            hi = risk[0] + 1.0 if r == 0 else risk[r - 1]
            if r == 0 and ceiling is not None and risk[0] < ceiling:
                hi = min(hi, ceiling)
            lo = risk[r] if r < n else risk[-1] - 1.0
        same = [m for m, x in enumerate(slots) if x == r]
        m, cnt = same.index(j), len(same)
        out.append(hi - (hi - lo) * (m + 1) / (cnt + 1))
    return out


def probs_matrix(scores: Sequence[Mapping[str, float]], labels: Sequence[str]) -> np.ndarray:
    """(n, len(labels)) per-label probabilities from stored `scores` dicts (missing labels 0)."""
    return np.array([[float((s or {}).get(lab, 0.0)) for lab in labels] for s in scores], dtype=float).reshape(
        len(scores), len(labels))


# -- the pass over a queue --------------------------------------------------------------------
def _cached_vectors(store: Store, model_id: Optional[str], hashes: Sequence[str]) -> Optional[np.ndarray]:
    """Unit vectors of the items' texts from the embedding cache (NaN rows where not cached)."""
    if not model_id or not hashes:
        return None
    from models.embeddings import EmbeddingCache

    found = EmbeddingCache(store, model_id).get(list(hashes))
    if not found:
        return None
    dim = next(iter(found.values())).shape[0]
    out = np.full((len(hashes), dim), np.nan, dtype=np.float32)
    for i, h in enumerate(hashes):
        v = found.get(h)
        if v is not None:
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def _is_seed(row: Any) -> bool:
    """True for a case a cold start pinned (`labeling.seeding`)."""
    return bool(((row.meta or {}).get("features") or {}).get("seed"))


def sources_new_to_champion(conn: Any, sources: Sequence[str], below: int) -> set[str]:
    """The sources among `sources` that the champion learnt from fewer than `below` labelled items
    of: items with a source label ingested, or a decision made, before it was trained (all of
    them when there is no champion; none when `below` is 0). Such traffic is a new surface: the
    model has seen neither its harmful nor its ordinary items."""
    wanted = sorted({s for s in sources if s is not None})
    if not wanted or below <= 0:
        return set()
    champ = champion_version(conn)  # the one rule for which model is in production
    if champ is None:
        return set(wanted)
    trained = conn.execute(select(MV.c.created_at).where(MV.c.id == champ)).scalar()
    new: set[str] = set()
    for source in wanted:  # each count stops at `below` rows (indexes: source + label, decisions' item)
        labelled = select(I.c.id).where(I.c.source == source, I.c.policy_label.is_not(None),
                                        I.c.ingested_at <= trained).limit(below).subquery()
        decided = (select(D.c.item_id).distinct().join(I, I.c.id == D.c.item_id)
                   .where(I.c.source == source, I.c.policy_label.is_(None), D.c.created_at <= trained)
                   .limit(below).subquery())
        n = sum(int(conn.execute(select(func.count()).select_from(q)).scalar() or 0) for q in (labelled, decided))
        if n < below:
            new.add(source)
    return new


def seeds_surface(conn: Any, seed_sources: Sequence[str], settings: LearningShare) -> Optional[str]:
    """The source most of a queue's waiting seeds come from when it is new to the champion
    (`sources_new_to_champion`, `new_surface_below`), else None: then `among_seeds_new_surface`
    sets the learning share among the seeds."""
    if not seed_sources or settings.among_seeds_new_surface is None:
        return None
    new = sources_new_to_champion(conn, seed_sources, settings.new_surface_below)
    in_new = [s for s in seed_sources if s in new]
    if 2 * len(in_new) <= len(seed_sources):
        return None
    return max(sorted(set(in_new)), key=in_new.count)


def queue_seeds_surface(store: Store, config: QueueConfig, queue: str) -> Optional[str]:
    """`seeds_surface` of the seeds waiting in `queue` (what the next learning pass will use)."""
    with store.read() as conn:
        rows = conn.execute(select(C.c.meta, I.c.source).join(I, I.c.id == C.c.item_id)
                            .where(C.c.queue == queue, C.c.state == config.waiting_state(queue),
                                   C.c.campaign_id.is_(None))).all()
        return seeds_surface(conn, [r.source for r in rows if _is_seed(r)], config.learning)


def _in_flight(conn: Any, queue: str) -> list[Any]:
    """The learning cases of `queue` served and not yet learnt from: claimed, or decided since the
    champion was trained (all decided ones while there is none). A re-plan (the serve sweeper's,
    every few seconds) replaces a claimed learning case; without these, its campaign mate or a
    near-copy, passed over only because of it, would be the next learning case."""
    trained = None
    champ = champion_version(conn)
    if champ is not None:
        trained = conn.execute(select(MV.c.created_at).where(MV.c.id == champ)).scalar()
    decided = C.c.state == "decided" if trained is None else and_(C.c.state == "decided", C.c.resolved_at >= trained)
    return conn.execute(select(C.c.item_id, I.c.text_hash).join(I, I.c.id == C.c.item_id)
                        .where(C.c.queue == queue, C.c.campaign_id.is_(None), C.c.priority_reason.like("learning:%"),
                               or_(C.c.state == "claimed", decided))).all()


def claim_credit(conn: Any, queue: str, share: float) -> float:
    """The learning cases owed to `queue`'s claims, in [-1, 1 - share] (`slot_positions`): the
    credit the last learning case claimed left (`meta.learning.credit`, 0 before any) plus `share`
    per item case first claimed since. At most one case is owed at once: a queue whose learning
    candidates ran out is not served a run of them when they come back."""
    if share <= 0:
        return 0.0
    base = (C.c.queue == queue, C.c.campaign_id.is_(None), C.c.first_action_at.is_not(None))
    learning = C.c.priority_reason.like("learning:%")
    anchor = conn.execute(select(C.c.first_action_at, C.c.meta).where(*base, learning)
                          .order_by(C.c.first_action_at.desc(), C.c.id.desc()).limit(1)).first()
    since = select(C.c.id).where(*base, or_(C.c.priority_reason.is_(None), ~learning))
    credit = 0.0
    if anchor is not None:
        since = since.where(C.c.first_action_at > anchor.first_action_at)
        stored = ((anchor.meta or {}).get("learning") or {}).get("credit") if isinstance(anchor.meta, dict) else None
        credit = float(stored) if type(stored) in (int, float) and math.isfinite(stored) else 0.0
    enough = int(math.ceil(2.0 / share)) + 1  # past this many claims the credit is at its cap anyway
    n = int(conn.execute(select(func.count()).select_from(since.limit(enough).subquery())).scalar() or 0)
    return min(max(credit + share * n, -1.0), 1.0 - share)


def _unpinned(features: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in features.items() if k != "learning"}


def plan_queue(store: Store, taxonomy: Taxonomy, config: QueueConfig, queue: str, now: dt.datetime,
               embedding_model: Optional[str] = None) -> dict[str, Any]:
    """What a pass would do to one queue: the cases to pin (id -> learning info) and to unpin."""
    settings: LearningShare = config.learning
    share = float(settings.queues.get(queue, 0.0))
    with store.read() as conn:
        rows = conn.execute(select(C.c.id, C.c.item_id, C.c.priority, C.c.meta, C.c.is_audit, C.c.calibration_set,
                                   C.c.created_at, C.c.due_at, I.c.text_hash, I.c.source)
                            .outerjoin(I, I.c.id == C.c.item_id)
                            .where(C.c.queue == queue, C.c.state == config.waiting_state(queue),
                                   C.c.campaign_id.is_(None))
                            .order_by(C.c.id)).all()
        item_ids = [r.item_id for r in rows if r.item_id]
        records = predictions_of_record(conn, item_ids)
        surface = seeds_surface(conn, [r.source for r in rows if _is_seed(r)], settings)
        served = _in_flight(conn, queue)
        credit = claim_credit(conn, queue, share)
        camp: dict[str, int] = {}
        members = item_ids + [r.item_id for r in served]
        for i in range(0, len(members), 900):
            camp.update(dict(conn.execute(select(CM.c.item_id, CM.c.campaign_id)
                                          .where(CM.c.item_id.in_(members[i:i + 900]))).all()))
    # Risk-order priority of every waiting case, as if no case were pinned for learning.
    risk = np.zeros(len(rows))
    for i, r in enumerate(rows):
        feats = (r.meta or {}).get("features")
        if feats and "learning" in feats:
            risk[i] = score_features(taxonomy, _unpinned(feats), config, r.created_at, r.due_at, now)[0]
        else:
            risk[i] = float(r.priority or 0.0)
    scores = [(records.get(r.item_id) or {}).get("scores") or {} for r in rows]
    probs = probs_matrix(scores, taxonomy.labels)
    unc = uncertainty(probs, settings.measure) if rows else np.zeros(0)
    # A prediction that scores none of the taxonomy's labels (a model of a retired taxonomy) reads
    # as a perfect tie, the most uncertain case of all; the model is not unsure there, it is silent.
    knows = probs.sum(axis=1) > 0 if rows else np.zeros(0, dtype=bool)
    eligible = np.array([bool(r.item_id in records) and not r.is_audit and r.calibration_set is None
                         and not _is_seed(r)
                         and not ((r.meta or {}).get("features") or {}).get("escalation")
                         for r in rows], dtype=bool) & knows
    # The share of the next `horizon` claims, or of the cases waiting when fewer wait: a short
    # queue is not served (and marked) as learning cases beyond its share.
    k_max = _floor(min(settings.horizon, len(rows)) * share) if share > 0 else 0
    pick: list[int] = []
    if k_max and eligible.any():
        idx = np.flatnonzero(eligible)
        idx = idx[learning_candidates(unc[idx], k_max, settings.min_uncertainty)]  # vectors for these only
        vecs = _cached_vectors(store, embedding_model, [rows[i].text_hash or "" for i in idx]
                               + [r.text_hash or "" for r in served])
        emb, done_emb = (None, None) if vecs is None else (vecs[:len(idx)], vecs[len(idx):])
        groups = [(("campaign", camp[rows[i].item_id]) if rows[i].item_id in camp else None,
                   ("text", rows[i].text_hash)) for i in idx]
        done = [(("campaign", camp[r.item_id]) if r.item_id in camp else None, ("text", r.text_hash)) for r in served]
        chosen = select_learning(unc[idx], k_max, emb, groups, settings.min_uncertainty, settings.max_similarity,
                                 served_groups=done, served_emb=done_emb)
        pick = [int(idx[c]) for c in chosen]
    picked = set(pick)
    # A cold start's seeds (pinned by `labeling.seeding`) lead the queue: an engineer asked for
    # them. `among_seeds` of the claims while they last go to the first learning cases: a model
    # that does not know the new policy yet is uncertain about little of it, so these picks are
    # mostly diversity, the surface's ordinary traffic that seeds around positives do not show.
    # On a new surface (`seeds_surface`) the model knows neither side of the traffic:
    # `among_seeds_new_surface` there, when a deployment sets it.
    # The rest of the learning share interleaves with the risk order after the seeds.
    seeded = sorted((i for i in range(len(rows)) if _is_seed(rows[i])),
                    key=lambda i: (-risk[i], rows[i].id))
    taken = picked | set(seeded)
    rest = sorted((i for i in range(len(rows)) if i not in taken),
                  key=lambda i: (-risk[i], rows[i].id))
    mix = settings.seed_mix(share, new_surface=surface is not None) if seeded else 0.0
    k_seed = sum(1 for j, pos in enumerate(slot_positions(len(pick), mix)) if pos - j < len(seeded))
    credit = 0.0 if seeded else credit  # the claims since the last learning case count only in risk order
    prios = (interleave_priorities([risk[i] for i in seeded], k_seed, mix)
             + interleave_priorities([risk[i] for i in rest], len(pick) - k_seed, share,
                                     ceiling=min((risk[i] for i in seeded), default=None), credit=credit))
    # Claim number as planned: among the seeds at their slots, then after the seeds (and the
    # learning cases among them) at the share's slot (or after the risk cases left).
    head = len(seeded) + k_seed
    after = slot_positions(len(pick) - k_seed, share, credit)
    claims = ([pos + 1 for pos in slot_positions(k_seed, mix)]
              + [head + min(pos, j + len(rest)) + 1 for j, pos in enumerate(after)])
    pin: dict[int, dict[str, Any]] = {}
    for j, (i, p) in enumerate(zip(pick, prios)):
        r = rows[i]
        why = (f"{settings.measure} uncertainty {unc[i]:.2f} of the prediction of record, one per "
               f"{'campaign ' + str(camp[r.item_id]) if r.item_id in camp else 'embedding cluster'}; "
               f"learning share {(mix if j < k_seed else share):.0%} of queue {queue}"
               f"{' among its cold-start seeds' if j < k_seed else ''}"
               f"{f' (source {surface} is new to the model)' if j < k_seed and surface else ''}, claim {claims[j]}")
        pin[r.id] = {"priority": round(float(p), 9), "why": why, "uncertainty": round(float(unc[i]), 6),
                     "measure": settings.measure, "rank": j + 1, "campaign_id": camp.get(r.item_id),
                     "share": mix if j < k_seed else share, "among_seeds": j < k_seed,
                     "new_surface": surface if j < k_seed else None,
                     # what is owed once it is claimed (`claim_credit`): its slot's claims less itself
                     "credit": None if j < k_seed else
                     round(credit + share * (after[j - k_seed] + 1) - (j - k_seed + 1), 6),
                     "planned_at": now.isoformat()}
    unpin = [r.id for r in rows if "learning" in ((r.meta or {}).get("features") or {}) and r.id not in pin]
    return {"queue": queue, "share": share, "waiting": len(rows), "eligible": int(eligible.sum()),
            "uncertain": int((eligible & (unc >= settings.min_uncertainty)).sum()),
            "seeds": len(seeded), "among_seeds": k_seed, "new_surface": surface if seeded else None,
            "pin": pin, "unpin": unpin}


def left_pinned(store: Store, config: QueueConfig) -> list[str]:
    """The queues outside `learning.queues` that still hold waiting learning cases (a queue's line
    taken out of the config): a pass at share 0 unpins them, or they kept the `learning:` reason
    and a priority the sweep never raises. One probe per such queue, on the claim index."""
    out = []
    with store.read() as conn:
        for q in config.queues:
            if q not in config.learning.queues and conn.execute(
                    select(C.c.id).where(C.c.queue == q, C.c.state == config.waiting_state(q),
                                         C.c.priority_reason.like("learning:%")).limit(1)).first() is not None:
                out.append(q)
    return out


def apply_learning_share(store: Store, taxonomy: Taxonomy, config: QueueConfig, actor: Actor,
                         now: Optional[dt.datetime] = None, embedding_model: Optional[str] = None,
                         queues: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Plan and pin the learning cases of every queue with a learning share (needs `build_cases`).

    `embedding_model` is the embedding cache's model id (`models.embeddings.Embedder.model_id`);
    without it, or for texts not cached, diversity is by campaign and text only. Returns per
    queue: waiting, eligible and uncertain cases, pinned and unpinned counts."""
    check_permission(actor, "build_cases", "queues")
    now = now or utcnow()
    out: dict[str, Any] = {}
    names = list(queues) if queues is not None else [*config.learning.queues, *left_pinned(store, config)]
    for q in names:
        if q not in config.queues:
            from .errors import QueueError

            raise QueueError(f"unknown queue {q!r} (known: {', '.join(config.queues)})")
        plan = plan_queue(store, taxonomy, config, q, now, embedding_model)
        with store.begin() as conn:
            # A pass that wrote since this plan was read (the sweeper beside `workbench learning`)
            # may have pinned other cases: unpin them too, so the last plan written is the plan.
            serialise(conn, "learning-plan")
            others = conn.execute(select(C.c.id).where(C.c.queue == q, C.c.state == config.waiting_state(q),
                                                       C.c.priority_reason.like("learning:%"))).scalars()
            plan["unpin"] = list(dict.fromkeys([*plan["unpin"], *(i for i in others if i not in plan["pin"])]))
            ids = list(plan["pin"]) + plan["unpin"]
            current = {r.id: r for r in conn.execute(select(C.c.id, C.c.state, C.c.meta, C.c.created_at, C.c.due_at,
                                                            C.c.updated_at)
                                                     .where(C.c.id.in_(ids))).all()} if ids else {}
            pinned = unpinned = 0
            for cid, info in plan["pin"].items():
                r = current.get(cid)
                if r is None or r.state != config.waiting_state(q) or _is_seed(r):
                    continue  # claimed, decided or seeded (`workbench seed`) meanwhile
                meta = dict(r.meta or {})
                feats = dict(meta.get("features") or {}, learning={"priority": info["priority"], "why": info["why"]})
                p, why, _ = score_features(taxonomy, feats, config, r.created_at, r.due_at, now)
                meta.update(features=feats, learning={k: v for k, v in info.items() if k not in ("priority", "why")})
                # A compare-and-swap: claims do not take this lock, and a case claimed since the read
                # was served by risk order, so it must not be recorded as a learning case.
                if conn.execute(update(C).where(unchanged(cid, r.state, r.updated_at))
                                .values(priority=p, priority_reason=why, meta=meta, updated_at=now)).rowcount:
                    pinned += 1
            for cid in plan["unpin"]:
                r = current.get(cid)
                if r is None or r.state != config.waiting_state(q):
                    continue  # claimed (or decided) as a learning case since the plan's read: it keeps that record
                meta = dict(r.meta or {})
                feats = _unpinned(meta.get("features") or {})
                meta["features"] = feats
                meta.pop("learning", None)
                p, why, _ = score_features(taxonomy, feats, config, r.created_at, r.due_at, now)
                if conn.execute(update(C).where(unchanged(cid, r.state, r.updated_at))
                                .values(meta=meta, priority=p, priority_reason=why, updated_at=now)).rowcount:
                    unpinned += 1
            summary = {k: plan[k] for k in ("share", "waiting", "eligible", "uncertain", "seeds", "among_seeds",
                                            "new_surface")}
            summary.update(learning=pinned, unpinned=unpinned)
            if pinned or unpinned:
                audit.record(conn, actor, "cases.learning", "queue", None,
                             {"queue": q, **summary, "config_version": config.version})
        out[q] = summary
    return out


def served_learning(case: Mapping[str, Any]) -> bool:
    """True when a case (a row or `case_view`) was served for the learning share."""
    meta = case.get("meta") or {}
    return bool(meta.get("learning")) or str(case.get("priority_reason") or "").startswith("learning:")


SERVED_AS = ("learning share", "cold-start seed", "uniform sample", "risk order")


def served_as(case: Mapping[str, Any]) -> str:
    """Why a case (a row with `meta`, `priority_reason`, `is_audit`) was served, one of SERVED_AS:
    the evaluation slices model quality by it, since a learning case is chosen *because* the model
    is unsure and a seed because it resembles an example, so neither is the traffic at large."""
    if served_learning(case):
        return SERVED_AS[0]
    if ((case.get("meta") or {}).get("seed") or {}).get("kind") == "seed":
        return SERVED_AS[1]
    return SERVED_AS[2] if case.get("is_audit") else SERVED_AS[3]
