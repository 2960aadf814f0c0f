"""Principals and recorders for gateway unit tests."""

from __future__ import annotations

from tokenmill.billing.usage import UsageEvent
from tokenmill.control.keys import Principal, Role


def principal(
    tenant_id: str = "ten_a",
    role: Role = Role.INFERENCE,
    allowed_models: tuple[str, ...] | None = None,
) -> Principal:
    return Principal(
        tenant_id=tenant_id,
        key_id=f"key_{tenant_id}",
        key_name="test",
        role=role,
        scopes=("*",),
        allowed_models=allowed_models,
        expires_at=None,
        revoked=False,
    )


class ListSink:
    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    def record(self, event: UsageEvent) -> None:
        self.events.append(event)
