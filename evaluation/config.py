"""`configs/evaluation.yaml`: confidence, target width, windows, slices and identity terms.

Validated on load (pydantic; errors name the file and the dotted field). The application loads
it once and passes it to the evaluation services; nothing here reads a default on its own.
"""
from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.config import config_file, load_model, version_text

EVALUATION_FILE = "evaluation.yaml"
SLICE_KINDS = ("source", "surface", "language", "campaign", "identity", "served")


class EvaluationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))
    version: str = Field(min_length=1)
    confidence: float = Field(default=0.9, gt=0.5, lt=1.0)
    target_width: float = Field(default=0.10, gt=0.0, lt=1.0)
    interval_method: Literal["wilson", "bootstrap"] = "wilson"
    override_window_days: int = Field(default=7, ge=1, le=366)
    override_windows: int = Field(default=8, ge=2, le=104)
    change_alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    slices: list[Literal["source", "surface", "language", "campaign", "identity", "served"]] = Field(
        default_factory=lambda: list(SLICE_KINDS))
    min_slice_n: int = Field(default=30, ge=1)
    identity_terms: dict[str, list[str]] = Field(default_factory=dict)

    _version_as_text = field_validator("version", mode="before")(version_text)

    @field_validator("identity_terms")
    @classmethod
    def _terms(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for group, terms in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,50}", group):
                raise ValueError(f"group name {group!r}: letters, digits, '_', '.', '-' only")
            blank = [t for t in terms if not str(t).strip()]
            if not terms or blank:
                raise ValueError(f"group {group!r}: needs at least one non-blank term")
        return value

    @cached_property
    def identity_patterns(self) -> dict[str, re.Pattern[str]]:
        """One whole-word, case-insensitive regex per identity group."""
        return {g: re.compile(r"\b(?:" + "|".join(re.escape(t.strip()) for t in terms) + r")\b", re.IGNORECASE)
                for g, terms in self.identity_terms.items()}


def load_evaluation_config(path: str | Path) -> EvaluationConfig:
    """Load `evaluation.yaml` (a file or a configs folder)."""
    return load_model(config_file(path, EVALUATION_FILE), EvaluationConfig)
