from __future__ import annotations

import pytest

from tokenmill.catalog.card import ModelCard, family_models, parse_family
from tokenmill.errors import InvalidRequest

FAMILY = """
family = "Tiny"
license = "MIT"
languages = ["en"]

[models.tiny-chat]
display_name = "Tiny Chat"
task = "chat"
capabilities = ["chat", "completion"]
intended_use = "tests"
source = { package = "p", resource = "f.gguf" }
aliases = ["tiny"]

[models.tiny-embed]
task = "embeddings"
engine = "tokenmill-embed"
license = "Apache-2.0"
capabilities = ["embeddings"]
"""


def test_a_family_file_gives_each_model_the_shared_fields_unless_overridden() -> None:
    chat, embed = parse_family(FAMILY, "tiny.toml")
    assert (chat.id, chat.task, chat.engine, chat.aliases) == (
        "tiny-chat",
        "chat",
        "tokenmill",
        ("tiny",),
    )
    assert chat.card.name == "Tiny Chat"
    assert (chat.card.family, chat.card.license, chat.card.languages) == ("Tiny", "MIT", ("en",))
    assert chat.source == {"package": "p", "resource": "f.gguf"}
    assert (embed.card.name, embed.card.license, embed.engine) == (
        "tiny-embed",
        "Apache-2.0",
        "tokenmill-embed",
    )


def test_an_unknown_task_or_capability_is_refused() -> None:
    with pytest.raises(ValueError, match="task"):
        parse_family('[models.x]\ntask = "dance"\n', "bad.toml")
    with pytest.raises(InvalidRequest, match="capabilities"):
        ModelCard.from_json({"name": "x", "capabilities": ["telepathy"]})


def test_facts_fill_only_what_people_left_empty_and_measured_figures_merge() -> None:
    card = ModelCard(name="m", license="MIT", parameters=None)
    merged = card.merged({"license": "other", "parameters": 135, "unknown": 1})
    assert (merged.license, merged.parameters) == ("MIT", 135)
    measured = merged.with_measured({"ttft_ms": 10.0}).with_measured({"tokens_per_second": 90.0})
    assert measured.measured == {"ttft_ms": 10.0, "tokens_per_second": 90.0}
    assert ModelCard.from_json(measured.as_json()) == measured


def test_the_shipped_family_files_parse_and_describe_each_bundled_model() -> None:
    models = family_models()
    assert {"smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2"} <= set(models)
    for model in models.values():
        card = model.card
        assert card.license and card.intended_use and card.limitations and card.capabilities
