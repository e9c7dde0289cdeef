"""`configs/campaigns.yaml`: thresholds and index parameters of campaign clustering."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.config import config_file, load_model

from .normalize import ENTITY_KINDS

CAMPAIGNS_FILE = "campaigns.yaml"


class IndexSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _ef_covers_k(self) -> "IndexSettings":
        if self.ef_search < self.range_k:
            raise ValueError(f"ef_search ({self.ef_search}) must be at least range_k ({self.range_k})")
        return self

    hnsw_min_size: int = Field(default=60_000, ge=1)
    hnsw_m: int = Field(default=32, ge=4, le=256)
    ef_construction: int = Field(default=80, ge=8)
    ef_search: int = Field(default=96, ge=8)
    # On HNSW, "every neighbour above the threshold" is the range_k nearest filtered by it.
    range_k: int = Field(default=64, ge=2, le=1000)
    # New vectors go to an exact delta index, merged into the main one at this many.
    delta_max: int = Field(default=10_000, ge=1)


class CampaignSettings(BaseModel):
    """Everything that decides which items link; `linking_key` names the parts a graph depends on."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    embed: Literal["template", "raw"] = "template"
    embedding_model: Optional[str] = None
    similarity_threshold: float = Field(default=0.75, gt=0.0, le=1.0)
    entity_kinds: tuple[str, ...] = ENTITY_KINDS
    entity_max_df: int = Field(default=10, ge=2)
    # Hosts that never link on their own (shorteners, big platforms); their full URLs still do.
    ignore_hosts: tuple[str, ...] = ()
    min_campaign_size: int = Field(default=2, ge=2)
    # Similarity links chain: A~B and B~C joins A and C however far apart they are. A component
    # with more distinct texts than this is split by raising the similarity threshold inside it
    # in steps of `split_step` (rare shared entities still link), until each part is at most
    # this size or the threshold reaches `split_max_threshold`. null keeps plain components.
    max_campaign_texts: Optional[int] = Field(default=150, ge=2)
    split_step: float = Field(default=0.03, gt=0.0, le=0.2)
    split_max_threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    top_terms: int = Field(default=8, ge=1, le=50)
    index: IndexSettings = IndexSettings()

    @field_validator("ignore_hosts")
    @classmethod
    def _lower_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in value)

    @field_validator("entity_kinds")
    @classmethod
    def _known_kinds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [k for k in value if k not in ENTITY_KINDS]
        if unknown:
            raise ValueError(f"unknown entity kind(s) {unknown} (known: {', '.join(ENTITY_KINDS)})")
        return tuple(value)

    def linking_key(self) -> dict[str, object]:
        """The settings a stored graph was built with; any change needs a full re-cluster."""
        return {"embed": self.embed, "similarity_threshold": self.similarity_threshold,
                "entity_kinds": list(self.entity_kinds), "entity_max_df": self.entity_max_df,
                "ignore_hosts": sorted(self.ignore_hosts)}


def load_campaign_settings(path: str | Path | None = None) -> CampaignSettings:
    """Load `campaigns.yaml` (a file or a configs folder); errors name the file and field."""
    p = config_file(path, CAMPAIGNS_FILE)
    return load_model(p, CampaignSettings)
