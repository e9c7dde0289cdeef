"""The application context: one object per process that every command, UI callback and demo
step is handed explicitly.

It holds where the data lives, the store (opened on first use), the configs folder and each
config loaded once and checked against the taxonomy, and the plugin manager. Nothing reaches the
floors below through environment variables: the context reads its options once and passes each
service exactly what it needs (later, the signed-in principal too).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:  # pragma: no cover
    import pluggy

    from clustering.config import CampaignSettings
    from core.quarantine import RetentionConfig
    from core.store import Store
    from core.taxonomy import Taxonomy
    from labeling.queue_config import QueueConfig
    from labeling.review_config import ReviewSettings
    from models.config import ModelsConfig


class AppContext:
    """Store, configs and plugins for one process; configs load lazily, once, validated."""

    def __init__(self, data_dir: Optional[str | Path] = None, db: Optional[str] = None,
                 config_dir_: Optional[str | Path] = None, store: Optional["Store"] = None,
                 audit_key_file: Optional[str | Path] = None) -> None:
        self.data_dir = Path(data_dir) if data_dir else None
        from core.config import config_dir  # pydantic and yaml: not for `workbench --help`

        self.db = db
        self.audit_key_file = audit_key_file
        self.config_dir = config_dir(config_dir_).resolve()
        self._store = store
        self._configs: dict[str, Any] = {}

    def store(self) -> "Store":
        if self._store is None:
            from core.store import open_store

            self._store = open_store(self.data_dir, self.db, audit_key_file=self.audit_key_file)
        return self._store

    def close(self) -> None:
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
        """`review.yaml`, checked against the taxonomy."""
        from labeling.review_config import load_review_settings

        return self._once("review", lambda: load_review_settings(self.config_dir, taxonomy=self.taxonomy()))

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

    @property
    def plugins(self) -> "pluggy.PluginManager":
        from core.hooks import pm

        return pm

    def describe(self) -> dict[str, Any]:
        return {"config_dir": str(self.config_dir), "data_dir": str(self.data_dir) if self.data_dir else None}
