"""Extension points (pluggy, as pytest and datasette use it): the hook specifications and the
plugin manager.

A plugin is a module or object with functions marked `@hookimpl` named after the specs below;
installed packages register one through the `workbench` entry-point group, and the application
registers its own command and demo-step modules the same way. The domain calls
`decision_recorded` after every committed decision (the webhook delivery hangs here) and asks
`permission_allowed` before every state-changing action (roles hang here).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import pluggy

from .principals import Actor, Principal, actor_name

PROJECT = "workbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class DemoStep(NamedTuple):
    """One step of `workbench demo`: run in ascending `order`, skippable by `name`."""

    name: str
    order: int
    run: Callable[[Any, Callable[..., None]], dict[str, Any]]  # (application context, echo) -> summary


class PermissionDenied(PermissionError):
    """A plugin's `permission_allowed` refused the action; the message names actor and action."""


class HookSpecs:
    @hookspec(historic=True)
    def register_commands(self, cli: Any) -> None:
        """Add click commands or groups to the `workbench` command group (a plugin registered
        after start-up is called too: the hook is historic)."""

    @hookspec
    def demo_steps(self) -> list[DemoStep]:
        """Steps of `workbench demo` after ingest (each plugin returns a list)."""

    @hookspec
    def decision_recorded(self, decision_ids: list[int], case: dict[str, Any], actor: str,
                          kind: str, label: str, action: str) -> None:
        """Called once per committed decision batch (a case decided, corrected, an appeal resolved)."""

    @hookspec(firstresult=True)
    def permission_allowed(self, actor: Actor, action: str, resource: Optional[str]) -> Optional[bool]:
        """False to refuse `actor` (a `core.principals.Principal`, or a plain name from a trusted
        in-process caller) `action` on `resource`; True or None to let it through. Every plugin is
        asked (`check_permission`) and any refusal stands: a True never overrides another plugin's
        False, and an answer that is not True, False or None, or a plugin that raises, refuses.
        The roles matrix (`core.permissions.RolePolicy`) is the built-in implementation."""


def make_plugin_manager(entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with the specs above and, by default, the installed `workbench` plugins."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(HookSpecs)
    if entry_points:
        pm.load_setuptools_entrypoints(PROJECT)
    return pm


# The process-wide manager, as datasette keeps one: the domain fires its hooks on it and the
# application registers its plugins on it at start-up.
pm = make_plugin_manager()


def check_permission(actor: Actor, action: str, resource: Optional[str] = None) -> None:
    """Raise PermissionDenied when any plugin refuses; allowed when every plugin abstains or allows.

    Fails closed: every `permission_allowed` implementation is asked in pluggy's order (the role
    policy first), and the first refusal stands whatever the others answer. pluggy's own
    `firstresult` call let a plugin answering True first (a second `tryfirst` one) override the
    roles' refusal, and a truthy or falsy non-bool (0, "no", []) read as allowed; a plugin that
    raised was a 500 with its traceback in the log and nothing said to the client. A non-bool
    answer or a raise is now a refusal naming the plugin, one line (wrappers only observe: skipped).

    The message names who, the action and the permission missing, e.g. "bob (analyst) may not
    promote model_version x: needs permission 'promote' (configs/roles.yaml)"."""
    why = _refused_by(actor, action, resource)
    if why is not None:
        from .text import one_line

        who = f"{actor.name} ({actor.role})" if isinstance(actor, Principal) else actor
        what = f" {one_line(str(resource), 200)}" if resource else ""  # a hostile item id: one short line
        raise PermissionDenied(f"{who} may not {action}{what}: {why}")


def _refused_by(actor: Actor, action: str, resource: Optional[str]) -> Optional[str]:
    """Why the plugins refuse (one line), or None when none does; see `check_permission`."""
    import logging

    from .text import one_line

    kwargs = {"actor": actor, "action": action, "resource": resource}
    for impl in reversed(pm.hook.permission_allowed.get_hookimpls()):  # pluggy's call order
        if getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False):
            continue
        name = impl.plugin_name if not impl.plugin_name.isdigit() else \
            getattr(impl.plugin, "__name__", type(impl.plugin).__name__)  # registered without a name
        try:
            answer = impl.function(*[kwargs[a] for a in impl.argnames])
        except Exception as exc:  # noqa: BLE001 - a failing policy refuses, it never lets through
            # the client hears the plugin and the exception's type; its message (maybe internals) is logged
            logging.getLogger("workbench.plugins").error(one_line(
                f"permission plugin {name} failed on {action}: {type(exc).__name__}: {exc}", 300))
            return one_line(f"permission plugin {name} failed ({type(exc).__name__}); refused until it is fixed", 300)
        if answer is False:
            return f"needs permission '{action}' (configs/roles.yaml)"
        if answer is not None and answer is not True:
            why = one_line(f"permission plugin {name} answered {type(answer).__name__}, not True, False or None; "
                           "refused until it is fixed", 300)
            logging.getLogger("workbench.plugins").error(why)
            return why
    return None


def decision_recorded(decision_ids: list[int], case: dict[str, Any], actor: Actor, kind: str,
                      label: str, action: str) -> list[str]:
    """Tell every plugin about committed decisions (after the transaction, never inside it).

    The decisions are stored by then: a plugin that raises is logged (one line) and the next one
    still called, never raised to the caller, whose screen would say "not saved" over a saved
    decision (and the analyst decide it again). Returns the one-line failures, one per plugin."""
    import logging

    from .text import one_line

    kwargs = {"decision_ids": list(decision_ids), "case": case, "actor": actor_name(actor), "kind": kind,
              "label": label, "action": action}
    failed: list[str] = []
    for impl in reversed(pm.hook.decision_recorded.get_hookimpls()):  # pluggy's order: last registered first
        try:
            impl.function(*[kwargs[a] for a in impl.argnames])
        except Exception as exc:  # noqa: BLE001 - a plugin's failure must not read as a lost decision
            failed.append(one_line(f"plugin {impl.plugin_name}: decision_recorded failed after decisions "
                                   f"{kwargs['decision_ids'][:5]} were stored: {type(exc).__name__}: {exc}", 300))
            logging.getLogger("workbench.plugins").error(failed[-1])
    return failed
