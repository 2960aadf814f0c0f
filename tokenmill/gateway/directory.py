"""The gateway's in-memory view of the model library: which models exist and who may see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tokenmill.control.keys import Principal, Role
from tokenmill.errors import ModelNotFound


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str
    task: str
    context_tokens: int
    owner_tenant_id: str | None
    created_at: datetime

    def visible_to(self, principal: Principal) -> bool:
        if not principal.may_use_model(self.id):
            return False
        if self.owner_tenant_id is None or principal.role == Role.PLATFORM_ADMIN:
            return True
        return self.owner_tenant_id == principal.tenant_id

    def as_openai(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "model",
            "created": int(self.created_at.timestamp()),
            "owned_by": self.owner_tenant_id or "tokenmill",
        }


class ModelDirectory:
    """Replaced whole on change (copy-on-write), so readers on the hot path never lock."""

    def __init__(self, entries: list[ModelEntry] | None = None) -> None:
        self._entries: dict[str, ModelEntry] = {e.id: e for e in entries or []}

    def replace(self, entries: list[ModelEntry]) -> None:
        self._entries = {e.id: e for e in entries}

    def resolve(self, model_id: str, principal: Principal) -> ModelEntry:
        entry = self._entries.get(model_id)
        if entry is None or not entry.visible_to(principal):
            raise ModelNotFound(
                f"The model '{model_id}' does not exist or you do not have access to it.",
                param="model",
            )
        return entry

    def visible(self, principal: Principal) -> list[ModelEntry]:
        return [e for e in self._entries.values() if e.visible_to(principal)]
