"""Roles as a permission matrix (`configs/roles.yaml`), enforced through the `permission_allowed` hook.

`RolePolicy(roles)` is a built-in plugin, as datasette's default permissions are: the
application registers it once on `core.hooks.pm` (`install`), and every state-changing service
function's `check_permission(actor, action, resource)` then asks it. It only ever refuses
(False) or abstains (None), and is asked first (`tryfirst`), so a role's refusal always stands
and other plugins may still refuse what the role allows. For a `Principal`: a system principal
is never refused; a token's scopes, when it has any, must name the action; and the role (with
the roles it inherits) must allow it. A plain string actor is a trusted in-process caller: the
policy abstains.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .config import DEFAULT_CONFIG_DIR, ConfigError, config_file, load_model, raise_problems
from .hooks import PermissionDenied, check_permission, hookimpl, pm
from .principals import Principal

ROLES_FILE = "roles.yaml"
ALL = "*"
# Every action a service asks for (configs/roles.yaml explains each).
ACTIONS = frozenset({
    "read", "claim", "decide", "correct", "skip", "release", "escalate", "reveal", "appeal",
    "bulk", "correct_others", "qa_review", "resolve_appeal",
    "train", "promote", "retire", "score", "export", "evaluate",
    "ingest", "cluster", "build_cases", "sweep", "purge_quarantine", "webhooks",
    "users", "tokens",
    "force_promote",  # promote a challenger the gate refused (evaluation.promotion), with a reason
    "analyst_quality",  # per-analyst quality figures (evaluation.analysts), leads only
    "note", "tag",
})
ADMIN_ROLE = "admin"  # the local command line's role on a store without accounts


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    inherits: list[str] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)

    @field_validator("allow")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [a for a in v if a != ALL and a not in ACTIONS]
        if unknown:
            raise ValueError(f"unknown action(s) {', '.join(map(repr, unknown))} "
                             f"(known: {', '.join(sorted(ACTIONS))}, or '*')")
        return v


class RolesConfig(BaseModel):
    """The roles, each resolved to the set of actions it allows (inherited ones included)."""

    model_config = ConfigDict(extra="forbid")
    version: str = "1"
    roles: dict[str, Role]

    def model_post_init(self, _ctx: Any) -> None:
        self._resolved: dict[str, frozenset[str]] = {}

    def resolve(self, path: Path) -> "RolesConfig":
        """Check inheritance (known roles, no cycles, an admin role with '*') and resolve each role."""
        problems: list[tuple[str, str]] = []
        for name, role in self.roles.items():
            for i, parent in enumerate(role.inherits):
                if parent not in self.roles:
                    problems.append((f"roles.{name}.inherits.{i}", f"unknown role {parent!r}"))
        raise_problems(path, problems)

        def walk(name: str, seen: tuple[str, ...]) -> frozenset[str]:
            if name in seen:
                raise ConfigError(f"{path}: field 'roles.{name}.inherits': inheritance cycle "
                                  f"{' -> '.join(seen + (name,))}")
            role = self.roles[name]
            out = set(role.allow)
            for parent in role.inherits:
                out |= walk(parent, seen + (name,))
            return frozenset(out)

        self._resolved = {name: walk(name, ()) for name in self.roles}
        if ALL not in self._resolved.get(ADMIN_ROLE, frozenset()):
            raise_problems(path, [(f"roles.{ADMIN_ROLE}", "an admin role allowing '*' is required "
                                                          "(the command line of a store without accounts acts as admin)")])
        return self

    def actions(self, role: str) -> frozenset[str]:
        return self._resolved.get(role, frozenset())

    def allows(self, role: str, action: str) -> bool:
        got = self.actions(role)
        return ALL in got or action in got

    def check_role(self, role: str) -> str:
        if role not in self.roles:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(self.roles)})")
        return role


def load_roles(path: str | Path | None = None) -> RolesConfig:
    """`roles.yaml` from a file or configs folder, validated (errors name the file and field).
    A configs folder without one gets the bundled roles.yaml (the matrix rarely changes)."""
    p = config_file(path, ROLES_FILE)
    if path is not None and Path(path).is_dir() and not p.exists():
        p = DEFAULT_CONFIG_DIR / ROLES_FILE
    return load_model(p, RolesConfig).resolve(p)


def check_scopes(scopes: Optional[list[str]]) -> Optional[list[str]]:
    """Token scopes: None (the role decides) or known action names."""
    if not scopes:
        return None
    unknown = [s for s in scopes if s != ALL and s not in ACTIONS]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(map(repr, unknown))} (scopes are action names: "
                         f"{', '.join(sorted(ACTIONS))})")
    return sorted(set(scopes))


class RolePolicy:
    """The built-in `permission_allowed` plugin: roles.yaml decides for Principals."""

    PLUGIN_NAME = "workbench.roles"

    def __init__(self, roles: RolesConfig) -> None:
        self.roles = roles

    @hookimpl(tryfirst=True)
    def permission_allowed(self, actor: Any, action: str, resource: Optional[str]) -> Optional[bool]:
        if not isinstance(actor, Principal):
            return None  # a trusted in-process caller names itself: abstain
        if actor.kind == "system":
            return None
        if actor.scopes is not None and ALL not in actor.scopes and action not in actor.scopes:
            return False
        return None if self.roles.allows(actor.role, action) else False

    def install(self, pm: Any) -> "RolePolicy":
        """Register on the plugin manager, replacing an earlier role policy (one per process)."""
        old = pm.get_plugin(self.PLUGIN_NAME)
        if old is not None:
            pm.unregister(old)
        pm.register(self, name=self.PLUGIN_NAME)
        return self


def _held(roles: RolesConfig, role: str, scopes: Optional[Sequence[str]]) -> frozenset[str]:
    """The actions a role narrowed by scopes allows, '*' spelled out (plus '*' itself when whole)."""
    acts = roles.actions(role)
    out = set(ACTIONS | {ALL}) if ALL in acts else set(acts)
    if scopes and ALL not in scopes:
        out &= set(scopes)
    return frozenset(out)


def check_grant(actor: Any, role: str, scopes: Optional[Sequence[str]] = None, what: str = "") -> None:
    """Nobody hands out more than they hold: an account or token that a Principal creates or
    changes (`role`, narrowed by a token's `scopes`) may not allow anything the Principal's own
    role and token scopes do not. Else a token scoped to `tokens` could mint an unscoped admin
    token, or one scoped to `users` set an admin's password and sign in as them.
    Abstains like `RolePolicy` (plain strings, system principals, no policy installed)."""
    policy = pm.get_plugin(RolePolicy.PLUGIN_NAME)
    if not isinstance(actor, Principal) or actor.kind == "system" or policy is None:
        return
    missing = _held(policy.roles, role, scopes) - _held(policy.roles, actor.role, actor.scopes)
    if missing:
        held = f"{actor.role}" + (f", token scopes {','.join(actor.scopes)}" if actor.scopes else "")
        raise PermissionDenied(f"{actor.name} ({held}) may not {what}: it would allow "
                               f"{', '.join(sorted(missing)[:6])}{' ...' if len(missing) > 6 else ''}, "
                               f"which {actor.name} may not do")


def allowed(roles: RolesConfig, actor: Principal, action: str) -> bool:
    """What the policy answers for `actor` and `action`, without the plugin manager."""
    return RolePolicy(roles).permission_allowed(actor, action, None) is not False


def refusal(actor: Any, action: str, resource: Optional[str] = None) -> Optional[str]:
    """None when `check_permission` lets `actor` do `action`, else its one-line refusal; None for
    an actor means nobody was named, refused too. For views that show less instead of failing:
    the Operations KPIs show team totals, and per-analyst figures only with `analyst_quality`."""
    if actor is None:
        return f"nobody named may {action}" + (f" {resource}" if resource else "") + \
            f": needs permission '{action}' (configs/roles.yaml)"
    try:
        check_permission(actor, action, resource)
    except PermissionDenied as exc:
        return str(exc)
    return None
