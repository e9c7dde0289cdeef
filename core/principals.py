"""Who acts: the principal every state-changing service is handed, and the names nobody may take.

A `Principal` is a name, a role (a key of `configs/roles.yaml`) and a kind:

- `user`: an account in the store, authenticated by a token or a password (`core.accounts`);
- `local`: the command line of a store with no accounts yet (single-user use): the OS user, or
  the `--as` name, with the admin role;
- `system`: the workbench's own jobs (the SLA sweeper, ingest, the demo, ...). These are the
  `SYSTEM` principals below; their names are reserved, so no account, token or `--as` can take
  them, and the role policy lets them do what their job needs.

Services accept `Principal | str` as their actor: a plain string is a trusted in-process caller
(tests, scripts) on which the role policy abstains. `actor_name` is what gets recorded.
Standard library only: `core.hooks` (and so `workbench --help`) imports this module.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

KINDS = ("user", "local", "system")
RESERVED_NAMES = ("system", "sweeper", "ingest", "demo", "cli")
# A name: a letter or digit first, then letters, digits, '.', '_', '@', '-' (at most 100 in all).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


class InvalidName(ValueError):
    """A principal or account name that is blank, padded, oddly spelled or reserved."""


@dataclass(frozen=True)
class Principal:
    """Who acts: `name` (recorded as the actor), `role` (roles.yaml) and `kind` (user/local/system)."""

    name: str
    role: str
    kind: str = "user"
    # A token's scopes narrow the role to these actions; None: the role alone decides.
    scopes: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"principal kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    def __str__(self) -> str:  # f"{actor}" in messages reads as the name
        return self.name


# The workbench's own actors. Their role is "system": the role policy allows them everything
# (they only ever run in-process, never from a login).
SYSTEM = {name: Principal(name, "system", "system") for name in RESERVED_NAMES}

Actor = Union[Principal, str]


def actor_name(actor: Actor) -> str:
    """The name recorded for `actor` (a Principal's name, or the string itself)."""
    return actor.name if isinstance(actor, Principal) else str(actor)


def check_name(name: object, what: str = "name") -> str:
    """`name` if it is a valid human name; InvalidName (one line) when blank, padded, odd or reserved."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidName(f"a {what} must not be blank")
    if name != name.strip():
        raise InvalidName(f"{what} {name[:40]!r} has leading or trailing whitespace")
    if not NAME_RE.fullmatch(name):
        raise InvalidName(f"{what} {name[:40]!r} is not allowed: use 1 to 100 letters, digits, '.', '_', '@' or '-', "
                         f"starting with a letter or digit")
    if name.lower() in RESERVED_NAMES:
        raise InvalidName(f"{what} {name!r} is reserved for the workbench's own jobs "
                         f"({', '.join(RESERVED_NAMES)})")
    return name


def local_principal(name: str) -> Principal:
    """The command line's principal on a store without accounts: `name` with the admin role."""
    return Principal(check_name(name), "admin", "local")
