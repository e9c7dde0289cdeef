"""`configs/models.yaml`: embedding, training, per-kind defaults and scoring settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.config import config_file, load_model

MODELS_FILE = "models.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbeddingSettings(_Strict):
    model: Optional[str] = None
    runtime: Literal["torch", "onnx", "onnx-int8"] = "torch"
    batch_size: int = Field(default=64, gt=0)
    max_seq_length: int = Field(default=128, gt=0, le=512)


class TrainingSettings(_Strict):
    default_kind: str = "hybrid"
    seed: int = 13
    validation_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)
    min_examples_per_label: int = Field(default=5, ge=2)
    reliability_bins: int = Field(default=15, ge=2, le=100)


class ScoringSettings(_Strict):
    chunk_size: int = Field(default=1000, gt=0)
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


class ModelsConfig(_Strict):
    embedding: EmbeddingSettings = EmbeddingSettings()
    training: TrainingSettings = TrainingSettings()
    kinds: dict[str, dict[str, Any]] = Field(default_factory=dict)
    scoring: ScoringSettings = ScoringSettings()

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

                for i, member in enumerate(params["members"]):
                    try:
                        member_spec(member, i)
                    except ModelError as exc:
                        problems.append(f"{kind}.members[{i}]: {exc}")
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


def load_models_config(path: str | Path | None = None) -> ModelsConfig:
    """Load `models.yaml` from a file or a configs folder (default: the configs folder)."""
    p = config_file(path, MODELS_FILE)
    if not p.exists() and path is None:
        return ModelsConfig()
    return load_model(p, ModelsConfig)
