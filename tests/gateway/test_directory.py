from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.gateway.support import principal
from tokenmill.control.keys import Role
from tokenmill.errors import ModelNotFound
from tokenmill.gateway.directory import ModelDirectory, ModelEntry

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PUBLIC = ModelEntry("public", "chat", 2048, None, NOW)
PRIVATE = ModelEntry("private", "chat", 2048, "ten_a", NOW)


def test_public_models_are_visible_to_everyone_private_only_to_the_owner() -> None:
    directory = ModelDirectory([PUBLIC, PRIVATE])
    assert {e.id for e in directory.visible(principal("ten_a"))} == {"public", "private"}
    assert {e.id for e in directory.visible(principal("ten_b"))} == {"public"}
    admin = principal("ten_x", role=Role.PLATFORM_ADMIN)
    assert {e.id for e in directory.visible(admin)} == {"public", "private"}


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
    assert [e.id for e in directory.visible(limited)] == ["private"]
    with pytest.raises(ModelNotFound):
        directory.resolve("public", limited)


def test_replace_swaps_the_whole_view() -> None:
    directory = ModelDirectory([PUBLIC])
    directory.replace([PRIVATE])
    assert [e.id for e in directory.visible(principal("ten_a"))] == ["private"]
