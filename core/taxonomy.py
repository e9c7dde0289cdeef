"""The policy taxonomy (`configs/taxonomy.yaml`): labels, severities, actions, escalation, source maps.

Loaded once per command and passed around explicitly; there is no module-level cache, so a test
or a reloaded UI always sees the file as it is now.
"""
from __future__ import annotations

import logging
import math
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from .config import config_file, load_model, version_text
from .text import Searchable, compile_pattern, pattern_search

TAXONOMY_FILE = "taxonomy.yaml"
# One year: longer is a typo, and a deadline past year 9999 cannot be computed at all.
MAX_SLA_MINUTES = 525_600
# The store's columns (core.schema; tests/test_hardening_config_taxonomy.py keeps them equal): a
# longer name loads here, then PostgreSQL refuses the first case or decision that records it.
MAX_LABEL_CHARS = 50      # policy labels, action names: decisions.label / .action, items.policy_label
MAX_TIER_CHARS = 10       # severity tiers: cases.severity, decisions.severity
MAX_VERSION_CHARS = 50    # taxonomy_version columns
MAX_REF_CHARS = 100       # decisions.policy_ref, items.source_label, items.source
# Policy labels, tiers, actions and escalation ids are names a program reads (model classes, the
# store, `auc:<policy>`, command-line options, the UI's buttons): letters, digits, '_' and '-'.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_log = logging.getLogger("workbench.taxonomy")


def _name_problems(names: list[str], what: str, limit: int) -> list[str]:
    """Why each of `names` cannot be a `what` name, and names that differ only in case (two
    buttons or store values a reader cannot tell apart); empty when all are fine."""
    out, seen = [], {}
    for name in names:
        if not _NAME.fullmatch(name):
            out.append(f"{what} {name!r}: use letters, digits, '_' and '-' only, starting with a letter or digit")
        elif len(name) > limit:
            out.append(f"{what} {name!r}: at most {limit} characters (the store's column), it has {len(name)}")
        folded = name.casefold()
        if folded in seen:
            out.append(f"{what} {name!r} and {seen[folded]!r} differ only in case")
        seen.setdefault(folded, name)
    return out


def _no_repeats(values: list[str]) -> list[str]:
    """A list of names each given once: a repeat is a slip that shows twice on screen."""
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _prose(value: str) -> str:
    """Policy prose: not blank, and folded onto one paragraph (YAML block scalars keep newlines)."""
    text = " ".join(value.split())
    if not text:
        raise ValueError("must not be blank")
    return text


class Severity(_Strict):
    name: str = Field(min_length=1)
    sla_minutes: int = Field(gt=0, le=MAX_SLA_MINUTES)
    weight: float = Field(gt=0)
    description: str = ""


class Action(_Strict):
    description: str
    removes_content: bool = False


class PolicyExample(_Strict):
    """One worked example shown beside the case: a paraphrased text and why it falls where it does."""

    text: str = Field(min_length=1, max_length=300)
    why: str = Field(min_length=1, max_length=300)

    @field_validator("text", "why")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return _prose(value)


class Policy(_Strict):
    title: str
    violating: bool
    severity: Optional[str] = None
    policy_ref: str = Field(min_length=1, max_length=MAX_REF_CHARS)
    actions: list[str] = Field(min_length=1)
    default_action: str
    # The policy text an analyst reads beside the case (the Review tab's context panel): what
    # the policy covers, how to enforce it, and one or two worked examples. Optional, so a
    # taxonomy written before them still loads; the bundled one has all three for every policy.
    definition: str = Field(default="", max_length=600)
    guidance: str = Field(default="", max_length=1200)
    examples: list[PolicyExample] = Field(default_factory=list, max_length=3)

    @field_validator("definition", "guidance")
    @classmethod
    def _prose_or_empty(cls, value: str) -> str:
        return _prose(value) if value else value

    _unique_actions = field_validator("actions")(_no_repeats)

    @model_validator(mode="after")
    def _text_complete(self) -> "Policy":
        if (self.guidance or self.examples) and not self.definition:
            raise ValueError("policy text needs a `definition` when it has `guidance` or `examples`")
        return self


class EscalationCriterion(_Strict):
    id: str
    description: str
    severity: str
    policies: list[str] = Field(min_length=1)
    patterns: list[str] = Field(default_factory=list)
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    min_campaign_size: Optional[int] = Field(default=None, gt=0)

    _unique_policies = field_validator("policies")(_no_repeats)

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for pattern in value:
            try:
                compile_pattern(pattern)
            except ValueError as exc:
                raise ValueError(f"criterion {info.data.get('id', '?')}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _has_trigger(self) -> "EscalationCriterion":
        if not self.patterns and self.min_campaign_size is None:
            raise ValueError("needs `patterns` or `min_campaign_size`, or it can never fire")
        return self

    @cached_property
    def regexes(self) -> list[Searchable]:
        """The patterns compiled on RE2 (`core.text.compile_pattern`): they read attacker-written text."""
        return [compile_pattern(p) for p in self.patterns]


class RefineRule(_Strict):
    label: str
    policy: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        compile_pattern(value)  # its ValueError names the pattern
        return value

    @cached_property
    def regex(self) -> Searchable:
        return compile_pattern(self.pattern)


class SourceMap(_Strict):
    surface: str = "post"
    label_field: Optional[str] = None
    labels: dict[str, str] = Field(default_factory=dict)
    refine: list[RefineRule] = Field(default_factory=list)
    # Source label -> metadata fields (first present wins: file and hub spellings) that count the
    # annotators who chose it; with them a model can learn from the vote share, not the majority only.
    votes: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("labels", "votes", mode="before")
    @classmethod
    def _keys_as_text(cls, value: object) -> object:
        """Keys as ingest looks them up (`_label_key`): YAML reads `0:` as an int, and a source
        label is compared as stripped text. `yes:` (YAML 1.1 true), `null:` or a key that meets
        another one once read so (`0` and "0") would map a label nobody wrote, so they are refused."""
        if not isinstance(value, dict):
            return value
        out: dict[str, object] = {}
        for k, v in value.items():
            if isinstance(k, bool) or k is None or not isinstance(k, (str, int, float)):
                raise ValueError(f"source label {k!r} is not text: put it in quotes (YAML reads yes/no/on/off "
                                 f"as true/false and null or ~ as nothing)")
            key = _label_key(k)
            if not key or len(key) > MAX_REF_CHARS:
                raise ValueError(f"source label {k!r}: 1 to {MAX_REF_CHARS} characters")
            if key in out:
                raise ValueError(f"source label {k!r} is given twice (as {key!r})")
            out[key] = v
        return out


class Taxonomy(_Strict):
    version: str = Field(min_length=1)
    severities: dict[str, Severity] = Field(min_length=1)
    actions: dict[str, Action] = Field(min_length=1)
    policies: dict[str, Policy] = Field(min_length=2)
    escalation: list[EscalationCriterion] = Field(default_factory=list)
    sources: dict[str, SourceMap] = Field(default_factory=dict)
    _unknown_tiers: set[str] = PrivateAttr(default_factory=set)  # warned of once per loaded taxonomy

    _version_as_text = field_validator("version", mode="before")(version_text)

    @field_validator("version")
    @classmethod
    def _version_fits(cls, value: str) -> str:
        if len(value) > MAX_VERSION_CHARS:
            raise ValueError(f"at most {MAX_VERSION_CHARS} characters (the store's column), it has {len(value)}")
        return value

    @field_validator("severities", "actions", "policies", "sources")
    @classmethod
    def _names(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        what, limit = {"severities": ("tier", MAX_TIER_CHARS), "actions": ("action", MAX_LABEL_CHARS),
                       "policies": ("policy", MAX_LABEL_CHARS), "sources": ("source", MAX_REF_CHARS)}[info.field_name]
        problems = _name_problems(list(value), what, limit)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("escalation")
    @classmethod
    def _criterion_ids(cls, value: list[EscalationCriterion]) -> list[EscalationCriterion]:
        problems = _name_problems([c.id for c in value], "criterion id", MAX_LABEL_CHARS)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> "Taxonomy":
        problems: list[str] = []
        benign = [name for name, p in self.policies.items() if not p.violating]
        if len(benign) != 1:
            problems.append(f"policies: exactly one policy must have `violating: false`, found {benign or 'none'}")
        for name, pol in self.policies.items():
            if pol.violating and pol.severity is None:
                problems.append(f"policies.{name}.severity: a violating policy needs a severity tier")
            if pol.severity is not None and pol.severity not in self.severities:
                problems.append(f"policies.{name}.severity: unknown tier {pol.severity!r} (known: {', '.join(self.severities)})")
            for act in pol.actions:
                if act not in self.actions:
                    problems.append(f"policies.{name}.actions: unknown action {act!r} (known: {', '.join(self.actions)})")
            if pol.default_action not in pol.actions:
                problems.append(f"policies.{name}.default_action: {pol.default_action!r} is not among its actions")
        for i, crit in enumerate(self.escalation):
            if crit.severity not in self.severities:
                problems.append(f"escalation.{i}.severity: unknown tier {crit.severity!r}")
            for pol in crit.policies:
                if pol not in self.policies:
                    problems.append(f"escalation.{i}.policies: unknown policy {pol!r}")
        ids = [c.id for c in self.escalation]
        if len(ids) != len(set(ids)):
            problems.append("escalation: criterion ids must be unique")
        for src, smap in self.sources.items():
            for raw, pol in smap.labels.items():
                if pol not in self.policies:
                    problems.append(f"sources.{src}.labels.{raw}: unknown policy {pol!r}")
            for j, rule in enumerate(smap.refine):
                if rule.policy not in self.policies:
                    problems.append(f"sources.{src}.refine.{j}.policy: unknown policy {rule.policy!r}")
                if rule.label not in smap.labels:
                    problems.append(f"sources.{src}.refine.{j}.label: {rule.label!r} is not a label of this source")
            for raw, fields in smap.votes.items():
                if raw not in smap.labels:
                    problems.append(f"sources.{src}.votes.{raw}: {raw!r} is not a label of this source")
                if not fields:
                    problems.append(f"sources.{src}.votes.{raw}: name at least one metadata field")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- queries -------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        """Policy labels in config order: the class order of every model's `predict_proba`."""
        return list(self.policies)

    @property
    def benign_label(self) -> str:
        return next(name for name, p in self.policies.items() if not p.violating)

    def severity_of(self, policy: str) -> Optional[str]:
        return self.policies[policy].severity

    @property
    def lowest_tier(self) -> str:
        """The tier of least harm weight (then longest SLA): what a stored tier no longer configured reads as."""
        return min(self.severities, key=lambda t: (self.severities[t].weight, -self.severities[t].sla_minutes))

    def stored_tier(self, tier: Optional[str]) -> Optional[str]:
        """A tier read from the store as this taxonomy knows it: None for none, the tier itself
        when configured, else `lowest_tier`, with one warning per tier (`_unknown_tiers`). A tier
        removed from the file while cases and decisions still name it raised KeyError in every
        weight and SLA lookup: the sweep, escalations and appeals stopped."""
        if tier is None or tier in self.severities:
            return tier
        if tier not in self._unknown_tiers:
            self._unknown_tiers.add(tier)
            _log.warning("severity tier %r of stored cases or decisions is not in the taxonomy (version %s): "
                         "read as its lowest tier %r, weight and SLA", tier, self.version, self.lowest_tier)
        return self.lowest_tier

    def sla_minutes(self, tier: str) -> int:
        """A tier's SLA; a tier no longer configured has the lowest tier's (`stored_tier`)."""
        return self.severities[self.stored_tier(tier) or tier].sla_minutes

    def map_source_label(self, source: str, raw_label: object, text: str = "") -> Optional[str]:
        """Policy label for a source's own label, or None when the source has no mapping.

        Raises KeyError when the source is mapped but `raw_label` is not one of its labels.
        """
        smap = self.sources.get(source)
        if smap is None or not smap.labels:
            return None
        key = _label_key(raw_label)
        if key not in smap.labels:
            raise KeyError(key)
        for rule in smap.refine:
            if rule.label == key and pattern_search(rule.regex, text):
                return rule.policy
        return smap.labels[key]

    def vote_shares(self, source: str, metadata: Optional[dict[str, Any]], text: str = "") -> Optional[dict[str, float]]:
        """Share of annotator votes per policy label (summing to 1), from the item's metadata
        through the source's `votes` fields; None when the source records no votes or the item
        has none. Raises ValueError naming the field when a count is not a finite non-negative
        number (or the counts overflow), so no NaN or all-zero soft label reaches training."""
        smap = self.sources.get(source)
        if smap is None or not smap.votes or not metadata:
            return None
        counts: dict[str, float] = {}
        used: list[str] = []
        for raw, fields in smap.votes.items():
            field = next((f for f in fields if f in metadata), None)
            if field is None:
                return None
            used.append(field)
            try:
                n = float(metadata[field])
            except (TypeError, ValueError):
                raise ValueError(f"vote count {field}={metadata[field]!r} is not a number") from None
            if not (math.isfinite(n) and n >= 0):
                raise ValueError(f"vote count {field}={metadata[field]!r} is not a finite non-negative number")
            if n:
                policy = self.map_source_label(source, raw, text)
                if policy is not None:
                    counts[policy] = counts.get(policy, 0.0) + n
        total = sum(counts.values())
        if not math.isfinite(total):  # finite counts whose sum overflows: shares would be 0 or NaN
            raise ValueError(f"vote counts {', '.join(used)} are too large to add up")
        return {k: v / total for k, v in counts.items()} if total else None

    def policy_text(self, label: str) -> dict[str, Any]:
        """What the context panel shows for a policy: title, reference, tier, definition,
        enforcement guidance, examples and the allowed actions. KeyError for an unknown label."""
        pol = self.policies[label]
        return {"label": label, "title": pol.title, "policy_ref": pol.policy_ref, "severity": pol.severity,
                "violating": pol.violating, "definition": pol.definition, "guidance": pol.guidance,
                "examples": [e.model_dump() for e in pol.examples], "actions": list(pol.actions),
                "default_action": pol.default_action}

    def check_decision(self, label: str, action: str) -> None:
        """Raise ValueError unless `action` is allowed for policy `label`."""
        if label not in self.policies:
            raise ValueError(f"unknown policy label {label!r} (known: {', '.join(self.policies)})")
        if action not in self.policies[label].actions:
            allowed = ", ".join(self.policies[label].actions)
            raise ValueError(f"action {action!r} is not allowed for {label!r} (allowed: {allowed})")


def _label_key(raw: object) -> str:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return str(raw).strip()


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate the taxonomy; `path` may be the YAML file or a configs folder."""
    p = config_file(path, TAXONOMY_FILE)
    return load_model(p, Taxonomy)
