from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.gateway.support import principal
from tokenmill.control.keys import Role
from tokenmill.errors import ModelNotFound
from tokenmill.gateway.directory import Alias, ModelDirectory, ModelEntry

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PUBLIC = ModelEntry("public", "chat", 2048, None, NOW)
PRIVATE = ModelEntry("private", "chat", 2048, "ten_a", NOW)


def names(directory: ModelDirectory, who: object) -> set[str]:
    return {name for name, _ in directory.visible(who)}  # type: ignore[arg-type]


def test_public_models_are_visible_to_everyone_private_only_to_the_owner() -> None:
    directory = ModelDirectory([PUBLIC, PRIVATE])
    assert names(directory, principal("ten_a")) == {"public", "private"}
    assert names(directory, principal("ten_b")) == {"public"}
    admin = principal("ten_x", role=Role.PLATFORM_ADMIN)
    assert names(directory, admin) == {"public", "private"}


def test_a_published_private_model_is_visible_to_all() -> None:
    published = ModelEntry("mine", "chat", 2048, "ten_a", NOW, published=True)
    directory = ModelDirectory([published])
    assert directory.resolve("mine", principal("ten_b")) is published


def test_a_hidden_model_is_indistinguishable_from_a_missing_one() -> None:
    directory = ModelDirectory([PUBLIC, PRIVATE])
    with pytest.raises(ModelNotFound) as hidden:
        directory.resolve("private", principal("ten_b"))
    with pytest.raises(ModelNotFound) as missing:
        directory.resolve("absent", principal("ten_b"))
    assert hidden.value.param == missing.value.param == "model"
    assert hidden.value.status == 404


def test_allowed_models_restrict_a_key() -> None:
    directory = ModelDirectory([PUBLIC, PRIVATE])
    limited = principal("ten_a", allowed_models=("private",))
    assert names(directory, limited) == {"private"}
    with pytest.raises(ModelNotFound):
        directory.resolve("public", limited)


def test_replace_swaps_the_whole_view() -> None:
    directory = ModelDirectory([PUBLIC])
    directory.replace([PRIVATE])
    assert names(directory, principal("ten_a")) == {"private"}


V1 = ModelEntry("chat", "chat", 2048, None, NOW, version="1")
V2 = ModelEntry("chat", "chat", 4096, None, NOW, version="2")


def test_a_name_means_the_default_version_and_name_at_version_a_given_one() -> None:
    directory = ModelDirectory([V1, V2], defaults={"chat": "2"})
    anyone = principal("ten_a")
    assert directory.resolve("chat", anyone) is V2
    assert directory.resolve("chat@1", anyone) is V1
    assert directory.resolve("chat@1", anyone).served_name == "chat@1"
    with pytest.raises(ModelNotFound):
        directory.resolve("chat@3", anyone)


def test_an_alias_names_a_version_and_moves_without_a_new_directory() -> None:
    directory = ModelDirectory([V1, V2], [Alias("chat-small", "chat", "1")])
    anyone = principal("ten_a")
    assert directory.resolve("chat-small", anyone) is V1
    directory.replace([V1, V2], [Alias("chat-small", "chat", "2")])
    assert directory.resolve("chat-small", anyone) is V2
    assert ("chat-small", V2) in directory.visible(anyone)


def test_a_tenants_alias_is_its_own() -> None:
    directory = ModelDirectory([V1], [Alias("ours", "chat", "1", owner_tenant_id="ten_a")])
    assert directory.resolve("ours", principal("ten_a")) is V1
    with pytest.raises(ModelNotFound):
        directory.resolve("ours", principal("ten_b"))
    assert "ours" not in names(directory, principal("ten_b"))
