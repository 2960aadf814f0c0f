from __future__ import annotations

import pytest

from tokenmill.catalog.card import ModelCard
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import Conflict, InvalidRequest, ModelNotFound
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
    version = second.version()
    assert version is not None
    assert (version.version, version.artifact, version.served_name) == ("1", "/b.gguf", "m@1")


def test_a_model_may_belong_to_a_tenant(database: Database, clock: ManualClock) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    models = ModelRepository(database, clock)
    info = models.register(
        "private", task="chat", artifact="/p.gguf", context_tokens=512, owner_tenant_id=tenant.id
    )
    assert info.owner_tenant_id == tenant.id
    assert models.update("private", published=True).published


def test_versions_and_the_default(database: Database, clock: ManualClock) -> None:
    models = ModelRepository(database, clock)
    models.register("m", task="chat", artifact="/a.gguf", context_tokens=2048)
    clock.advance(1)
    v2 = models.add_version("m", "2", artifact="/b.gguf", settings={"context_tokens": 1024})
    assert models.require("m").default_version == "1"
    assert [v.version for v in models.require("m").versions] == ["1", "2"]
    assert v2.context_tokens(2048) == 1024
    assert models.update("m", default_version="2").default_version == "2"
    with pytest.raises(Conflict):
        models.add_version("m", "2", artifact="/c.gguf")
    with pytest.raises(InvalidRequest):
        models.update("m", default_version="9")
    with pytest.raises(InvalidRequest):
        models.add_version("m", "bad version", artifact="/c.gguf")
    with pytest.raises(ModelNotFound):
        models.add_version("absent", "1", artifact="/c.gguf")


def test_an_alias_points_at_a_version_and_moves(database: Database, clock: ManualClock) -> None:
    models = ModelRepository(database, clock)
    models.register("a", task="chat", artifact="/a.gguf", context_tokens=2048)
    models.register("b", task="chat", artifact="/b.gguf", context_tokens=2048)
    models.set_alias("chat-small", "a", "1")
    moved = models.set_alias("chat-small", "b", "1")
    assert (moved.model_id, moved.version) == ("b", "1")
    assert [(a.name, a.model_id) for a in models.aliases()] == [("chat-small", "b")]
    with pytest.raises(InvalidRequest):
        models.set_alias("chat-small", "b", "7")
    with pytest.raises(Conflict):
        models.set_alias("a", "b", "1")  # a model's own name
    with pytest.raises(InvalidRequest):
        models.set_alias("Bad Name", "b", "1")
    models.delete_alias("chat-small")
    assert models.aliases() == []


def test_a_tenants_alias_cannot_be_taken_over(database: Database, clock: ManualClock) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    models = ModelRepository(database, clock)
    models.register("a", task="chat", artifact="/a.gguf", context_tokens=2048)
    models.set_alias("ours", "a", "1", owner_tenant_id=tenant.id)
    with pytest.raises(Conflict):
        models.set_alias("ours", "a", "1")


def test_the_card_joins_words_facts_and_measured_figures(
    database: Database, clock: ManualClock
) -> None:
    models = ModelRepository(database, clock)
    models.register(
        "m",
        task="chat",
        artifact="/a.gguf",
        context_tokens=2048,
        card=ModelCard(name="M", license="MIT"),
        sha256="ab" * 32,
        size_bytes=1000,
        facts={"parameters": 135, "license": "other"},
    )
    models.record_measured("m", "1", {"tokens_per_second": 99.5})
    info = models.require("m")
    card = info.card_of(info.version())
    assert (card.name, card.license, card.parameters) == ("M", "MIT", 135)
    assert (card.sha256, card.file_size_bytes) == ("ab" * 32, 1000)
    assert card.measured == {"tokens_per_second": 99.5}
