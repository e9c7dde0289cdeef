"""Training and evaluation data from the store without leakage: what `workbench models train`
and `workbench retrain` learn from.

`learning_data` returns every labelled item once, with the side of the split it is on, its
group, and its sample weight:

- **Label**: the label of record (`core.labels`: the latest authoritative decision nothing
  supersedes, so corrections, undos and appeal reversals win), else the resolution of the item's
  calibration copies (`resolve_calibration`, rule `learning.calibration_rule`), else the
  source's own label through the taxonomy.
- **A bulk decision counts once per distinct text**: the members a campaign's decisions labelled
  alike (the first one and the follow-ups for members that joined later) are reduced to one per
  template-normalised text (`template_hash`);
  the other copies are left out of training and evaluation altogether (their source labels
  too, which the human decision overrules), so a 300-member wave of 4 templates is 4 examples.
- **Grouped, stable splits** (`assign_splits`): the group of an item is its campaign
  (`campaign:<id>`), else its template-normalised text (`text:<hash>`: copies that differ only in
  case, spacing, Unicode form, numbers, links or phone numbers, as a wave's variants do;
  `text_group`). A group
  without any stored side gets one from a salted hash of its key (`learning.split_salt`,
  `learning.test_fraction`); the side is stored per item (`learning_splits`) and never moves.
  A new member takes its group's stored side. When a later clustering run joins groups
  assigned to different sides, the members stored as test are left out (`excluded`) for as
  long as the group straddles, so no campaign is ever on both sides of an evaluation and no
  item changes side. A campaign member outside the data (its decision undone, its label
  retired, another source) keeps its stored side in its group's count: a champion may have
  trained on it, so its mates join its side, a test member beside it is left out, and the
  gate's `pooled` set does not count the group as unseen. Why stored and not only hashed: a
  campaign's key changes when campaigns merge or are re-clustered; a pure hash would then move
  items that a champion trained on into the test side.
- **Weights** (`human_weights`): a human label weighs `human_weight` x recency x scarcity
  (capped at `max_weight`) against 1.0 for a source label; recency decays with a half-life (from
  when the judgement was made: a decision an undo restored is as old as the original),
  scarcity favours sources (surfaces) with few decisions, so a few hundred decisions on a new
  surface move a model trained on tens of thousands of source labels.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Container, Iterable, Mapping, Optional, Sequence

import numpy as np
from sqlalchemy import Connection, exists, func, select
from sqlalchemy.orm import aliased

from core.hooks import check_permission
from core.labels import current_decisions
from core.principals import Actor
from core.schema import CampaignMember, Case, Decision, Item, LearningSplit, User, utcnow
from core.store import insert_ignore
from core.text import text_hash
from models.training import TrainingSet, replicate_by_weight

from .rereview import is_rereview

if TYPE_CHECKING:  # pragma: no cover
    from core.store import Store
    from core.taxonomy import Taxonomy
    from models.config import LearningSettings

EXCLUDED = "excluded"
LEAD_ROLES = ("lead", "admin")
_CHUNK = 900
D = Decision.__table__
I = Item.__table__
CM = CampaignMember.__table__
LS = LearningSplit.__table__
_TOKEN = re.compile(r"<(?:url|phone|shortcode|email|money|num)>")  # clustering.normalize's tokens
_LITERAL = re.compile(r"[^\W\d_]")  # a letter left once the tokens are gone


# -- pure rules ------------------------------------------------------------------------------
def proposed_side(group_key: str, salt: str, test_fraction: float) -> str:
    """'test' or 'train' for a group never assigned before: a salted BLAKE2b hash of the key,
    read as a uniform number in [0, 1), below `test_fraction` is test. Same key, same side."""
    h = int(hashlib.blake2b(f"{salt}\x1f{group_key}".encode("utf-8", "surrogatepass"), digest_size=8).hexdigest(), 16)
    return "test" if h / 2.0 ** 64 < test_fraction else "train"


def resolve_calibration(votes: Sequence[tuple[str, str]], rule: str, leads: Iterable[str] = ()) -> Optional[str]:
    """The label of an item from its calibration copies, `votes` = (reviewer, label), one per
    reviewer. `majority`: the label most reviewers gave, None on a tie (no label beats a coin
    toss). `lead`: the label a lead gave (the latest lead vote listed) wins; without one, the
    majority."""
    if not votes:
        return None
    if rule == "lead":
        lead_set = set(leads)
        lead_votes = [lab for reviewer, lab in votes if reviewer in lead_set]
        if lead_votes:
            return lead_votes[-1]
    elif rule != "majority":
        raise ValueError(f"unknown calibration rule {rule!r} (majority or lead)")
    counts = Counter(lab for _, lab in votes).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def human_weights(decided_at: Sequence[Optional[dt.datetime]], sources: Sequence[str],
                  now: dt.datetime, settings: "LearningSettings") -> np.ndarray:
    """Sample weight of each human label: human_weight x (1 + recency_boost x 0.5^(age/half-life))
    / (1 + recency_boost) x min(max_scarcity, sqrt(scarce_source_decisions / n_source)) floored at
    1, capped at max_weight. A fresh decision weighs `human_weight`; an old one tends to
    human_weight / (1 + boost); a source with a quarter of the reference count weighs twice.
    An infinite `human_weight` or `recency_boost` is refused by name (the config loader refuses
    `.inf`; settings built in code, e.g. by `model_copy`, skip it): it makes a weight infinite or
    NaN, which the cap then hides as max_weight."""
    for name in ("human_weight", "recency_boost"):
        if not np.isfinite(getattr(settings, name)):
            raise ValueError(f"models.yaml learning.{name}: must be a finite number, not {getattr(settings, name)!r}")
    n_by_source = Counter(sources)
    out = np.empty(len(sources))
    boost = settings.recency_boost
    for i, (when, src) in enumerate(zip(decided_at, sources)):
        age = max((now - when).total_seconds() / 86400.0, 0.0) if when is not None else 0.0
        recency = (1.0 + boost * 0.5 ** (age / settings.recency_half_life_days)) / (1.0 + boost)
        scarcity = min(settings.max_scarcity, max(1.0, (settings.scarce_source_decisions / n_by_source[src]) ** 0.5))
        out[i] = min(settings.max_weight, settings.human_weight * recency * scarcity)
    return out


def one_per_text(members: Mapping[Any, Sequence[tuple[str, str]]]) -> set[str]:
    """Of each bulk decision's members (key -> [(item id, text)]), the item ids kept: the first
    id (sorted) per distinct template-normalised text (`template_hash`)."""
    keep: set[str] = set()
    for rows in members.values():
        seen: set[str] = set()
        for item_id, text in sorted(rows):
            tpl = template_hash(text)
            if tpl not in seen:
                seen.add(tpl)
                keep.add(item_id)
    return keep


def unclustered_warning(fresh: int, clustered: bool) -> Optional[str]:
    """A line when `fresh` items were just given a side on a store with no campaign at all (not
    clustered yet): their groups are exact texts, so a campaign that clustering forms later over
    both sides loses its test-side members (left out while it straddles), and with them the
    human labels there; None otherwise."""
    if fresh <= 0 or clustered:
        return None
    return (f"{fresh} items got their train/test side while the store has no campaign: they are grouped by exact "
            f"text, and a campaign formed later over both sides leaves out its test-side members; run "
            f"`workbench cluster` before the first training on a labelled dataset")


# -- reading the store -----------------------------------------------------------------------
def _leads(conn: Connection) -> set[str]:
    U = User.__table__
    return set(conn.execute(select(U.c.name).where(U.c.role.in_(LEAD_ROLES))).scalars())


def calibration_labels(conn: Connection, rule: str, decided: Container[str] = ()
                       ) -> tuple[dict[str, dict[str, Any]], int]:
    """(item id -> {label, decided_at, reviewers}, ties left out) from the calibration copies
    nothing supersedes; each reviewer's latest copy counts once. A correction of a copy (or the
    row an undo restored) is the vote of the copy's reviewer, whoever wrote it (`_copy_owners`):
    a lead correcting an analyst's copy changes that analyst's vote, not the lead's own; it
    counts as a lead's vote for the `lead` rule. A tie on an item of `decided` (a decision of
    record settled it) is no tie left to report."""
    later = aliased(D)
    rows = conn.execute(select(D.c.item_id, D.c.reviewer, D.c.label, D.c.created_at, D.c.id, D.c.supersedes_id)
                        .where(D.c.kind == "calibration", D.c.item_id.is_not(None),
                               ~exists(select(1).where(later.c.supersedes_id == D.c.id)))
                        .order_by(D.c.id)).all()  # store order: the rule of `core.labels.record_key`
    owner = _copy_owners(conn, rows)
    by_item: dict[str, dict[str, tuple[str, dt.datetime, str, int]]] = defaultdict(dict)
    for item_id, reviewer, label, created, row_id, _ in rows:
        by_item[item_id][owner.get(row_id, reviewer)] = (label, created, reviewer, row_id)  # later rows overwrite
    leads = _leads(conn) if rule == "lead" else set()
    out, ties = {}, 0
    for item_id, votes in by_item.items():
        # The latest lead vote by the store's order (the row id), never the writing server's clock.
        ordered = sorted(votes.values(), key=lambda v: v[3])
        label = resolve_calibration([(who, lab) for lab, _, who, _ in ordered], rule, leads)
        if label is None:
            ties += item_id not in decided
            continue
        out[item_id] = {"label": label, "decided_at": max(v[1] for v in votes.values()), "kind": "calibration",
                        "reviewers": sorted(votes)}
    return out, ties


def _copy_owners(conn: Connection, rows: Sequence[Any]) -> dict[int, str]:
    """decision id -> the reviewer of the calibration copy at the root of its supersession chain,
    for the `rows` (id at index 4, supersedes_id at 5) that supersede something."""
    parent: dict[int, tuple[Optional[int], str]] = {}
    todo, asked = {r[5] for r in rows if r[5] is not None}, set()
    while todo:
        ids = sorted(todo)
        asked |= todo
        for i in range(0, len(ids), _CHUNK):
            for row_id, sup, reviewer in conn.execute(select(D.c.id, D.c.supersedes_id, D.c.reviewer)
                                                      .where(D.c.id.in_(ids[i:i + _CHUNK]))):
                parent[row_id] = (sup, reviewer)
        todo = {sup for sup, _ in parent.values() if sup is not None} - asked
    out: dict[int, str] = {}
    for r in rows:
        sup, seen = r[5], {r[4]}
        who = r[1]
        while sup is not None and sup in parent and sup not in seen:
            seen.add(sup)
            sup, who = parent[sup][0], parent[sup][1]
        if r[5] is not None:
            out[r[4]] = who
    return out


def restored_at(conn: Connection, decisions: Iterable[dict[str, Any]]) -> None:
    """Set `decided_at` of each restoring row among `decisions` (an undo re-asserted the decision
    the undone one superseded: a copy of it, written at the undo, `labeling.undo`) to when that
    decision was made: the restore is no fresh judgement, so it must not weigh as a recent one."""
    U, C, A = aliased(D), aliased(D), aliased(D)
    pending = {d["supersedes_id"]: d for d in decisions if d.get("supersedes_id") is not None}
    for _ in range(8):  # a restored decision may itself be a restoring row (undone twice); bounded
        ids, found = sorted(pending), {}
        for i in range(0, len(ids), _CHUNK):
            found.update({u: (at, sup) for u, at, sup in conn.execute(
                select(U.c.id, A.c.created_at, A.c.supersedes_id)
                .join(C, C.c.id == U.c.supersedes_id).join(A, A.c.id == C.c.supersedes_id)
                .where(U.c.id.in_(ids[i:i + _CHUNK]), U.c.kind == "undo"))})
        after: dict[int, dict[str, Any]] = {}
        for undo_id, (at, sup) in found.items():
            pending[undo_id]["decided_at"] = at
            if sup is not None:
                after[sup] = pending[undo_id]
        if not after:
            return
        pending = after


def appealed_audits(conn: Connection, decisions: Iterable[dict[str, Any]]) -> None:
    """Give each `appeal` decision among `decisions` whose chain (what it supersedes, and so on)
    starts at a `qa_audit` decision that decision's kind and case: the appeal's outcome (reversed
    or confirmed) is the label of an item the uniform QA-audit sample drew, and leaving contested
    items out of the gate's `qa_audit` set biased the sample towards the uncontested."""
    pending = {d["id"]: d for d in decisions if d.get("kind") == "appeal" and d.get("supersedes_id") is not None}
    walk = {i: d["supersedes_id"] for i, d in pending.items()}   # appeal id -> the row reached so far
    for _ in range(32):   # a chain per correction / appeal / undo: bounded
        ids, found = sorted(set(walk.values())), {}
        for i in range(0, len(ids), _CHUNK):
            found.update({r.id: r for r in conn.execute(select(D.c.id, D.c.kind, D.c.case_id, D.c.supersedes_id)
                                                        .where(D.c.id.in_(ids[i:i + _CHUNK])))})
        nxt = {}
        for appeal_id, row_id in walk.items():
            r = found.get(row_id)
            if r is None:
                continue
            if r.supersedes_id is not None and r.supersedes_id != row_id:
                nxt[appeal_id] = r.supersedes_id
            elif r.kind == "qa_audit":
                pending[appeal_id].update(kind="qa_audit", case_id=r.case_id)
        if not nxt:
            return
        walk = nxt


def _rereview_decisions(conn: Connection, decisions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `qa_audit` decisions made on a lead's re-review case (`labeling.rereview.is_rereview`):
    they are drawn from decided items, so they must not stand in for the uniform QA-audit sample
    the gate's `qa_audit` set is."""
    audits = [d for d in decisions if d.get("kind") == "qa_audit" and d.get("case_id") is not None]
    ids = sorted({d["case_id"] for d in audits})
    C = Case.__table__
    rereview: set[int] = set()
    for i in range(0, len(ids), _CHUNK):
        rereview |= {r.id for r in conn.execute(select(C.c.id, C.c.meta, C.c.priority_reason)
                                                .where(C.c.id.in_(ids[i:i + _CHUNK]))) if is_rereview(r._mapping)}
    return [d for d in audits if d["case_id"] in rereview]


def template_hash(text: Optional[str]) -> str:
    """Hex SHA-1 of the template-normalised text (`clustering.normalize.normalize_template`): what
    "the same text" means for a bulk decision's copies and (`text_group`) for the split."""
    from clustering.normalize import normalize_template

    return hashlib.sha1(normalize_template(text or "").encode("utf-8", "surrogatepass")).hexdigest()


def text_group(text: Optional[str]) -> str:
    """The group key of an item outside any campaign: `text:` + its `template_hash`, so a wave's
    variants (another callback number, prize or link) share a side; `text:` + the exact
    (light-normalised) hash when the template is variable parts only (`<num> <url>`), which says
    nothing about the message and would lump unrelated texts together."""
    from clustering.normalize import normalize_template

    tpl = normalize_template(text or "")
    if _LITERAL.search(_TOKEN.sub(" ", tpl)):
        return "text:" + hashlib.sha1(tpl.encode("utf-8", "surrogatepass")).hexdigest()
    return f"text:{text_hash(text or '')}"


def group_keys(conn: Connection, items: Mapping[str, str]) -> dict[str, str]:
    """item id -> its group: the items joined by a shared campaign or a shared template-normalised
    text (`text_group`), keyed `campaign:<id>` (the smallest campaign id among them) when any is
    a campaign member, else `text:<hash>`.

    Why texts join campaigns: a copy of a campaign member's text that arrives after the last
    `workbench cluster` is in no campaign yet; keyed by its text alone it drew a side of its own
    and could sit on the test side while its twin trained. Why the template and not the exact
    text: a wave's copies differ in the callback number, prize or link (that is what the template
    folds), so keyed by exact text each variant drew its own side and one wave sat on both."""
    camp: dict[str, int] = {}
    ids = list(items)
    for i in range(0, len(ids), _CHUNK):
        camp.update(dict(conn.execute(select(CM.c.item_id, CM.c.campaign_id)
                                      .where(CM.c.item_id.in_(ids[i:i + _CHUNK]))).all()))
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def rank(k: str) -> tuple[int, int, str]:  # a campaign first, the smallest id: stable across runs
        kind, _, value = k.partition(":")
        return (0, int(value), "") if kind == "campaign" else (1, 0, value)

    texts = {i: text_group(t) for i, t in items.items()}
    for i, key in texts.items():
        if i in camp:
            a, b = root(key), root(f"campaign:{camp[i]}")
            if a != b:
                keep, drop = sorted((a, b), key=rank)
                parent[drop] = keep
    return {i: root(key) for i, key in texts.items()}


class Sides(dict):
    """item id -> 'train' / 'test' / 'excluded' (`assign_splits`), with `warnings`: the lines
    about the sides stored by this call (`unclustered_warning`), and `absent`: group key -> the
    ids of its campaign mates outside the data that hold a stored side (`_absent_mates`)."""

    warnings: list[str]
    absent: dict[str, list[str]]


def assign_splits(store: "Store", groups: Mapping[str, str], settings: "LearningSettings", actor: Actor,
                  action: str = "train") -> Sides:
    """item id -> 'train' / 'test' / 'excluded' for the items of `groups` (item id -> group key),
    storing a side for each item that has none (see the module doc). Needs `action` (`train`
    for retraining, `export` for an export)."""
    check_permission(actor, action, "training split")
    ids = sorted(groups)
    stored = _stored_sides(store, ids)
    by_group: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        by_group[groups[i]].append(i)
    absent = _absent_mates(store, groups)
    new_rows: list[dict[str, Any]] = []
    now = utcnow()
    for key, members in by_group.items():
        sides = {stored[m] for m in members if m in stored} | set(absent.get(key, {}).values())
        if not sides:
            side = proposed_side(key, settings.split_salt, settings.test_fraction)
        elif len(sides) == 1:
            side = next(iter(sides))
        else:
            side = "train"  # a straddling group only grows on the side its trained members are on
        new_rows += [{"item_id": m, "split": side, "group_key": key[:120], "assigned_at": now}
                     for m in members if m not in stored]
    clustered = True
    if new_rows:
        with store.begin() as conn:
            ins = insert_ignore(conn.dialect.name, LS, ["item_id"])
            for i in range(0, len(new_rows), _CHUNK):
                conn.execute(ins, new_rows[i:i + _CHUNK])
            clustered = conn.execute(select(CM.c.item_id).limit(1)).first() is not None
        stored.update(_stored_sides(store, [r["item_id"] for r in new_rows]))  # a concurrent run may have won
    out = Sides()
    out.warnings = [w for w in (unclustered_warning(len(new_rows), clustered),) if w]
    out.absent = {key: sorted(mates) for key, mates in absent.items()}
    for key, members in by_group.items():
        straddles = len({stored[m] for m in members} | set(absent.get(key, {}).values())) > 1
        for m in members:
            out[m] = EXCLUDED if straddles and stored[m] == "test" else stored[m]
    return out


def _absent_mates(store: "Store", groups: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """group key -> {item id: stored side} of its campaigns' members that are not in `groups` (a
    decision undone, a label retired or left out): a champion may have trained on them, so their
    side still counts for the group's new members and for whether it straddles."""
    camp: dict[str, int] = {}
    ids = sorted(groups)
    with store.read() as conn:
        for i in range(0, len(ids), _CHUNK):
            camp.update(dict(conn.execute(select(CM.c.item_id, CM.c.campaign_id)
                                          .where(CM.c.item_id.in_(ids[i:i + _CHUNK]))).all()))
        key_of = {c: groups[i] for i, c in camp.items()}
        cids = sorted(key_of)
        out: dict[str, dict[str, str]] = defaultdict(dict)
        for i in range(0, len(cids), _CHUNK):
            for item_id, cid, side in conn.execute(select(CM.c.item_id, CM.c.campaign_id, LS.c.split)
                                                   .join(LS, LS.c.item_id == CM.c.item_id)
                                                   .where(CM.c.campaign_id.in_(cids[i:i + _CHUNK]))):
                if item_id not in groups:
                    out[key_of[cid]][item_id] = side
    return out


def _stored_sides(store: "Store", ids: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    with store.read() as conn:
        for i in range(0, len(ids), _CHUNK):
            out.update(dict(conn.execute(select(LS.c.item_id, LS.c.split)
                                         .where(LS.c.item_id.in_(ids[i:i + _CHUNK]))).all()))
    return out


# -- the assembled data ----------------------------------------------------------------------
@dataclass
class LearningData:
    """Every usable labelled item once (sorted by id) with its split side, group, weight and
    where its label came from; `stats` counts what was resolved, merged or left out."""

    data: TrainingSet
    split: np.ndarray            # "train" | "test" | "excluded"
    groups: list[str]
    weights: np.ndarray          # 1.0 for a source label
    decision_kind: list[Optional[str]]   # the kind of the human decision behind the label, else None
    # (`rereview` for a qa_audit decision on a lead's blind re-review: not the uniform sample)
    stats: dict[str, Any] = field(default_factory=dict)
    # The id of the item's first decision of any kind (undone or superseded ones too: ids grow
    # with every decision, whatever its clock says); None for an item with a source label.
    first_decision: list[Optional[int]] = field(default_factory=list)
    # group -> the first decision id of its campaign mates outside the data that hold a stored
    # side (0 when one has a source label): a model may have learnt the group from them.
    absent_first: dict[str, int] = field(default_factory=dict)

    def _where(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)

    def train_set(self, seed: int) -> TrainingSet:
        """The train side, each example repeated by its weight (`models.training.replicate_by_weight`)."""
        idx = self._where(self.split == "train")
        sub = self.data.subset(idx)
        out = replicate_by_weight(sub, self.weights[idx], seed)
        out.dropped = dict(self.data.dropped)
        return out

    def fit_sets(self, seed: int) -> tuple[TrainingSet, Optional[TrainingSet]]:
        """(what a model fits on, what it is validated on): the train side repeated by weight
        (`train_set`), and every label on the test side (None when it is empty). Every model
        trained from the store fits on these (`workbench models train`, `retrain`, the demo), so
        no champion has seen an item the gate tests it on."""
        test = self._where(self.split == "test")
        return self.train_set(seed), (self.data.subset(test) if len(test) else None)

    def test_set(self, which: str = "test_split") -> tuple[TrainingSet, list[str]]:
        """(examples, their groups) of an evaluation set: `test_split`, the human labels on the
        test side; `qa_audit`, those of them from the uniform QA-audit sample; `source_test`,
        the source labels on the test side."""
        human = np.array([o == "decision" for o in self.data.origin], dtype=bool)
        test = self.split == "test"
        if which == "test_split":
            mask = test & human
        elif which == "qa_audit":
            mask = test & np.array([k == "qa_audit" for k in self.decision_kind], dtype=bool)
        elif which == "source_test":
            mask = test & ~human
        else:
            raise ValueError(f"unknown evaluation set {which!r} (test_split, qa_audit, source_test)")
        idx = self._where(mask)
        return self.data.subset(idx), [self.groups[i] for i in idx]

    def unseen_after(self, through: int) -> np.ndarray:
        """Indices of the train-side human labels in groups that a model trained on the data as of
        decision id `through` (`stats['decisions_through']` of its `learning_data`) cannot have
        learnt from: every member of the group (campaign or template text) was first decided
        after it, and none has a source label. Such a champion never saw them, so they are held
        out from it (the gate's `pooled` set, `evaluation.cross_fit`). Empty when unknown."""
        if len(self.first_decision) != len(self.split):
            return np.zeros(0, dtype=int)
        seen = {g for g, t in zip(self.groups, self.first_decision) if t is None or t <= through}
        seen |= {g for g, t in self.absent_first.items() if t <= through}
        human = np.array([o == "decision" for o in self.data.origin], dtype=bool)
        fresh = np.array([g not in seen for g in self.groups], dtype=bool)
        return self._where((self.split == "train") & human & fresh)


def learning_data(store: "Store", taxonomy: "Taxonomy", settings: "LearningSettings", actor: Actor, *,
                  sources: Optional[Sequence[str]] = None, min_examples_per_label: int = 1,
                  now: Optional[dt.datetime] = None, action: str = "train") -> LearningData:
    """Assemble the labelled items as the module doc says; stores the sides of new items. Needs
    `action` (default `train`). Labels with fewer than `min_examples_per_label` examples on the
    train side are left out everywhere (counted in `data.dropped`)."""
    now = now or utcnow()
    known = set(taxonomy.labels)
    dropped: Counter[str] = Counter()
    with store.read() as conn:
        # Read first: a decision committed while the labels are read then counts as new (for the
        # retrain counter), never as seen; the data is as of this decision at most.
        through = conn.execute(select(func.max(D.c.id))).scalar()
        human = {i: dict(d, decided_at=d["created_at"]) for i, d in current_decisions(conn).items()}
        restored_at(conn, human.values())
        appealed_audits(conn, human.values())
        for d in _rereview_decisions(conn, human.values()):
            d["kind"] = "rereview"  # a lead's blind re-review: a draw of decided items, not the QA sample
        calib, ties = calibration_labels(conn, settings.calibration_rule, decided=human)
        for item_id, c in calib.items():
            human.setdefault(item_id, c)  # a decision of record (an adjudication) wins over the copies
        q = select(I.c.id, I.c.text, I.c.policy_label, I.c.source, I.c["metadata"]).order_by(I.c.id)
        if sources:
            q = q.where(I.c.source.in_(sorted(set(sources))))
        rows = [r for r in conn.execute(q) if r[2] is not None or r[0] in human]
    sourced = {r[0] for r in rows if r[2] is not None}
    dropped.update({"calibration ties (no majority)": ties} if ties else {})
    # A bulk decision counts once per distinct text: per campaign and label, so the follow-up
    # campaign decisions of the members that joined later (a case of their own) do not count a
    # template again.
    bulk: dict[Any, list[tuple[str, str]]] = defaultdict(list)
    texts = {r[0]: r[1] for r in rows}
    decisions = set()  # (case, campaign, label): the campaign decisions themselves, for the stats
    for item_id, d in human.items():
        if d.get("kind") == "bulk" and item_id in texts:
            who = ("campaign", d["campaign_id"]) if d.get("campaign_id") is not None else ("case", d.get("case_id"))
            bulk[(who, d["label"])].append((item_id, texts[item_id]))
            decisions.add((d.get("case_id"), d.get("campaign_id"), d["label"]))
    keep_bulk = one_per_text(bulk)
    bulk_members = {i for members in bulk.values() for i, _ in members}
    kept = []
    for item_id, text, policy_label, source, meta in rows:
        d = human.get(item_id)
        if item_id in bulk_members and item_id not in keep_bulk:
            dropped["bulk copies (a campaign decision counts once per text)"] += 1
            continue
        label = d["label"] if d else policy_label
        if label not in known:
            dropped[f"unknown label {label}"] += 1
            continue
        share = None
        if d is None:
            try:
                share = taxonomy.vote_shares(source, meta, text)
            except ValueError:
                dropped["unreadable vote counts (trained on the label alone)"] += 1
        kept.append((item_id, text, label, "decision" if d else "source", share, source, d))
    with store.read() as conn:
        groups_by_id = group_keys(conn, {k[0]: k[1] for k in kept})
    sides = assign_splits(store, groups_by_id, settings, actor, action=action)
    split = np.array([sides[k[0]] for k in kept], dtype=object)
    # Rare labels: counted on the train side, left out everywhere.
    train_counts = Counter(k[2] for k, s in zip(kept, split) if s == "train")
    rare = {lab for lab in {k[2] for k in kept} if train_counts[lab] < min_examples_per_label}
    if rare:
        for lab in sorted(rare):
            dropped[f"too few examples of {lab}"] += sum(1 for k in kept if k[2] == lab)
        keep_idx = [i for i, k in enumerate(kept) if k[2] not in rare]
        kept, split = [kept[i] for i in keep_idx], split[keep_idx]
    data = TrainingSet([k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept], [k[3] for k in kept],
                       dict(dropped), [k[4] for k in kept])
    weights = np.ones(len(kept))
    hidx = [i for i, k in enumerate(kept) if k[6] is not None]
    if hidx:
        weights[hidx] = human_weights([kept[i][6]["decided_at"] for i in hidx], [kept[i][5] for i in hidx],
                                      now, settings)
    stats = {"items": len(kept), "human_labels": len(hidx),
             "by_split": {s: int((split == s).sum()) for s in ("train", "test", EXCLUDED)},
             "human_by_split": {s: int(sum(1 for i in hidx if split[i] == s)) for s in ("train", "test", EXCLUDED)},
             "calibration_resolved": sum(1 for i in hidx if kept[i][6].get("kind") == "calibration"),
             "bulk_decisions": len(decisions), "bulk_members": len(bulk_members), "bulk_kept": len(keep_bulk),
             "dropped": dict(dropped), "warnings": sides.warnings,
             "mean_human_weight": round(float(weights[hidx].mean()), 4) if hidx else None,
             "decisions_through": int(through) if through is not None else 0}
    absent = sorted({i for mates in sides.absent.values() for i in mates})
    with store.read() as conn:
        first = _first_decision(conn, [k[0] for k in kept if k[0] not in sourced] + absent)
        for i in range(0, len(absent), _CHUNK):
            first.update({r: 0 for r in conn.execute(select(I.c.id).where(
                I.c.id.in_(absent[i:i + _CHUNK]), I.c.policy_label.is_not(None))).scalars()})
    absent_first = {g: min(first[i] for i in mates if i in first) for g, mates in sides.absent.items()
                    if any(i in first for i in mates)}
    return LearningData(data, split, [groups_by_id[k[0]] for k in kept], weights,
                        [k[6].get("kind") if k[6] else None for k in kept], stats,
                        [None if k[0] in sourced else first.get(k[0]) for k in kept], absent_first)


def _first_decision(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
    """item id -> the id of its first decision of any kind (undone and superseded ones included)."""
    out: dict[str, int] = {}
    for i in range(0, len(ids), _CHUNK):
        out.update(dict(conn.execute(select(D.c.item_id, func.min(D.c.id))
                                     .where(D.c.item_id.in_(ids[i:i + _CHUNK])).group_by(D.c.item_id)).all()))
    return out
