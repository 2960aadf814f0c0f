from __future__ import annotations

from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.store.db import Database


def test_register_adds_then_updates(database: Database, clock: ManualClock) -> None:
    models = ModelRepository(database, clock)
    first = models.register("m", task="chat", artifact="/a.gguf", context_tokens=2048)
    clock.advance(5)
    second = models.register("m", task="chat", artifact="/b.gguf", context_tokens=4096)
    assert second.created_at == first.created_at
    assert (second.artifact, second.context_tokens) == ("/b.gguf", 4096)
    assert [m.id for m in models.list()] == ["m"]
    assert models.get("m") == second
    assert models.get("absent") is None


def test_a_model_may_belong_to_a_tenant(database: Database, clock: ManualClock) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    models = ModelRepository(database, clock)
    info = models.register(
        "private", task="chat", artifact="/p.gguf", context_tokens=512, owner_tenant_id=tenant.id
    )
    assert info.owner_tenant_id == tenant.id
