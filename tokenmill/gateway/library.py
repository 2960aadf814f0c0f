"""Keeps the gateway's model directory in step with the library in the database.

Every gateway reloads the whole library each interval (it is small: rows per model version
and alias), so an alias moved or a model published anywhere takes effect everywhere within
one interval, without a restart.
"""

from __future__ import annotations

import asyncio
import logging

from tokenmill.catalog.card import ADAPTER_ENGINE
from tokenmill.catalog.repository import ModelRepository
from tokenmill.gateway.directory import Alias, ModelDirectory, ModelEntry

log = logging.getLogger(__name__)


def load_directory(
    models: ModelRepository, directory: ModelDirectory | None = None
) -> ModelDirectory:
    """Fills ``directory`` (or a new one) from the library: every version, every alias."""
    entries: list[ModelEntry] = []
    defaults: dict[str, str] = {}
    for model in models.list():
        if model.default_version:
            defaults[model.id] = model.default_version
        for version in model.versions:
            adapted = model.engine == ADAPTER_ENGINE
            entries.append(
                ModelEntry(
                    id=model.id,
                    task=model.task,
                    context_tokens=version.context_tokens(model.context_tokens),
                    owner_tenant_id=model.owner_tenant_id,
                    created_at=model.created_at,
                    version=version.version,
                    published=model.published,
                    card=model.card_of(version),
                    base=version.settings.get("base") if adapted else None,
                    adapter=version.settings.get("adapter") if adapted else None,
                )
            )
    aliases = [Alias(a.name, a.model_id, a.version, a.owner_tenant_id) for a in models.aliases()]
    if directory is None:
        return ModelDirectory(entries, aliases, defaults)
    directory.replace(entries, aliases, defaults)
    return directory


class LibraryWatcher:
    def __init__(
        self, models: ModelRepository, directory: ModelDirectory, interval_seconds: float = 1.0
    ) -> None:
        self._models = models
        self._directory = directory
        self._interval_seconds = interval_seconds

    def poll_once(self) -> None:
        load_directory(self._models, self._directory)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_seconds)
            try:
                await asyncio.to_thread(self.poll_once)
            except Exception:
                log.exception("reloading the model library failed; retrying")
