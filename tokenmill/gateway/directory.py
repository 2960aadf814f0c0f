"""The gateway's in-memory view of the model library: what a model name means, who may see it.

A request names a model (its default version), a version (``name@version``) or an alias
(``chat-small``, pointing at one version). Each names one ``ModelEntry``: a servable version,
whose replicas answer to ``served_name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenmill.catalog.card import ModelCard
from tokenmill.control.keys import Principal, Role
from tokenmill.errors import ModelNotFound


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str
    task: str
    context_tokens: int
    owner_tenant_id: str | None
    created_at: datetime
    version: str = "1"
    published: bool = False
    card: ModelCard | None = None
    base: str | None = None  # a fine-tune: the served name of the base whose replicas run it
    adapter: str | None = None  # ... and the adapter they apply

    @property
    def served_name(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def runs_on(self) -> str:
        """The served name whose replicas answer this model's requests."""
        return self.base or self.served_name

    @property
    def upstream_model(self) -> str:
        """The ``model`` a replica is sent, and answers with: its served name, or a fine-tune's
        own name (OpenAI's ``ft:…``, which the base's replica echoes)."""
        return self.id if self.adapter else self.served_name

    def visible_to(self, principal: Principal) -> bool:
        if not principal.may_use_model(self.id):
            return False
        if self.owner_tenant_id is None or self.published:
            return True
        return principal.role == Role.PLATFORM_ADMIN or self.owner_tenant_id == principal.tenant_id

    def as_openai(self, name: str | None = None, *, card: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": name or self.id,
            "object": "model",
            "created": int(self.created_at.timestamp()),
            "owned_by": self.owner_tenant_id or "tokenmill",
        }
        if card:
            out["version"] = self.version
            out["task"] = self.task
            out["context_tokens"] = self.context_tokens
            out["card"] = (self.card or ModelCard(name=self.id)).as_json()
        return out


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    model_id: str
    version: str
    owner_tenant_id: str | None = None

    def visible_to(self, principal: Principal) -> bool:
        return (
            self.owner_tenant_id is None
            or principal.role == Role.PLATFORM_ADMIN
            or self.owner_tenant_id == principal.tenant_id
        )


class ModelDirectory:
    """Replaced whole on change (copy-on-write), so readers on the hot path never lock.

    ``entries`` holds every version; the first entry given for a model id is its default
    unless ``defaults`` names another version.
    """

    def __init__(
        self,
        entries: list[ModelEntry] | None = None,
        aliases: list[Alias] | None = None,
        defaults: dict[str, str] | None = None,
    ) -> None:
        self._versions: dict[str, ModelEntry] = {}
        self._defaults: dict[str, ModelEntry] = {}
        self._aliases: dict[str, Alias] = {}
        self.replace(entries or [], aliases, defaults)

    def replace(
        self,
        entries: list[ModelEntry],
        aliases: list[Alias] | None = None,
        defaults: dict[str, str] | None = None,
    ) -> None:
        versions = {e.served_name: e for e in entries}
        chosen: dict[str, ModelEntry] = {}
        for entry in entries:
            chosen.setdefault(entry.id, entry)
        for model_id, version in (defaults or {}).items():
            if f"{model_id}@{version}" in versions:
                chosen[model_id] = versions[f"{model_id}@{version}"]
        self._versions, self._defaults = versions, chosen
        self._aliases = {a.name: a for a in aliases or []}

    def resolve(self, name: str, principal: Principal) -> ModelEntry:
        entry = self._find(name, principal)
        if entry is None or not entry.visible_to(principal):
            raise ModelNotFound(
                f"The model '{name}' does not exist or you do not have access to it.",
                param="model",
            )
        return entry

    def lookup(self, name: str) -> ModelEntry | None:
        """A model's default version (or ``id@version``), for the platform's own calls."""
        return self._versions.get(name) if "@" in name else self._defaults.get(name)

    def _find(self, name: str, principal: Principal) -> ModelEntry | None:
        if "@" in name:
            return self._versions.get(name)
        entry = self._defaults.get(name)
        if entry is not None:
            return entry
        alias = self._aliases.get(name)
        if alias is None or not alias.visible_to(principal):
            return None
        return self._versions.get(f"{alias.model_id}@{alias.version}")

    def visible(self, principal: Principal) -> list[tuple[str, ModelEntry]]:
        """Every name this principal may call, with what it names: models, then aliases."""
        names = [(e.id, e) for e in self._defaults.values() if e.visible_to(principal)]
        for alias in self._aliases.values():
            entry = self._versions.get(f"{alias.model_id}@{alias.version}")
            if entry is not None and alias.visible_to(principal) and entry.visible_to(principal):
                names.append((alias.name, entry))
        return names

    def served_names(self) -> set[str]:
        return set(self._versions)
