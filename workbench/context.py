"""The application context: one object per process that every command, UI callback and demo
step is handed explicitly.

It holds where the data lives, the store (opened on first use), the configs folder and each
config loaded once and checked against the taxonomy, and the plugin manager. Nothing reaches the
floors below through environment variables: the context reads its options once and passes each
service exactly what it needs, the principal included.

The principal (`principal()`): on a store with accounts, the user of the token the command line
was given (`--token` / `WORKBENCH_TOKEN`, read once by the CLI group); on a store without any,
the local user (`--as NAME`, else the OS user) with the admin role. It is resolved on every call
(a disabled user or a revoked token stops working at once). `roles()` loads `roles.yaml` and
registers the role policy on the plugin manager, once per process.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:  # pragma: no cover
    import pluggy

    from core.permissions import RolesConfig
    from core.principals import Principal

    from clustering.config import CampaignSettings
    from core.quarantine import RetentionConfig
    from core.store import Store
    from core.taxonomy import Taxonomy
    from labeling.queue_config import QueueConfig
    from workbench.learning import RetrainJob
    from labeling.review_config import ReviewSettings
    from models.config import ModelsConfig
    from core.web_config import WebConfig
    from labeling.rescore import RescoreJob
    from workbench.webhooks import WebhookConfig


log = logging.getLogger(__name__)
# How long `close()` waits, in all, for the background threads of the context to end.
CLOSE_WAIT_SECONDS = 15.0


class AppContext:
    """Store, configs and plugins for one process; configs load lazily, once, validated."""

    def __init__(self, data_dir: Optional[str | Path] = None, db: Optional[str] = None,
                 config_dir_: Optional[str | Path] = None, store: Optional["Store"] = None,
                 audit_key_file: Optional[str | Path] = None, token: Optional[str] = None,
                 on_open: Optional[Callable[["AppContext"], None]] = None) -> None:
        self.data_dir = Path(data_dir) if data_dir else None
        from core.config import config_dir  # pydantic and yaml: not for `workbench --help`

        self.db = db
        self.audit_key_file = audit_key_file
        self.config_dir = config_dir(config_dir_).resolve()
        self._store = store
        self._configs: dict[str, Any] = {}
        self.token = token
        # Called once, right after the store is opened (the command line checks the principal there).
        self.on_open = on_open
        # The latest rescoring of the open cases after an automatic promotion (`workbench.learning`),
        # for the API to report its progress; None until one starts in this process.
        self.rescore_job: Optional["RescoreJob"] = None
        # The latest retrain started from the web UI (`workbench.learning.start_retrain`), and the
        # lock that keeps one retrain at a time in this process (the automatic one takes it too).
        self.retrain_job: Optional["RetrainJob"] = None
        self.retrain_lock = threading.Lock()
        # Background threads started for this context (`track`): stopped and joined by `close()`.
        self._background: list[tuple[threading.Thread, Optional[threading.Event]]] = []

    def store(self) -> "Store":
        if self._store is None:
            from core.store import open_store

            # A data dir that cannot be created, a full disk, a file that is no database: open_store's
            # own one-line StoreError, as for every other caller.
            self._store = open_store(self.data_dir, self.db, audit_key_file=self.audit_key_file)
            if self.on_open is not None:
                try:
                    self.on_open(self)
                except BaseException:
                    self._store.dispose()
                    self._store = None
                    raise
        return self._store

    def roles(self) -> "RolesConfig":
        """`roles.yaml`; the role policy (`core.permissions.RolePolicy`) of this context is put on
        the plugin manager, replacing any other, at every call (so at every `principal()`)."""
        from core.permissions import RolePolicy, load_roles

        roles = self._once("roles", lambda: load_roles(self.config_dir))
        policy = self._once("role_policy", lambda: RolePolicy(roles))
        # The policy is one per process: another context (other configs) may have replaced it
        # since, and this one's checks must not run under that context's roles.
        if self.plugins.get_plugin(RolePolicy.PLUGIN_NAME) is not policy:
            policy.install(self.plugins)
        return roles

    def has_users(self) -> bool:
        from core.accounts import has_users

        return has_users(self.store())

    def principal(self, as_name: Optional[str] = None) -> "Principal":
        """Who acts (see the module notes). `as_name` (`--as`) names the local user on a store
        without accounts; with accounts it must be absent or the token's own user.
        Raises `core.accounts.AccountError` / `core.principals.InvalidName` (one line)."""
        from core.accounts import AccountError, principal_for_token
        from core.principals import InvalidName, check_name, local_principal

        self.roles()
        store = self.store()
        if as_name is not None:
            check_name(as_name, "--as name")
        if self.token:
            who = principal_for_token(store, self.token)
            if as_name is not None and as_name != who.name:
                raise AccountError(f"--as {as_name} does not match the token's user {who.name}: "
                                   f"leave --as out, or use {as_name}'s own token")
            return who
        if self.has_users():
            raise AccountError("this store has accounts: set WORKBENCH_TOKEN (or pass --token) to a token "
                               "from `workbench tokens create NAME`")
        if as_name is not None:
            return local_principal(as_name)
        import getpass

        try:
            name = getpass.getuser()
        except Exception:  # no user name in the environment or the password database
            name = "local"
        try:
            return local_principal(name)
        except InvalidName as exc:
            raise InvalidName(f"the OS user cannot act here ({exc}): pass --as NAME") from None

    def require(self, action: str, resource: Optional[str] = None, as_name: Optional[str] = None) -> "Principal":
        """The principal, refused (PermissionDenied) unless the roles allow `action`."""
        from core.hooks import check_permission

        who = self.principal(as_name)
        check_permission(who, action, resource)
        return who

    def track(self, thread: threading.Thread, stop: Optional[threading.Event] = None) -> None:
        """Make `thread` (a daemon working on this context's store) part of the context: `close()`
        sets its `stop` event and waits for it, so it does not write to the store after close."""
        self._background.append((thread, stop))

    def close(self, wait: float = CLOSE_WAIT_SECONDS) -> None:
        """Stop the background work of this context, then release the store.

        Tracked threads (`track`: the webhook worker) are signalled to stop. They, and the running
        retrain (`retrain_job`) and rescoring (`rescore_job`), are joined for `wait` seconds in all:
        those two have no stop signal (`retrain_and_gate` and `rescore_open_cases` run to their end),
        so close waits for them, bounded; one still running is logged by name and cut at the
        process's exit as by a crash, which both survive (each rescored batch is its own
        transaction and `serve` rescores the stale open cases when it starts again; a cut retrain
        promotes nothing). Giving them a stop signal is for `labeling.rescore` and
        `workbench.learning`, which start them."""
        for _thread, stop in self._background:
            if stop is not None:
                stop.set()
        jobs = [(t.name, t) for t, _stop in self._background]
        for name, job in (("retrain", self.retrain_job), ("rescoring", self.rescore_job)):
            thread = getattr(job, "thread", None)
            if thread is not None:
                jobs.append((name, thread))
        deadline = time.monotonic() + wait
        running = []
        for name, thread in jobs:
            if thread is threading.current_thread():  # closed from inside the job: it ends after this
                continue
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                running.append(name)
        if running:
            log.warning("closing the workbench with %s still running after %g s: cut at exit, as by a crash",
                        ", ".join(running), wait)
        self._background = [(t, stop) for t, stop in self._background if t.is_alive()]
        if self._store is not None:
            self._store.dispose()

    def config_path(self, name: str) -> Path:
        return self.config_dir / name

    def _once(self, name: str, load: Callable[[], Any]) -> Any:
        """Load a config the first time it is asked for; the same object afterwards."""
        if name not in self._configs:
            self._configs[name] = load()
        return self._configs[name]

    def taxonomy(self) -> "Taxonomy":
        from core.taxonomy import load_taxonomy

        return self._once("taxonomy", lambda: load_taxonomy(self.config_dir))

    def queues(self) -> "QueueConfig":
        """`queues.yaml`, checked against the taxonomy."""
        from labeling.queue_config import load_queue_config

        return self._once("queues", lambda: load_queue_config(self.config_dir, taxonomy=self.taxonomy()))

    def review(self) -> "ReviewSettings":
        """`review.yaml`, checked against the taxonomy and the queues (its timers, its break queue)."""
        from labeling.review_config import load_review_settings

        return self._once("review", lambda: load_review_settings(self.config_dir, taxonomy=self.taxonomy(),
                                                                  queues=self.queues()))

    def campaigns(self) -> "CampaignSettings":
        """`campaigns.yaml`."""
        from clustering.config import load_campaign_settings

        return self._once("campaigns", lambda: load_campaign_settings(self.config_dir))

    def models(self) -> "ModelsConfig":
        """`models.yaml`."""
        from models.config import load_models_config

        return self._once("models", lambda: load_models_config(self.config_dir))

    def retention(self) -> "RetentionConfig":
        """`retention.yaml` (how long the quarantine keeps raw rows)."""
        from core.quarantine import load_retention

        return self._once("retention", lambda: load_retention(self.config_dir))

    def webhooks(self) -> "WebhookConfig":
        """`webhooks.yaml` (enforcement hand-off), each endpoint's secret read once, here, from the
        environment variable or file it names; services get the loaded config."""
        import os

        from workbench.webhooks import load_webhooks

        return self._once("webhooks", lambda: load_webhooks(self.config_dir, os.environ))

    def web(self) -> "WebConfig":
        """`web.yaml` (web sessions, cross-site protection, login throttle, single-sign-on proxy)."""
        from core.web_config import load_web_config

        return self._once("web", lambda: load_web_config(self.config_dir))

    @property
    def plugins(self) -> "pluggy.PluginManager":
        from core.hooks import pm

        return pm

    def describe(self) -> dict[str, Any]:
        return {"config_dir": str(self.config_dir), "data_dir": str(self.data_dir) if self.data_dir else None}
