"""An App version's configuration: what is refused (naming ``config.<field>``), the defaults
filled in, and how a version and a call's variables become a Responses request."""

from __future__ import annotations

from typing import Any

import pytest

from tokenmill.apps.config import blocked_topic, parse_config, render, variables_of
from tokenmill.errors import InvalidRequest

Json = dict[str, Any]
LOOKUP = {"name": "lookup", "description": "Find an order.", "parameters": {"type": "object"}}
WIKI = {"server_label": "wiki", "allowed_tools": ["search"], "require_approval": "never"}
FULL: Json = {
    "model": "smollm2-135m-instruct",
    "instructions": "You answer questions about {{product}} for {{team}}. Cite your sources.",
    "variables": {"product": "the handbook"},
    "vector_store_ids": ["vs_1"],
    "max_num_results": 5,
    "search": "always",
    "functions": [LOOKUP],
    "mcp": [WIKI],
    "temperature": 0.2,
    "top_p": 0.9,
    "max_output_tokens": 400,
    "guardrails": {"max_output_tokens": 300, "blocked_topics": [" medical advice "]},
    "steps": {"rewrite_model": "gemma-3-270m"},
}


def config(**fields: Any) -> Json:
    return parse_config({"model": "m", **fields})


def refused(raw: Any) -> str | None:
    """The param of the refusal."""
    with pytest.raises(InvalidRequest) as caught:
        parse_config(raw)
    assert caught.value.status == 400
    return caught.value.param


def render_refused(stored: Json, given: Any) -> str | None:
    with pytest.raises(InvalidRequest) as caught:
        render(stored, given)
    assert caught.value.status == 400
    return caught.value.param


def test_a_full_config_is_kept() -> None:
    parsed = parse_config(FULL)
    assert parsed == {
        **FULL,
        "guardrails": {"max_output_tokens": 300, "blocked_topics": ["medical advice"]},
    }


def test_a_minimal_config_gets_the_defaults() -> None:
    assert parse_config({"model": "m"}) == {
        "model": "m",
        "instructions": "",
        "variables": {},
        "vector_store_ids": [],
        "functions": [],
        "mcp": [],
        "search": "auto",
        "guardrails": {"max_output_tokens": None, "blocked_topics": []},
        "steps": {"rewrite_model": None},
    }


def test_parsing_copies_what_it_keeps() -> None:
    raw: Json = {"model": "m", "variables": {"a": "x"}, "vector_store_ids": ["vs_1"]}
    parsed = parse_config(raw)
    raw["variables"]["a"] = "changed"
    raw["vector_store_ids"].append("vs_2")
    assert (parsed["variables"], parsed["vector_store_ids"]) == ({"a": "x"}, ["vs_1"])


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ([], "config"),
        ("m", "config"),
        ({"model": "m", "prompt": "hi"}, "config.prompt"),
        ({"model": "m", "zeta": 1, "alpha": 2}, "config.alpha"),  # the first, by name
        ({}, "config.model"),
        ({"model": ""}, "config.model"),
        ({"model": 7}, "config.model"),
        ({"model": "m", "instructions": 42}, "config.instructions"),
        ({"model": "m", "instructions": {"text": "hi"}}, "config.instructions"),
        ({"model": "m", "instructions": "x" * 32_001}, "config.instructions"),
        ({"model": "m", "variables": "product"}, "config.variables"),
        ({"model": "m", "variables": {"product": 1}}, "config.variables"),
        ({"model": "m", "variables": {"not a name": "x"}}, "config.variables"),
        ({"model": "m", "variables": {"1st": "x"}}, "config.variables"),
        ({"model": "m", "vector_store_ids": "vs_1"}, "config.vector_store_ids"),
        ({"model": "m", "functions": {"name": "f"}}, "config.functions"),
        ({"model": "m", "mcp": "wiki"}, "config.mcp"),
        ({"model": "m", "search": "never"}, "config.search"),
        ({"model": "m", "guardrails": []}, "config.guardrails"),
        ({"model": "m", "guardrails": {"topics": []}}, "config.guardrails"),
        (
            {"model": "m", "guardrails": {"max_output_tokens": 0}},
            "config.guardrails.max_output_tokens",
        ),
        (
            {"model": "m", "guardrails": {"max_output_tokens": True}},
            "config.guardrails.max_output_tokens",
        ),
        (
            {"model": "m", "guardrails": {"max_output_tokens": "400"}},
            "config.guardrails.max_output_tokens",
        ),
        (
            {"model": "m", "guardrails": {"blocked_topics": "medical"}},
            "config.guardrails.blocked_topics",
        ),
        (
            {"model": "m", "guardrails": {"blocked_topics": ["  "]}},
            "config.guardrails.blocked_topics",
        ),
        (
            {"model": "m", "guardrails": {"blocked_topics": ["t"] * 101}},
            "config.guardrails.blocked_topics",
        ),
        ({"model": "m", "steps": "rewrite"}, "config.steps"),
        ({"model": "m", "steps": {"rerank_model": "r"}}, "config.steps"),
        ({"model": "m", "steps": {"rewrite_model": ""}}, "config.steps"),
        ({"model": "m", "steps": {"rewrite_model": 3}}, "config.steps"),
    ],
)
def test_each_bad_field_is_named(raw: Any, param: str) -> None:
    assert refused(raw) == param


@pytest.mark.parametrize(
    "fields",
    [
        {"functions": [{"name": "not a name"}]},
        {"functions": [LOOKUP, LOOKUP]},  # the same name twice
        {"functions": [{**LOOKUP, "parameters": "none"}]},
        {"mcp": [{"server_label": "no spaces"}]},
        {"vector_store_ids": [""]},
        {"vector_store_ids": ["vs_1"], "max_num_results": 0},
        {"temperature": 9},
        {"top_p": "high"},
        {"max_output_tokens": 0},
        {"max_output_tokens": True},
    ],
)
def test_what_a_request_would_refuse_is_refused_with_the_config(fields: Json) -> None:
    param = refused({"model": "m", **fields})
    assert param is not None and param.startswith("config")


def test_the_request_check_names_the_tool() -> None:
    assert refused({"model": "m", "functions": [{"name": "a b"}]}) == "config (tools[0].name)"


def test_a_variable_without_a_default_is_fine_until_a_call() -> None:
    stored = config(instructions="Hello {{name}}")
    assert variables_of(stored) == ["name"]


def test_variables_are_listed_in_order_of_first_use() -> None:
    stored = config(instructions="{{b}} and {{ a }}, then {{b}} and {{c}} and {{a}}")
    assert variables_of(stored) == ["b", "a", "c"]
    assert variables_of(config(instructions="No variables; {{not a name}} is text.")) == []


def test_render_fills_variables_from_given_values_then_defaults() -> None:
    stored = config(
        instructions="About {{product}} for {{ team }}; {{product}} again.",
        variables={"product": "the handbook", "team": "sales"},
    )
    assert render(stored, {})["instructions"] == "About the handbook for sales; the handbook again."
    assert render(stored, {"team": "support"})["instructions"] == (
        "About the handbook for support; the handbook again."
    )


def test_a_given_value_is_not_expanded_again() -> None:
    stored = config(instructions="Say {{a}}.", variables={"b": "no"})
    assert render(stored, {"a": "{{b}}"})["instructions"] == "Say {{b}}."


def test_render_refuses_an_unknown_or_missing_variable() -> None:
    stored = config(instructions="About {{product}} for {{team}}.", variables={"team": "sales"})
    assert render_refused(stored, {"product": "p", "colour": "red"}) == "prompt.variables.colour"
    assert render_refused(stored, {}) == "prompt.variables.product"
    assert render_refused(stored, {"product": 3}) == "prompt.variables"
    assert render_refused(stored, {"product": "x" * 10_001}) == "prompt.variables"
    assert render_refused(stored, ["product"]) == "prompt.variables"


def test_a_default_the_instructions_do_not_use_may_not_be_given() -> None:
    stored = config(instructions="Hi.", variables={"spare": "x"})
    assert render(stored, {})["instructions"] == "Hi."
    assert render_refused(stored, {"spare": "y"}) == "prompt.variables.spare"


def test_render_builds_the_tools() -> None:
    body = render(parse_config(FULL), {"team": "support"})
    assert body == {
        "model": "smollm2-135m-instruct",
        "instructions": "You answer questions about the handbook for support. Cite your sources.",
        "tools": [
            {"type": "function", **LOOKUP},
            {"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 5},
            {"type": "mcp", **WIKI},
        ],
        "tool_choice": {"type": "file_search"},
        "temperature": 0.2,
        "top_p": 0.9,
        "max_output_tokens": 300,
    }


def test_a_minimal_config_renders_a_minimal_request() -> None:
    assert render(config(), {}) == {"model": "m", "tools": []}


def test_search_auto_leaves_the_choice_to_the_model() -> None:
    body = render(config(vector_store_ids=["vs_1"]), {})
    assert body["tools"] == [{"type": "file_search", "vector_store_ids": ["vs_1"]}]
    assert "tool_choice" not in body


def test_search_always_without_stores_chooses_nothing() -> None:
    assert "tool_choice" not in render(config(search="always"), {})


@pytest.mark.parametrize(
    ("own", "guardrail", "expected"),
    [(400, 300, 300), (200, 300, 200), (400, None, 400), (None, 300, 300), (None, None, None)],
)
def test_max_output_tokens_is_the_smaller_limit(
    own: int | None, guardrail: int | None, expected: int | None
) -> None:
    stored = config(max_output_tokens=own, guardrails={"max_output_tokens": guardrail})
    assert render(stored, {}).get("max_output_tokens") == expected


def test_blocked_topics_match_whole_words_in_any_case() -> None:
    stored = config(guardrails={"blocked_topics": ["medical advice", "Tax"]})
    assert blocked_topic(stored, "Medical advice?") == "medical advice"
    assert blocked_topic(stored, "I need MEDICAL   advice, please") == "medical advice"
    assert blocked_topic(stored, "medical-advice") == "medical advice"
    assert blocked_topic(stored, "what about tax?") == "Tax"
    assert blocked_topic(stored, "premedical advices") is None
    assert blocked_topic(stored, "taxes and medical records") is None
    assert blocked_topic(config(), "medical advice") is None


def test_the_first_blocked_topic_in_the_list_is_named() -> None:
    stored = config(guardrails={"blocked_topics": ["tax", "medical advice"]})
    assert blocked_topic(stored, "medical advice on tax") == "tax"


# Found while writing these tests: each fails against the code as it stands.


@pytest.mark.parametrize("entry", ["lookup", 7, None])
def test_a_tool_that_is_not_an_object_is_a_400(entry: Any) -> None:
    # functions: ["lookup"] crashed with TypeError ({"type": "function", **"lookup"}): a 500.
    assert refused({"model": "m", "functions": [entry]}) == "config.functions"
    assert refused({"model": "m", "mcp": [entry]}) == "config.mcp"


def test_a_bad_max_output_tokens_beside_a_guardrail_is_a_400() -> None:
    # min("400", 100) crashed with TypeError before the request check could refuse it.
    raw = {"model": "m", "max_output_tokens": "400", "guardrails": {"max_output_tokens": 100}}
    assert refused(raw) == "config.max_output_tokens"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("instructions", 0),
        ("instructions", []),
        ("instructions", False),
        ("variables", []),
        ("variables", ""),
        ("vector_store_ids", {}),
        ("functions", ""),
        ("mcp", 0),
    ],
)
def test_a_falsy_value_of_the_wrong_type_is_refused(field: str, value: Any) -> None:
    # `raw.get(field) or default` took these as if the field were left out.
    assert refused({"model": "m", field: value}) == f"config.{field}"


def test_blocked_topics_of_an_empty_string_are_refused() -> None:
    raw = {"model": "m", "guardrails": {"blocked_topics": ""}}
    assert refused(raw) == "config.guardrails.blocked_topics"


def test_a_variable_name_with_spaces_is_refused() -> None:
    # {" a ": "x"} passed the check ("{{ a }}" matches) but never fills {{a}}.
    assert refused({"model": "m", "variables": {" a ": "x"}}) == "config.variables"


def test_max_num_results_is_checked_without_stores_too() -> None:
    assert refused({"model": "m", "max_num_results": "lots"}) == "config.max_num_results"


def test_blocked_topics_in_other_scripts_match() -> None:
    # Only [a-z0-9] survive the normalisation, so a Cyrillic topic is empty and never matches.
    stored = config(guardrails={"blocked_topics": ["медицина", "Ärzte"]})
    assert blocked_topic(stored, "Расскажи про МЕДИЦИНА.") == "медицина"
    assert blocked_topic(stored, "Fragen an ärzte") == "Ärzte"
    assert blocked_topic(stored, "Fragen an Ärztekammer") is None
