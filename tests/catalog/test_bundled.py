from __future__ import annotations

import pytest

from tokenmill.catalog.bundled import BUNDLED, BundledModel, bundled_model
from tokenmill.errors import ModelNotFound


def test_the_bundled_chat_model_is_found_in_its_package() -> None:
    model = bundled_model("smollm2-135m-instruct")
    path = model.path()
    assert path.is_file()
    assert path.read_bytes()[:4] == b"GGUF"
    assert model.task == "chat"


def test_an_unknown_bundled_model_names_the_known_ones() -> None:
    with pytest.raises(ModelNotFound) as info:
        bundled_model("gpt-17")
    assert all(name in info.value.message for name in BUNDLED)


def test_a_missing_package_is_a_clear_error() -> None:
    ghost = BundledModel("ghost", "chat", 512, "no_such_package_here", "x.gguf")
    with pytest.raises(ModelNotFound) as info:
        ghost.path()
    assert "no_such_package_here" in info.value.message
