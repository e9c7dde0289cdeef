"""`configs/review.yaml`: what the review screen shows and masks (policies, thresholds, list sizes)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.config import config_file, load_model, raise_problems
from core.taxonomy import Taxonomy

REVIEW_FILE = "review.yaml"


class ReviewSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    mask_policies: list[str] = Field(default_factory=list)
    mask_min_score: float = Field(default=0.15, ge=0.0, le=1.0)
    similar_k: int = Field(default=8, ge=0, le=100)
    author_history: int = Field(default=15, ge=0, le=500)
    timeline_events: int = Field(default=50, ge=1, le=1000)
    sweep_every_seconds: int = Field(default=300, ge=0)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, (int, float)) else value


def load_review_settings(path: str | Path, taxonomy: Optional[Taxonomy] = None) -> ReviewSettings:
    """Load `review.yaml` (a file or a configs folder); with a taxonomy, also check the policy names."""
    p = config_file(path, REVIEW_FILE)
    settings = load_model(p, ReviewSettings)
    if taxonomy is not None:
        unknown = [m for m in settings.mask_policies if m not in taxonomy.policies]
        raise_problems(p, [("mask_policies", f"unknown policies {unknown}")] if unknown else [])
    return settings
