"""`configs/web.yaml`: how the web UI keeps sessions, refuses cross-site requests, throttles
logins and trusts a single-sign-on reverse proxy. Validated on load; errors name file and field.

A configs folder without a web.yaml gets these defaults (the safe ones: 30-minute idle timeout,
SameSite=Strict cookies, no trusted proxy, single sign-on off), so older config folders keep
working.
"""
from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .config import DEFAULT_CONFIG_DIR, config_file, load_model

WEB_FILE = "web.yaml"
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class SessionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Bounded so a session's deadline is a date: past about 2.7 million years timedelta overflows
    # and every sign-in (or request) ended in a server error.
    idle_timeout_seconds: int = Field(1800, gt=0, le=7 * 86400)  # no request that counts as activity for this long: signed out
    absolute_timeout_hours: float = Field(12, gt=0, le=366 * 24)  # signed out this long after signing in, active or not
    # Served over https the cookie is `__Host-<cookie_name>_<port>` (web_guard); a name of its own
    # with a `__Host-` / `__Secure-` prefix is refused: over plain http browsers drop such a cookie
    # (no sign-in ever held) and over https it would be doubly prefixed.
    cookie_name: str = Field("wb_session", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    same_site: Literal["strict", "lax"] = "strict"
    # auto: Secure when the request came over https (directly or per a trusted proxy's X-Forwarded-Proto)
    secure_cookies: Literal["auto", "always"] = "auto"

    @field_validator("cookie_name")
    @classmethod
    def _unprefixed(cls, v: str) -> str:
        if v.lower().startswith(("__host-", "__secure-")):
            raise ValueError(f"{v!r}: leave out the __Host- / __Secure- prefix (added over https by itself)")
        return v


class LoginSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Per client address, on top of the per-account lockout of core.accounts (5 in a row -> 15 min).
    max_failures_per_client: int = Field(20, gt=0)
    window_seconds: int = Field(900, gt=0, le=7 * 86400)


class SsoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    user_header: str = Field("X-Forwarded-User", pattern=r"^[A-Za-z0-9-]{1,64}$")
    logout_url: Optional[str] = None  # where "Log out" sends the browser (the proxy's sign-out), e.g. /oauth2/sign_out

    @field_validator("logout_url")
    @classmethod
    def _logout_url(cls, v: Optional[str]) -> Optional[str]:
        """A path on this site or an http(s) URL, printable ASCII without spaces: it becomes a
        link's href and a Location header, where `javascript:` runs script in the signed-in page,
        a line break splits the header and a non-Latin-1 character made every SSO logout fail."""
        if v is None:
            return v
        if not re.fullmatch(r"[!-~]{1,2000}", v) or not (
                (v.startswith("/") and not v.startswith("//")) or v.lower().startswith(("https://", "http://"))):
            raise ValueError(f"{v[:80]!r} is not a path such as /oauth2/sign_out or an https:// URL "
                             f"(printable ASCII, no spaces)")
        return v


class WebConfig(BaseModel):
    """The web server's security settings (see configs/web.yaml for each key)."""

    model_config = ConfigDict(extra="forbid")
    session: SessionSettings = Field(default_factory=SessionSettings)
    login: LoginSettings = Field(default_factory=LoginSettings)
    # Extra origins (scheme://host[:port]) allowed to send state-changing requests, besides the
    # server's own (the Host header, or a trusted proxy's X-Forwarded-Host / -Proto).
    allowed_origins: list[str] = Field(default_factory=list)
    # Reverse proxies (addresses or CIDRs) whose X-Forwarded-* headers and SSO header are believed.
    trusted_proxies: list[Network] = Field(default_factory=list)
    sso: SsoSettings = Field(default_factory=SsoSettings)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, v: object) -> object:
        if not isinstance(v, list):
            return v
        out = []
        for i, cidr in enumerate(v):
            try:
                net = ipaddress.ip_network(str(cidr).strip(), strict=False)
            except ValueError:
                raise ValueError(f"item {i}: {cidr!r} is not an IP address or CIDR (e.g. 10.0.0.5/32)") from None
            if net.prefixlen == 0:  # every address: anyone could send the SSO header and sign in as anyone
                raise ValueError(f"item {i}: {cidr!r} trusts every address; name the proxies themselves")
            out.append(net)
        return out

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for o in v:
            if (not o.startswith(("http://", "https://")) or o.rstrip("/").count("/") != 2
                    or not re.fullmatch(r"[A-Za-z0-9.:/\[\]-]+", o)):
                raise ValueError(f"{o!r} is not an origin like https://workbench.example.org")
        return [o.rstrip("/").lower() for o in v]

    @model_validator(mode="after")
    def _sso_needs_proxies(self) -> "WebConfig":
        if self.sso.enabled and not self.trusted_proxies:
            raise ValueError("sso.enabled needs trusted_proxies: the SSO header is believed only from those "
                             "addresses, never from anyone else")
        return self

    def trusted(self, address: Optional[str]) -> bool:
        """Whether `address` (a peer IP) is one of the trusted proxies."""
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)


def load_web_config(path: Optional[Union[str, os.PathLike[str]]] = None) -> WebConfig:
    """`web.yaml` from a file or configs folder; a configs folder without one gets the defaults."""
    p = config_file(path, WEB_FILE)
    if path is not None and Path(path).is_dir() and not p.exists():
        p = DEFAULT_CONFIG_DIR / WEB_FILE
    return load_model(p, WebConfig)
