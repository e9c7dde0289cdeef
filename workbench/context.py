"""The application context: one object per process that every command, UI callback and demo
step is handed explicitly.

It holds where the data lives, the store (opened on first use), the configs folder and each
config loaded once and checked against the taxonomy, and the plugin manager. Nothing reaches the
floors below through environment variables: the context reads its options once and passes each
service exactly what it needs (later, the signed-in principal too).
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    import pluggy

    from clustering.config import CampaignSettings
    from core.store import Store
    from core.taxonomy import Taxonomy
    from labeling.queue_config import QueueConfig
    from labeling.review_config import ReviewSettings
    from models.config import ModelsConfig


class AppContext:
    """Store, configs and plugins for one process; configs load lazily, once, validated."""

    def __init__(self, data_dir: Optional[str | Path] = None, db: Optional[str] = None,
                 config_dir_: Optional[str | Path] = None, store: Optional["Store"] = None) -> None:
        self.data_dir = Path(data_dir) if data_dir else None
        from core.config import config_dir  # pydantic and yaml: not for `workbench --help`

        self.db = db
        self.config_dir = config_dir(config_dir_).resolve()
        self._store = store

    def store(self) -> "Store":
        if self._store is None:
            from core.store import open_store

            self._store = open_store(self.data_dir, self.db)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()

    def config_path(self, name: str) -> Path:
        return self.config_dir / name

    @cached_property
    def _taxonomy(self) -> "Taxonomy":
        from core.taxonomy import load_taxonomy

        return load_taxonomy(self.config_dir)

    def taxonomy(self) -> "Taxonomy":
        return self._taxonomy

    @cached_property
    def _queues(self) -> "QueueConfig":
        from labeling.queue_config import load_queue_config

        return load_queue_config(self.config_dir, taxonomy=self.taxonomy())

    def queues(self) -> "QueueConfig":
        """`queues.yaml`, checked against the taxonomy."""
        return self._queues

    @cached_property
    def _review(self) -> "ReviewSettings":
        from labeling.review_config import load_review_settings

        return load_review_settings(self.config_dir, taxonomy=self.taxonomy())

    def review(self) -> "ReviewSettings":
        """`review.yaml`, checked against the taxonomy."""
        return self._review

    @cached_property
    def _campaigns(self) -> "CampaignSettings":
        from clustering.config import load_campaign_settings

        return load_campaign_settings(self.config_dir)

    def campaigns(self) -> "CampaignSettings":
        """`campaigns.yaml`."""
        return self._campaigns

    @cached_property
    def _models(self) -> "ModelsConfig":
        from models.config import load_models_config

        return load_models_config(self.config_dir)

    def models(self) -> "ModelsConfig":
        """`models.yaml`."""
        return self._models

    @property
    def plugins(self) -> "pluggy.PluginManager":
        from core.hooks import pm

        return pm

    def describe(self) -> dict[str, Any]:
        return {"config_dir": str(self.config_dir), "data_dir": str(self.data_dir) if self.data_dir else None}
