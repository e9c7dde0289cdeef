"""`configs/models.yaml`: embedding, training, per-kind defaults and scoring settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.config import config_file, load_model

MODELS_FILE = "models.yaml"
MAX_CHUNK_SIZE = 1_000_000  # scoring.chunk_size (models.scoring reads it)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbeddingSettings(_Strict):
    model: Optional[str] = None
    runtime: Literal["torch", "onnx", "onnx-int8"] = "torch"
    batch_size: int = Field(default=64, gt=0)
    max_seq_length: int = Field(default=128, gt=0, le=512)


class TrainingSettings(_Strict):
    default_kind: str = "hybrid"
    seed: int = Field(default=13, ge=0, le=2**32 - 1)  # the kinds' seed (models.params.SEED)
    validation_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)
    min_examples_per_label: int = Field(default=5, ge=2)
    reliability_bins: int = Field(default=15, ge=2, le=100)


class ScoringSettings(_Strict):
    # items per transaction, read at once: one past 2**63 was an OverflowError from the database
    chunk_size: int = Field(default=1000, gt=0, le=MAX_CHUNK_SIZE)
    # Texts over max_chars are scored over windows of window_chars characters overlapping by
    # window_overlap, at most max_windows of them (models.scoring.text_windows); 1 scores the head only.
    max_chars: int = Field(default=5000, gt=0)
    window_chars: int = Field(default=320, gt=0)
    window_overlap: int = Field(default=160, ge=0)
    max_windows: int = Field(default=64, ge=1)
    uncertainty: Literal["margin", "entropy"] = "margin"

    @model_validator(mode="after")
    def _windows_fit(self) -> "ScoringSettings":
        if self.window_chars > self.max_chars:
            raise ValueError(f"window_chars: {self.window_chars} is over max_chars {self.max_chars}")
        if self.window_overlap >= self.window_chars:
            raise ValueError(f"window_overlap: {self.window_overlap} must be smaller than "
                             f"window_chars {self.window_chars}")
        return self


class LearningSettings(_Strict):
    """How human decisions become training and evaluation data (`labeling.training_data`)."""

    # Campaign-grouped split: a group's first assignment is a salted hash of its key, then stored.
    split_salt: str = Field(default="workbench-split-1", min_length=1)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)
    # Calibration copies of one item: majority of the analysts (ties leave the item out), or
    # `lead`: a lead's (or admin's) copy wins, else the majority.
    calibration_rule: Literal["majority", "lead"] = "majority"
    # Sample weight of a human label over a source label (1.0): base x recency x scarcity, capped.
    human_weight: float = Field(default=10.0, gt=0.0)
    recency_boost: float = Field(default=1.0, ge=0.0)        # a fresh decision weighs (1 + boost)x an old one
    recency_half_life_days: float = Field(default=30.0, gt=0.0)
    scarce_source_decisions: int = Field(default=200, ge=1)  # sources with fewer decisions weigh more ...
    max_scarcity: float = Field(default=3.0, ge=1.0)         # ... up to this factor (sqrt(ref / n))
    max_weight: float = Field(default=20.0, ge=1.0, le=1000.0)  # a retrain repeats a label up to this many times
    # Candidates of `workbench retrain --tune-weight` (grouped cross-validation on the training side).
    weight_grid: list[float] = Field(default_factory=lambda: [1.0, 3.0, 10.0])
    tune_folds: int = Field(default=3, ge=2, le=10)

    @field_validator("weight_grid")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if not v or any(w <= 0 for w in v):
            raise ValueError("weight_grid: give one or more positive weights")
        return v


class PromotionSettings(_Strict):
    """The gate of `workbench retrain` (`evaluation.promotion`)."""

    metric: str = "macro_f1"            # macro_f1 | brier | auc_mean | auc:<policy>
    min_lower_bound: float = 0.0        # promote only when the interval's lower bound is above this
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    bootstrap: int = Field(default=1000, ge=100)
    seed: int = Field(default=13, ge=0, le=2**32 - 1)  # numpy's bootstrap refused a negative one after training
    min_items: int = Field(default=30, ge=1)   # an evaluation set with fewer items is reported, not gating
    # Also required: McNemar's p below this, the challenger right on more disagreements (None: off).
    mcnemar_alpha: Optional[float] = Field(default=0.05, gt=0.0, lt=1.0)
    mcnemar_test: Literal["exact", "mid_p"] = "mid_p"   # evaluation.compare.MCNEMAR_TESTS (configs/models.yaml says why)
    # pooled: the test split plus the train-side human labels the champion never learnt from, which
    # the challenger scores out of fold (`evaluation.cross_fit`: cross_fit_folds extra fits)
    sets: list[Literal["test_split", "qa_audit", "pooled"]] = Field(
        default_factory=lambda: ["test_split", "qa_audit"], min_length=1)
    cross_fit_folds: int = Field(default=3, ge=2, le=10)

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in ("macro_f1", "brier", "auc_mean") and not (v.startswith("auc:") and len(v) > 4):
            raise ValueError(f"metric: {v!r} is not macro_f1, brier, auc_mean or auc:<policy>")
        return v


class AutoRetrainSettings(_Strict):
    """When `workbench retrain --if-due` (cron, or serve) starts a retrain by itself. Off by default."""

    enabled: bool = False
    after_decisions: Optional[int] = Field(default=500, ge=1)   # new human labels since the champion
    override_rate_alarm: Optional[float] = Field(default=None, gt=0.0, le=1.0)
    alarm_min_decisions: int = Field(default=50, ge=1)
    drift_alarm: bool = False   # any alarm of `workbench eval drift` (configs/drift.yaml) in a window after the champion
    check_seconds: int = Field(default=900, ge=10)              # how often serve checks
    failure_backoff_seconds: int = Field(default=3600, ge=10, le=366 * 86400)   # wait after a failed automatic retrain, doubling
    failure_backoff_cap_seconds: int = Field(default=86400, ge=10, le=366 * 86400)  # per failure in a row, up to this

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> "AutoRetrainSettings":
        if self.failure_backoff_cap_seconds < self.failure_backoff_seconds:
            raise ValueError("failure_backoff_cap_seconds must be at least failure_backoff_seconds")
        return self


class ModelsConfig(_Strict):
    embedding: EmbeddingSettings = EmbeddingSettings()
    training: TrainingSettings = TrainingSettings()
    kinds: dict[str, dict[str, Any]] = Field(default_factory=dict)
    scoring: ScoringSettings = ScoringSettings()
    learning: LearningSettings = LearningSettings()
    promotion: PromotionSettings = PromotionSettings()
    auto_retrain: AutoRetrainSettings = AutoRetrainSettings()

    @field_validator("kinds")
    @classmethod
    def _known_kinds_and_params(cls, kinds: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from .kinds import kind_class, kind_names
        from .params import unmet

        known = kind_names()
        problems = []
        for kind, params in kinds.items():
            if kind not in known:
                problems.append(f"{kind}: unknown kind (known: {', '.join(known)})")
                continue
            allowed = set(kind_class(kind).param_names()) - {"labels"}
            for name, value in (params or {}).items():
                if name not in allowed:
                    problems.append(f"{kind}.{name}: not a parameter of this kind (known: {', '.join(sorted(allowed))})")
                elif name != "members":  # members: checked below, spec by spec
                    problem = unmet(value, kind_class(kind)._parameter_constraints.get(name, [object]))
                    if problem:
                        problems.append(f"{kind}.{name}: {problem}")
            if "members" in allowed and (params or {}).get("members") is not None:
                from .base import ModelError
                from .ensemble import member_spec

                problem = unmet(params["members"], kind_class(kind)._parameter_constraints.get("members", [object]))
                if problem:
                    problems.append(f"{kind}.members: {problem}")
                    continue
                for i, member in enumerate(params["members"]):
                    try:
                        spec = member_spec(member, i)
                    except ModelError as exc:
                        problems.append(f"{kind}.members[{i}]: {exc}")
                        continue
                    # A member's params meet its kind's constraints here, as a kind's own do above:
                    # found at training time, a bad one failed after the members before it had trained.
                    constraints = kind_class(spec["kind"])._parameter_constraints
                    for name, value in spec["params"].items():
                        problem = unmet(value, constraints.get(name, [object]))
                        if problem:
                            problems.append(f"{kind}.members[{i}].params.{name}: {problem}")
            if not problems:
                problems += _combination_problems(kind, params or {})
        if problems:
            raise ValueError("; ".join(problems))
        return kinds

    @model_validator(mode="after")
    def _known_default_kind(self) -> "ModelsConfig":
        from .kinds import kind_names

        if self.training.default_kind not in kind_names():
            raise ValueError(f"training.default_kind: unknown kind {self.training.default_kind!r} "
                             f"(known: {', '.join(kind_names())})")
        return self

    def kind_params(self, kind: str) -> dict[str, Any]:
        """The configured defaults of a kind, with the shared embedding settings filled in; an
        ensemble's members get their own kind's defaults beneath the params given for them."""
        from .kinds import kind_class

        params = dict(self.kinds.get(kind) or {})
        cls = kind_class(kind)
        names = cls.param_names()
        if "members" in names:
            members = params.get("members", cls.default_params().get("members") or [])
            params["members"] = [self._member_params(m) for m in members]
        if "embedding_model" in names:
            params.setdefault("embedding_model", self.embedding.model)
        if "embedding_runtime" in names:
            params.setdefault("embedding_runtime", self.embedding.runtime)
        if "max_seq_length" in names:
            params.setdefault("max_seq_length", self.embedding.max_seq_length)
        if "seed" in names:
            params.setdefault("seed", self.training.seed)
        return params

    def _member_params(self, member: Any) -> Any:
        if isinstance(member, str):
            member = {"kind": member}
        if not isinstance(member, dict) or not isinstance(member.get("kind"), str):
            return member  # the ensemble names the problem when it is built
        return {**member, "params": {**self.kind_params(member["kind"]), **(member.get("params") or {})}}


def _combination_problems(kind: str, params: dict[str, Any]) -> list[str]:
    """The checks a kind makes across its parameters (`_validate_combination`, an ensemble's
    members' own), made when the file is read: each value was valid alone, and the kind was
    refused only at training (hybrid with no n-grams and no embedding, nblr with no n-grams)."""
    from .base import ModelError
    from .kinds import make_classifier

    try:
        make_classifier(kind, ["a", "b"], **params)  # constructors only store; nothing is loaded
    except ModelError as exc:
        return [str(exc)]
    return []


def load_models_config(path: str | Path | None = None) -> ModelsConfig:
    """Load `models.yaml` from a file or a configs folder (default: the configs folder)."""
    p = config_file(path, MODELS_FILE)
    if not p.exists() and path is None:
        return ModelsConfig()
    return load_model(p, ModelsConfig)
