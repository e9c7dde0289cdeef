"""`configs/campaigns.yaml`: thresholds and index parameters of campaign clustering."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.config import config_file, load_model

from .normalize import ENTITY_KINDS, _ascii_host, extract_entities

CAMPAIGNS_FILE = "campaigns.yaml"
# Public sites that scams cite to look genuine (or to pull an innocent message that cites the
# same page into their campaign): a link to one says nothing about who sent a message. A host
# covers its subdomains ("gov.uk" covers www.gov.uk and hmrc.gov.uk; "gov" every .gov site).
DEFAULT_PUBLIC_HOSTS = ("gov.uk", "nhs.uk", "police.uk", "parliament.uk", "gov", "europa.eu", "who.int",
                        "google.com", "wikipedia.org", "bbc.co.uk")
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


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
    # Links, hosts and e-mail addresses on these hosts (and their subdomains), and these phone
    # numbers, never link items (they still show among a campaign's shared entities, as not
    # linking): three scams citing a gov.uk page must not pull in an honest message citing it.
    public_hosts: tuple[str, ...] = DEFAULT_PUBLIC_HOSTS
    public_phones: tuple[str, ...] = ()
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

    @field_validator("ignore_hosts", "public_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> tuple[str, ...]:
        """Host names as entities store them (lower case, no `www.`, punycode): `www.bit.ly` or
        `BIT.LY.` in ignore_hosts was kept as written and so never matched the entity `bit.ly`."""
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list of host names, got {type(value).__name__}")
        out = []
        for h in value:
            host = h.strip().lower().removeprefix("*.").removeprefix("www.").strip(".") if isinstance(h, str) else ""
            host = _ascii_host(host.replace("\u3002", "."))  # as entities store it: punycode
            if not host or not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
                raise ValueError(f"{h!r} is not a host name such as gov.uk (letters, digits, '-' and dots only)")
            out.append(host)
        return tuple(dict.fromkeys(out))

    @field_validator("public_phones", mode="before")
    @classmethod
    def _public_phones(cls, value: object) -> tuple[str, ...]:
        """Numbers as the entity rules read them, so "0300 200 3300" matches 03002003300 in a text."""
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list of phone numbers, got {type(value).__name__}")
        out = []
        for raw in value:
            phones = extract_entities(str(raw)).phone if isinstance(raw, (str, int)) else ()
            if len(phones) != 1:
                raise ValueError(f"{raw!r} is not one phone number as campaign entities read them")
            out.append(phones[0])
        return tuple(dict.fromkeys(out))

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
                "ignore_hosts": sorted(self.ignore_hosts), "public_hosts": sorted(self.public_hosts),
                "public_phones": sorted(self.public_phones)}


def load_campaign_settings(path: str | Path | None = None) -> CampaignSettings:
    """Load `campaigns.yaml` (a file or a configs folder); errors name the file and field."""
    p = config_file(path, CAMPAIGNS_FILE)
    return load_model(p, CampaignSettings)
