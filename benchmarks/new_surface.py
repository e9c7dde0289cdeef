"""New-surface benchmark: a champion that never saw spam meets the SMS Spam Collection.

The champion is trained on Davidson tweets alone (a seeded stratified sample of `--base-n`,
default 8,000, so that the ~30 retrains per seed fit a shared 2-core machine; labels benign /
harassment / hate: no spam or scam at all). The SMS messages arrive as a new surface; a simulated
analyst answers every case with the message's true policy label. Three ways to spend 200
decisions; after every 20 a challenger is trained and goes through the promotion gate:

- model (the same for all three strategies): logistic regression (models.yaml `kinds.hybrid` C,
  balanced class weights) on the product `hybrid` kind's features: its word + char TF-IDF n-grams
  (`kinds.hybrid` settings; each model's vocabulary and idf fitted on its own training texts:
  `learning_data.TrainingVocabulary`) beside MiniLM. Which features (MiniLM alone, or n-grams +
  MiniLM at weight 1 or 2) by 3-fold log loss on the champion's training data (the base), never
  on surface items. Base labels weigh 1, human labels `labeling.training_data.human_weights` (a
  sample weight here where the product repeats rows; the balanced class weights on the weighted
  counts). The kind's calibration and decision weights are left out (AUC does not need them; its
  `fit` takes no sample weights, and 5 calibration folds would multiply the ~600 retrains). The
  head (`hybrid` `head`: one multinomial softmax, or a binary head per label, `models.ovr`) is
  chosen by 3-fold CV over the training side (`choose_head`: the base plus the train-side labels
  of the first 40 cold-start decisions of seed 1, not a reported seed; the policy's out-of-fold
  AUC; ties to the multinomial), as `retrain --tune-head` does. No unreviewed surface item is read.
- gate (`evaluation.compare.paired_bootstrap` + `gate`, models.yaml `promotion`): the decisions
  are split by the product's salted text hash (`labeling.training_data.proposed_side`,
  `--test-fraction`, default 0.35); the challenger learns from the base plus the train side and is
  compared with the champion on models.yaml's `promotion.sets` (`--gate-sets`): the test side
  (`test_split`), that plus the train-side decisions made since the champion's data, scored by
  the challenger out of fold (`pooled`, `Sim.cross_fit` as `evaluation.cross_fit`), the test
  side's uniform-QA part (`qa_audit`); a set under `min_items` is reported, not counted, and with
  no qualifying set the champion stays. The champion (the model in production) scores the queue and is what the AUC
  measures; every challenger's AUC is reported too.

- `loop` (as built): cold-start seeds around five example spam texts (`labeling.seeding`:
  round-robin nearest neighbours, `seeding.neighbours` of queues.yaml, plus the uniform QA sample
  interleaved), with queues.yaml `learning.among_seeds` of each batch by the learning pick while
  seeds wait (`among_seeds_new_surface`, where set, for a surface the champion never learnt from);
  when they are worked and no promoted model knows the policy yet, a second round around the
  decided positives (`workbench seed --from-decisions`; `--no-reseed` seeds once), and so on until
  a promotion; then the learning share (`--share`, COLD_SHARE 0.9 for a cold queue) of each batch
  by `labeling.learning.select_learning` (uncertainty x diversity), the rest in risk order
  (`labeling.priority.risk_scores` of the current model);
- `risk`: the same seeds (and seed rounds) and risk order, no learning share (none among the seeds);
- `random`: 200 decisions drawn uniformly at random.

The five examples are SMS spam messages drawn per seed; they are not decisions and are left out
of the evaluation. Measured: spam AUC (p(spam) + p(scam) against the dataset's spam label) on the
SMS messages nobody reviewed, after each retrain; mean and sd over `--seeds` (and per checkpoint
how many seeds promoted, the test-side size). Targets: the loop reaches AUC >= 0.95 after 100
decisions and >= 0.98 after 200, above both comparisons.

`--variant new_policy`: a new policy on a known surface. The champion is trained on the SMS
messages and on the Davidson tweets with every hate label hidden (those tweets unlabelled); the
surface is the Davidson tweets, the seeds come from five example hate tweets, and the measure is
hate AUC on the tweets nobody reviewed (target >= 0.85 after 200 decisions, above both).
`full_label_reference_auc`, for context: the same model with every surface label known (3-fold CV).

Prints one JSON line (appended to benchmarks/measured.jsonl with --append); the curves go to
benchmarks/results/<variant>.png. `--dump-decisions FILE` also writes the base, the surface and
every strategy's decisions, which `transformer_adaptation.py` trains the fine-tuned transformer on.

Usage: python benchmarks/new_surface.py [--variant new_surface|new_policy] [--seeds 13,17,23] [--base-n 8000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread on a shared machine (see active_learning.py)

import numpy as np  # noqa: E402

from learning_data import RESULTS, ROOT, emit, load, log  # noqa: E402
from surface_plot import STRATEGIES, plot  # noqa: E402

BUDGET = 200
STEP = 20
# The learning share of the new surface's queue while it is cold. Chosen on seed 1 alone (not a
# reported seed), 3,000-tweet base: AUC@100 / @200 of the loop with share 0.2: 0.959 / 0.963 (seed
# 13 trial), 0.5: 0.972 / 0.975, 0.9: 0.973 / 0.983, 1.0 (20 neighbours): 0.977 / 0.985. A queue in
# steady state keeps the shipped 0.2 (configs/queues.yaml); a new surface's queue is set high.
COLD_SHARE = 0.9
# The gate's held-out share of the decisions (the product's salted text hash, models.yaml
# `learning.test_fraction` is 0.2): 0.35 so that 100 decisions give about 35 test items, over the
# gate's `promotion.min_items` (30); with 0.2 the gate has no evidence before ~150 decisions.
TEST_FRACTION = 0.35
# Feature sets compared by cross-validation on the champion's training data: (the hybrid's word +
# char n-grams?, MiniLM embedding weight). The n-gram settings are models.yaml `kinds.hybrid`.
FEATURE_GRID = ((False, 1.0), (True, 1.0), (True, 2.0))
CV_ROWS = 4000
# The head's CV (choose_head): the training side plus the first cold-start decisions of an unreported seed.
HEAD_CV_SEED, HEAD_CV_DECISIONS = 1, 40


class _Head:
    """A fitted head's probabilities over every taxonomy label (0 for labels it never saw)."""

    def __init__(self, clf, n_labels: int) -> None:
        self.clf, self.n_labels = clf, n_labels

    def predict_proba_full(self, X) -> np.ndarray:
        out = np.zeros((X.shape[0], self.n_labels))
        out[:, self.clf.classes_] = self.clf.predict_proba(X)
        return out


class Sim:
    """The shared state of one benchmark run: data, features, taxonomy order, configs, the champion's base."""

    learn_from = "champion"  # whose uncertainty the learning pick uses ("challenger": the latest retrain's)
    cold_mix: float | None = None  # learning share among the seeds (None: queues.yaml learning.among_seeds)

    def __init__(self, base_n: int, share: float | None = None, neighbours: int | None = None,
                 uniform_share: float | None = None, variant: str = "new_surface",
                 test_fraction: float = TEST_FRACTION, gate_metric: str | None = None,
                 head: str | None = None, reseed: bool = True, gate_sets: list[str] | None = None) -> None:
        sys.path.insert(0, str(ROOT))
        import scipy.sparse as sp

        from core.taxonomy import load_taxonomy
        from core.text import text_hash
        from labeling.priority import label_harm_weights
        from labeling.queue_config import load_queue_config
        from labeling.training_data import proposed_side
        from learning_data import TrainingVocabulary
        from models.config import load_models_config
        from models.training import stratified_split

        self.tax = load_taxonomy()
        self.labels = list(self.tax.labels)
        self.harm = label_harm_weights(self.tax)
        self.qcfg = load_queue_config(ROOT / "configs", self.tax)
        mcfg = load_models_config()
        self.learning = mcfg.learning
        self.pcfg = mcfg.promotion
        if gate_metric:  # e.g. auc:hate for a new policy (models.yaml `promotion.metric` takes it too)
            self.pcfg = self.pcfg.model_copy(update={"metric": gate_metric})
        if gate_sets:  # e.g. test_split,qa_audit: the gate before `pooled` (models.yaml `promotion.sets`)
            self.pcfg = type(self.pcfg).model_validate({**self.pcfg.model_dump(), "sets": gate_sets})
        self.hp = mcfg.kind_params("hybrid")
        self.C = float(self.hp.get("C", 4.0))
        sms, dav = load("sms_spam"), load("davidson")
        # One row space for both datasets (SMS first): the hybrid's n-gram block and the embeddings.
        self.vocab = TrainingVocabulary([sms, dav], self.hp)
        self.E = np.vstack([sms.emb, dav.emb]).astype(np.float32)
        self.all_texts = sms.texts + dav.texts  # the same row space
        self.decided: dict[tuple[str, int], list[int]] = {}
        off = {"sms_spam": 0, "davidson": len(sms.ids)}
        self.variant = variant
        self.reseed = reseed
        # new_surface: a Davidson-only champion meets the SMS messages (policy spam: spam + scam);
        # new_policy: a champion on SMS and the tweets with every hate label hidden meets hate on the
        # tweets; tweets_surface (for choices, loop_diagnostics): an SMS-only champion meets the tweets.
        self.sur, self.pos_labels, base = {"new_surface": (sms, ["spam", "scam"], [(dav, None)]),
                                           "new_policy": (dav, ["hate"], [(dav, "hate"), (sms, None)]),
                                           "tweets_surface": (dav, ["hate"], [(sms, None)])}[variant]
        self.sur_rows = off[self.sur.name] + np.arange(len(self.sur.ids))
        self.sur_y = np.array([self.labels.index(lab) for lab in self.sur.labels])
        self.sur_hash = [text_hash(t) for t in self.sur.texts]
        self.pos = np.isin(self.sur_y, [self.labels.index(lab) for lab in self.pos_labels])
        rows, ys = [], []
        for data, hidden in base:
            keep_all = [i for i, lab in enumerate(data.labels) if lab != hidden]
            if data is dav and len(keep_all) > base_n:
                _, pick = stratified_split([data.ids[i] for i in keep_all], [data.labels[i] for i in keep_all],
                                           base_n / len(keep_all), 13)
                keep_all = [keep_all[i] for i in pick]
            rows.append(off[data.name] + np.array(keep_all))
            ys.append(np.array([self.labels.index(data.labels[i]) for i in keep_all]))
        self.base_rows, self.base_y = np.concatenate(rows), np.concatenate(ys)
        # `labeling.learning.sources_new_to_champion`: under `new_surface_below` of its items learnt.
        self.new_surface = int(np.isin(self.base_rows, self.sur_rows).sum()) < self.qcfg.learning.new_surface_below
        self.share = float(self.qcfg.learning.queues.get("general", 0.2)) if share is None else share
        upd = {k: v for k, v in (("neighbours", neighbours), ("uniform_share", uniform_share)) if v is not None}
        if upd:
            self.qcfg = self.qcfg.model_copy(update={"seeding": self.qcfg.seeding.model_copy(update=upd)})
        # The gate's held-out side of the decisions: the product's salted hash of each text.
        self.test_fraction = test_fraction
        self.side_test = np.array([proposed_side(h, self.learning.split_salt, test_fraction) == "test"
                                   for h in self.sur_hash])
        self.cv = self.choose_features()
        ngrams, w = self.cv["chosen"]
        self.E_base = sp.csr_matrix(self.E[self.base_rows] * w)
        self.E_sur = sp.csr_matrix(self.E[self.sur_rows] * w)
        self.X_base, self.X_sur = self.design([])  # the champion's
        self.head_cv = self.choose_head() if head is None else {"chosen": head}
        self.head = self.head_cv["chosen"]

    def features_name(self) -> str:
        ngrams, w = self.cv["chosen"]
        return f"hybrid n-grams + {w:g} x MiniLM" if ngrams else "MiniLM only"

    def choose_features(self) -> dict:
        """The feature set by stratified 3-fold log loss on the champion's training data (the
        base, a seeded sample of at most CV_ROWS rows): MiniLM alone, or the hybrid's n-grams plus
        MiniLM at each embedding weight of FEATURE_GRID. No surface item is looked at."""
        import scipy.sparse as sp
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss
        from sklearn.model_selection import StratifiedKFold

        rng = np.random.default_rng(1)
        sub = rng.choice(len(self.base_y), size=min(CV_ROWS, len(self.base_y)), replace=False)
        rows, y = self.base_rows[sub], self.base_y[sub]
        T_base = self.vocab.features(self.base_rows, self.base_rows)  # the vocabulary of the base
        scores = {}
        for ngrams, w in FEATURE_GRID:
            blocks = ([T_base[sub]] if ngrams else []) + [sp.csr_matrix(self.E[rows] * w)]
            X = sp.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
            losses = []
            for tr, ho in StratifiedKFold(3, shuffle=True, random_state=1).split(X, y):
                clf = LogisticRegression(C=self.C, max_iter=1000, class_weight="balanced").fit(X[tr], y[tr])
                losses.append(log_loss(y[ho], clf.predict_proba(X[ho]), labels=clf.classes_))
            scores[f"{'hybrid' if ngrams else 'minilm'}:{w:g}"] = round(float(np.mean(losses)), 5)
            log(f"[cv] {'n-grams + ' if ngrams else ''}{w:g} x MiniLM: log loss {scores[list(scores)[-1]]}")
        best = min(range(len(FEATURE_GRID)), key=lambda j: list(scores.values())[j])
        return {"rows": int(len(y)), "folds": 3, "log_loss": scores, "chosen": FEATURE_GRID[best]}

    def choose_head(self, seed: int = HEAD_CV_SEED, n_first: int = HEAD_CV_DECISIONS) -> dict:
        """The head (multinomial softmax, or one binary head per label: the hybrid's `head`) by
        stratified 3-fold cross-validation over the training side: the base plus the train-side
        human labels of the first `n_first` cold-start decisions of `seed` (an unreported seed:
        five examples of the policy, their neighbours and the uniform sample, answered with the
        true labels). Each head's out-of-fold probabilities of the policy give its AUC over all
        those rows; the higher wins. No unreviewed surface item is looked at."""
        import scipy.sparse as sp
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold

        from labeling.training_data import human_weights

        rng = np.random.default_rng(seed)
        examples = rng.choice(np.flatnonzero(self.pos), size=5, replace=False)
        pool = np.setdiff1d(np.arange(len(self.sur_y)), examples)
        first = self.seeds(examples, pool, seed)[0][:n_first]
        train = [i for i in first if not self.side_test[i]]
        now = dt.datetime(2026, 12, 1)
        X_base, X_sur = self.design(train)
        X = sp.vstack([X_base, X_sur[train]], format="csr")
        y = np.concatenate([self.base_y, self.sur_y[train]])
        w = np.concatenate([np.ones(len(self.base_y)),
                            human_weights([now] * len(train), ["surface"] * len(train), now, self.learning)])
        cols = [self.labels.index(lab) for lab in self.pos_labels]
        aucs = {}
        for head in ("multinomial", "ovr"):
            oof = np.zeros((len(y), len(self.labels)))
            for tr, ho in StratifiedKFold(3, shuffle=True, random_state=1).split(X, y):
                oof[ho] = self._fit_head(head, X[tr], y[tr], w[tr]).predict_proba_full(X[ho])
            aucs[head] = round(float(roc_auc_score(np.isin(y, cols), oof[:, cols].sum(axis=1))), 4)
            log(f"[head cv] {head}: out-of-fold {'+'.join(self.pos_labels)} AUC {aucs[head]}")
        return {"seed": seed, "human_labels": len(train), "policy_positives": int(np.isin(self.sur_y[train], cols).sum()),
                "rows": int(len(y)), "folds": 3, "auc": aucs, "chosen": max(aucs, key=lambda h: (aucs[h], h == "multinomial"))}

    def _fit_head(self, head: str, X, y: np.ndarray, w: np.ndarray) -> "_Head":
        """A fitted head over the taxonomy order: `head` ('multinomial' or 'ovr') on rows X, labels
        y, sample weights w, classes balanced on the weighted counts (ovr: per binary problem)."""
        from sklearn.linear_model import LogisticRegression

        from models.ovr import OneVsRestLogistic
        from models.weights import balanced_weights

        if head == "ovr":
            return _Head(OneVsRestLogistic(C=self.C, class_weight="balanced", max_iter=1000).fit(X, y, sample_weight=w),
                         len(self.labels))
        cw = balanced_weights(np.bincount(y, weights=w, minlength=len(self.labels)))
        return _Head(LogisticRegression(C=self.C, max_iter=1000).fit(X, y, sample_weight=w * cw[y]),
                     len(self.labels))

    def design(self, human: list[int]) -> tuple:
        """(base rows, surface rows) of the model trained on the base plus the surface items
        `human`: its n-gram vocabulary and idf fitted on those training texts, as the product's
        hybrid fits them (`learning_data.TrainingVocabulary`), beside the MiniLM block."""
        import scipy.sparse as sp

        ngrams, _ = self.cv["chosen"]
        if not ngrams:
            return self.E_base, self.E_sur
        train_rows = np.concatenate([self.base_rows, self.sur_rows[np.asarray(human, dtype=int)]])
        T = self.vocab.features(train_rows, np.concatenate([self.base_rows, self.sur_rows]))
        nb = len(self.base_rows)
        return (sp.hstack([T[:nb], self.E_base], format="csr", dtype=np.float32),
                sp.hstack([T[nb:], self.E_sur], format="csr", dtype=np.float32))

    def fit(self, human: list[int]) -> np.ndarray:
        """Probabilities over the surface (taxonomy order) of a model trained on the base plus the
        human labels of `human` (surface indices), weighted as the product weighs them (`_fit_head`
        balances the classes on the weighted counts, as the product's `class_weight: balanced`
        does on its rows repeated by weight)."""
        import scipy.sparse as sp

        from labeling.training_data import human_weights

        now = dt.datetime(2026, 12, 1)
        w_h = human_weights([now] * len(human), ["surface"] * len(human), now, self.learning) if human else np.zeros(0)
        X_base, X_sur = self.design(human) if human else (self.X_base, self.X_sur)
        X = sp.vstack([X_base, X_sur[human]], format="csr") if human else X_base
        y = np.concatenate([self.base_y, self.sur_y[human]]) if human else self.base_y
        w = np.concatenate([np.ones(len(self.base_y)), w_h])
        return self._fit_head(self.head, X, y, w).predict_proba_full(X_sur)

    def full_label_reference(self, folds: int = 3) -> float:
        """The ceiling for context: the same model and features trained with every surface label
        known (stratified `folds`-fold cross-validation over the surface alone, no base), the
        policy's AUC out of fold. What 200 decisions are measured against is far fewer labels."""
        import scipy.sparse as sp
        from sklearn.model_selection import StratifiedKFold

        out, (ngrams, _) = np.zeros((len(self.sur_y), len(self.labels))), self.cv["chosen"]
        for tr, ho in StratifiedKFold(folds, shuffle=True, random_state=1).split(self.E_sur, self.sur_y):
            X = (sp.hstack([self.vocab.features(self.sur_rows[tr], self.sur_rows), self.E_sur], format="csr")
                 if ngrams else self.E_sur)  # the vocabulary of the training folds
            head = self._fit_head(self.head, X[tr], self.sur_y[tr], np.ones(len(tr)))
            out[ho] = head.predict_proba_full(X[ho])
        return self.auc(out, np.arange(len(self.sur_y)))

    def auc(self, probs: np.ndarray, unseen: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        score = probs[:, [self.labels.index(lab) for lab in self.pos_labels]].sum(axis=1)
        return float(roc_auc_score(self.pos[unseen], score[unseen]))

    def seeds(self, examples: np.ndarray, pool: np.ndarray, seed: int) -> tuple[list[int], set[int]]:
        """The cold-start order (the product's round-robin neighbours plus the uniform QA sample)
        and the items of that uniform sample (the gate's `qa_audit` set)."""
        from labeling.sampling import uniform_draw
        from labeling.seeding import interleave_uniform, nearest_round_robin

        s = self.qcfg.seeding
        sims = self.sur.emb[pool] @ self.sur.emb[examples].T
        picks = nearest_round_robin(sims, s.neighbours, s.min_similarity, [self.sur_hash[i] for i in pool],
                                    self.sur.emb[pool], s.max_similarity)
        chosen = {r for r, _, _ in picks}
        n_uni = int(round(s.uniform_share * len(picks)))
        rest = sorted((r for r in range(len(pool)) if r not in chosen),
                      key=lambda r: uniform_draw(self.sur.ids[pool[r]], f"{seed}:seed:{self.pos_labels[0]}"))
        uniform = [int(pool[r]) for r in rest[:n_uni]]
        order = interleave_uniform([int(pool[r]) for r, _, _ in picks], uniform)
        return order, set(uniform)

    def learning_pick(self, probs: np.ndarray, remaining: np.ndarray, n: int) -> list[int]:
        """Up to `n` surface indices of `remaining` by the product's learning pick."""
        from labeling.learning import margin_uncertainty, select_learning

        lc = self.qcfg.learning
        pick = select_learning(margin_uncertainty(probs[remaining]), n, self.sur.emb[remaining],
                               [self.sur_hash[i] for i in remaining], lc.min_uncertainty, lc.max_similarity)
        return [int(remaining[j]) for j in pick]

    def queue_batch(self, probs: np.ndarray, remaining: np.ndarray, k: int, share: float,
                    learn_probs: np.ndarray | None = None) -> list[int]:
        """One batch of claims: `share` of it by the learning pick (over `learn_probs`, default the
        champion's `probs`), the rest by risk."""
        from labeling.priority import risk_scores

        n_learn = int(round(share * k))
        lp = probs if learn_probs is None else learn_probs
        learn = self.learning_pick(lp, remaining, n_learn) if n_learn else []
        risk = risk_scores(probs[remaining], self.harm)
        taken = set(learn)
        by_risk = [int(remaining[j]) for j in np.argsort(-risk, kind="stable") if int(remaining[j]) not in taken]
        return learn + by_risk[: k - len(learn)]

    def cross_fit(self, decided: list[int]) -> dict[int, np.ndarray]:
        """The product's `pooled` set beyond the test split (`evaluation.cross_fit`): the train-side
        decisions in groups first decided after the champion's data (`champ_cut` decisions), each
        scored by a model of the challenger's kind trained on the base and the other train-side
        decisions without its fold (`promotion.cross_fit_folds` folds, `fold_of` the group)."""
        from evaluation.cross_fit import fold_of

        folds = self.pcfg.cross_fit_folds
        seen = {self.sur_hash[i] for i in decided[:self.champ_cut]}
        train = [i for i in decided if not self.side_test[i]]
        post = [i for i in train if self.sur_hash[i] not in seen]
        fold = {i: fold_of(self.sur_hash[i], folds) for i in post}
        oof: dict[int, np.ndarray] = {}
        for f in range(folds):
            hold = [i for i in post if fold[i] == f]
            if hold:
                held = {self.sur_hash[i] for i in hold}
                P = self.fit([i for i in train if self.sur_hash[i] not in held])
                oof.update({i: P[i] for i in hold})
        return oof

    def gate_step(self, decided: list[int], uniform: set[int], champ: np.ndarray, chall: np.ndarray) -> dict:
        """The product's gate (`evaluation.compare.paired_bootstrap` + `gate`, models.yaml `promotion`) on
        the test side of the decisions so far, its uniform QA part and (`pooled`) the test side
        plus the challenger's out-of-fold scores of `cross_fit`: champion against challenger on
        the same items."""
        import warnings

        from evaluation.compare import gate, paired_bootstrap

        test, pc, comps = [i for i in decided if self.side_test[i]], self.pcfg, {}
        extra = self.cross_fit(decided) if "pooled" in pc.sets else {}
        for name, items in (("test_split", test), ("pooled", test + sorted(extra)),
                            ("qa_audit", [i for i in test if i in uniform])):
            if name not in pc.sets:
                continue
            idx = np.array(items, dtype=int)
            y = self.sur_y[idx]
            pa = champ[idx]
            pb = np.array([extra[i] if i in extra else chall[i] for i in items]).reshape(pa.shape)
            with warnings.catch_warnings():  # nanmean over resamples without a positive: reported as None
                warnings.simplefilter("ignore", RuntimeWarning)
                comps[name] = paired_bootstrap(y, pa, pb, pa.argmax(axis=1), pb.argmax(axis=1), self.labels,
                                               groups=[self.sur_hash[i] for i in idx], n_boot=pc.bootstrap,
                                               seed=pc.seed, confidence=pc.confidence)
        v = gate(comps, pc.metric, pc.min_lower_bound, pc.min_items, pc.mcnemar_alpha, pc.mcnemar_test)
        if v["passed"]:
            self.champ_cut = len(decided)
        return {"passed": bool(v["passed"]), "n_test": len(test) + len(extra), "reason": v["reason"]}

    def run(self, strategy: str, seed: int, champion: np.ndarray) -> list[dict]:
        """One strategy's 200 decisions: after every STEP a challenger is trained on the base and
        the train side of the decisions and goes through the gate; the champion (the model in
        production) scores the queue, and both are measured on the items nobody reviewed."""
        rng = np.random.default_rng(seed)
        examples = rng.choice(np.flatnonzero(self.pos), size=5, replace=False)
        pool = np.setdiff1d(np.arange(len(self.sur_y)), examples)
        pending, uniform = self.seeds(examples, pool, seed) if strategy != "random" else ([], set())
        random_order = [int(i) for i in rng.permutation(pool)] if strategy == "random" else []
        if strategy == "random":
            uniform = set(random_order[:BUDGET])
        decided: list[int] = []
        self.champ_cut = 0  # decisions the champion in production was trained on (`cross_fit`)
        champ_probs = latest = champion
        knows_policy = False  # has a model that learned the policy been promoted?
        curve = []
        while len(decided) < BUDGET:
            need = STEP
            if len(pending) < need and strategy != "random" and self.reseed and not knows_policy:
                # Still cold: seed again around the decided positives (`workbench seed --policy P
                # --from-decisions`): the production model cannot find the policy yet.
                positives = [i for i in decided if self.pos[i]]
                seen = set(decided) | set(pending)
                rest = np.array([i for i in pool if int(i) not in seen])
                if positives and len(rest):
                    more, more_uniform = self.seeds(np.array(positives), rest, seed)
                    pending += [i for i in more if i not in seen]
                    uniform |= more_uniform
            # While seeds wait, the product's learning share among them (queues.yaml `among_seeds`).
            mix = (self.qcfg.learning.seed_mix(self.share, new_surface=self.new_surface) if self.cold_mix is None
                   else min(self.cold_mix, self.share))
            n_mix = int(round(mix * need)) if strategy == "loop" and pending else 0
            batch = pending[:need - n_mix]
            pending = pending[need - n_mix:]
            if n_mix:
                seen = set(decided) | set(batch) | set(pending)
                batch += self.learning_pick(champ_probs, np.array([i for i in pool if int(i) not in seen]), n_mix)
            if len(batch) < need:
                if strategy == "random":
                    batch = random_order[len(decided):len(decided) + need]
                else:
                    seen = set(decided) | set(batch)
                    remaining = np.array([i for i in pool if int(i) not in seen])
                    batch += self.queue_batch(champ_probs, remaining, need - len(batch),
                                              self.share if strategy == "loop" else 0.0,
                                              latest if self.learn_from == "challenger" else None)
            decided += batch
            train = [i for i in decided if not self.side_test[i]]
            chall_probs = latest = self.fit(train)
            verdict = self.gate_step(decided, uniform, champ_probs, chall_probs)
            if verdict["passed"]:
                champ_probs = chall_probs
                knows_policy = True
            unseen = np.setdiff1d(pool, np.array(decided))
            curve.append({"n": len(decided), "auc": self.auc(champ_probs, unseen),
                          "challenger_auc": self.auc(chall_probs, unseen), "promoted": verdict["passed"],
                          "n_test": verdict["n_test"], "reason": verdict["reason"]})
        self.decided[(strategy, seed)] = decided
        return curve

    def dump(self, path: str) -> None:
        """Write what `transformer_adaptation.py` needs to train other model kinds on the same
        decisions, self-contained (texts included: the device machine has no shared data): the
        base (texts, labels), the surface (texts, labels, gate side) and, per strategy and seed,
        the decided surface indices in the order they were decided."""
        def texts(rows: np.ndarray) -> list[str]:
            return [self.all_texts[int(r)] for r in rows]

        out = {"variant": self.variant, "labels": self.labels, "pos_labels": self.pos_labels,
               "base": {"texts": texts(self.base_rows), "y": self.base_y.tolist()},
               "surface": {"name": self.sur.name, "texts": self.sur.texts, "y": self.sur_y.tolist(),
                           "test_side": self.side_test.tolist()},
               "decided": {f"{s}:{seed}": d for (s, seed), d in self.decided.items()}}
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(out, fh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="13,17,23")
    ap.add_argument("--base-n", type=int, default=8000)
    ap.add_argument("--share", type=float, default=COLD_SHARE,
                    help=f"Learning share of the new surface's queue (default {COLD_SHARE}; see the module doc).")
    ap.add_argument("--neighbours", type=int, default=None, help="Seed neighbours (default: seeding.neighbours).")
    ap.add_argument("--uniform-share", type=float, default=None, help="Default: seeding.uniform_share.")
    ap.add_argument("--test-fraction", type=float, default=TEST_FRACTION,
                    help=f"The gate's held-out share of the decisions (default {TEST_FRACTION}).")
    ap.add_argument("--gate-metric", default=None,
                    help="The gate's metric (default: models.yaml promotion.metric), e.g. auc:hate.")
    ap.add_argument("--gate-sets", default=None,
                    help="The gate's evaluation sets, comma-separated (default: models.yaml promotion.sets).")
    ap.add_argument("--variant", choices=["new_surface", "new_policy"], default="new_surface")
    ap.add_argument("--no-reseed", action="store_true",
                    help="Seed once only (default: while no promoted model knows the policy, seed again around "
                         "the decided positives when the seeds run out).")
    ap.add_argument("--head", choices=["multinomial", "ovr"], default=None,
                    help="The model's head (default: chosen by leave-one-policy-out CV on the base, see choose_head).")
    ap.add_argument("--append", action="store_true", help="Append the JSON line to benchmarks/measured.jsonl.")
    ap.add_argument("--dump-decisions", default=None, metavar="FILE",
                    help="Also write the base, the surface and every strategy's decisions as JSON (the input of "
                         "benchmarks/transformer_adaptation.py).")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    t0 = time.time()
    sim = Sim(args.base_n, args.share, args.neighbours, args.uniform_share, args.variant, args.test_fraction,
              args.gate_metric, args.head, not args.no_reseed,
              args.gate_sets.split(",") if args.gate_sets else None)
    policy = "+".join(sim.pos_labels)
    log(f"[{args.variant}] champion trained on {len(sim.base_y)} items ({sim.features_name()}); surface "
        f"{len(sim.sur_y)} ({int(sim.pos.sum())} {policy})")
    champ = sim.fit([])
    champ_auc = sim.auc(champ, np.arange(len(sim.sur_y)))
    curves: dict = {s: [] for s in STRATEGIES}
    for seed in seeds:
        for strategy in STRATEGIES:
            c = sim.run(strategy, seed, champ)
            curves[strategy].append(c)
            log(f"[{args.variant} seed {seed}] {strategy}: " + ", ".join(
                f"{p['n']}:{p['auc']:.3f}{'*' if p['promoted'] else ''}(ch {p['challenger_auc']:.3f}, test {p['n_test']})"
                for p in c))
    xs = [p["n"] for p in curves["loop"][0]]

    def stats(key: str) -> tuple[dict, dict]:
        m = {s: np.mean([[p[key] for p in c] for c in curves[s]], axis=0) for s in STRATEGIES}
        e = {s: (np.std([[p[key] for p in c] for c in curves[s]], axis=0, ddof=1) if len(seeds) > 1
                 else np.zeros(len(xs))) for s in STRATEGIES}
        return m, e

    mean, sd = stats("auc")
    cmean, csd = stats("challenger_auc")

    def at(s: str, n: int) -> float:
        return float(mean[s][xs.index(n)])

    targets = {"auc_at_100": 0.95, "auc_at_200": 0.98} if args.variant == "new_surface" else {"auc_at_200": 0.85}
    met = {k: at("loop", int(k[-3:])) >= v and at("loop", int(k[-3:])) > max(at("risk", int(k[-3:])),
                                                                            at("random", int(k[-3:])))
           for k, v in targets.items()}
    pc = sim.pcfg
    report = {
        "benchmark": "new_surface", "variant": args.variant,
        "setting": ("Davidson-only champion meets the SMS surface; spam AUC (spam + scam) on unreviewed SMS"
                    if args.variant == "new_surface" else
                    "champion on SMS + Davidson with every hate label hidden meets the hate policy; hate AUC on "
                    "unreviewed Davidson tweets"),
        "seeds": seeds, "base_items": int(len(sim.base_y)), "base_davidson_sample": args.base_n,
        "model": f"LR(C={sim.C}, balanced, {sim.head} head) on {sim.features_name()} (models.yaml kinds.hybrid n-grams); human "
                 "labels weighted by labeling.training_data.human_weights; same model for all three strategies",
        "feature_cv": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sim.cv.items()},
        "head_cv": sim.head_cv, "reseed": sim.reseed,
        "learning_share": sim.share, "surface_new_to_champion": sim.new_surface,
        "among_seeds": sim.qcfg.learning.seed_mix(sim.share, new_surface=sim.new_surface),
        "seeding": sim.qcfg.seeding.model_dump(), "retrain_every": STEP,
        "gate": {"metric": pc.metric, "min_lower_bound": pc.min_lower_bound, "min_items": pc.min_items,
                 "mcnemar_alpha": pc.mcnemar_alpha, "mcnemar_test": pc.mcnemar_test, "bootstrap": pc.bootstrap,
                 "sets": list(pc.sets),
                 "test_fraction": sim.test_fraction,
                 "note": "challenger trained on base + train-side decisions; AUC is the champion's (in production "
                         "after the gate); challenger_auc is every retrain's"},
        "champion_auc": round(champ_auc, 4),
        "full_label_reference_auc": round(sim.full_label_reference(), 4),
        "auc": {s: {str(n): [round(float(m), 4), round(float(e), 4)] for n, m, e in zip(xs, mean[s], sd[s])}
                for s in STRATEGIES},
        "challenger_auc": {s: {str(n): [round(float(m), 4), round(float(e), 4)] for n, m, e in zip(xs, cmean[s], csd[s])}
                           for s in STRATEGIES},
        "promoted_of_seeds": {s: {str(n): int(sum(c[j]["promoted"] for c in curves[s])) for j, n in enumerate(xs)}
                              for s in STRATEGIES},
        "test_side_items": {s: {str(n): [int(c[j]["n_test"]) for c in curves[s]] for j, n in enumerate(xs)}
                            for s in STRATEGIES},
        "gate_reason_first_seed": {s: {str(c["n"]): c["reason"] for c in curves[s][0] if c["n"] in (100, 200)}
                                   for s in STRATEGIES},
        **{f"loop_over_{b}_at_{n}": round(at("loop", n) / at(b, n), 4) for b in ("risk", "random") for n in (100, 200)},
        "targets": targets, "met_each": met, "met": all(met.values()), "seconds": round(time.time() - t0, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / f"{args.variant}.png"
    plot(xs, mean, sd, champ_auc, png, policy, args.variant, list(targets.values()), cmean)
    report["plot"] = str(png.relative_to(ROOT))
    if args.dump_decisions:
        sim.dump(args.dump_decisions)
        report["decisions_dump"] = args.dump_decisions
    emit(report, args.append)


if __name__ == "__main__":
    main()
