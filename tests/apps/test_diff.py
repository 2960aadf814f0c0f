"""What changed between two versions of an App: one entry per changed leaf path."""

from __future__ import annotations

from tokenmill.apps.diff import diff, flatten


def test_nested_dicts_and_lists_flatten_to_paths() -> None:
    config = {
        "model": "m",
        "guardrails": {"max_output_tokens": 400, "blocked_topics": ["tax", "medical advice"]},
        "functions": [{"name": "lookup", "parameters": {"type": "object"}}],
        "steps": {"rewrite_model": None},
    }
    assert flatten(config) == {
        "model": "m",
        "guardrails.max_output_tokens": 400,
        "guardrails.blocked_topics[0]": "tax",
        "guardrails.blocked_topics[1]": "medical advice",
        "functions[0].name": "lookup",
        "functions[0].parameters.type": "object",
        "steps.rewrite_model": None,
    }


def test_empty_containers_are_leaves() -> None:
    assert flatten({"variables": {}, "mcp": []}) == {"variables": {}, "mcp": []}


def test_equal_configs_have_no_changes() -> None:
    config = {"model": "m", "variables": {"a": "x"}, "vector_store_ids": ["vs_1"]}
    assert diff(config, {**config}) == []


def test_changed_added_and_removed_paths_in_path_order() -> None:
    before = {
        "model": "m",
        "temperature": 0.2,
        "guardrails": {"blocked_topics": ["tax", "medical advice"]},
        "variables": {"product": "the handbook"},
    }
    after = {
        "model": "m2",
        "guardrails": {"blocked_topics": ["tax"]},
        "variables": {"product": "the handbook", "team": "sales"},
        "max_output_tokens": 400,
    }
    assert diff(before, after) == [
        {"path": "guardrails.blocked_topics[1]", "before": "medical advice", "after": None},
        {"path": "max_output_tokens", "before": None, "after": 400},
        {"path": "model", "before": "m", "after": "m2"},
        {"path": "temperature", "before": 0.2, "after": None},
        {"path": "variables.team", "before": None, "after": "sales"},
    ]


def test_a_none_that_appears_or_goes_is_a_change() -> None:
    assert diff({"model": "m", "a": None}, {"model": "m"}) == [
        {"path": "a", "before": None, "after": None}
    ]
    assert diff({"model": "m"}, {"model": "m", "a": None}) == [
        {"path": "a", "before": None, "after": None}
    ]


def test_a_list_filling_up_replaces_its_empty_leaf() -> None:
    before = {"functions": []}
    after = {"functions": [{"name": "lookup"}]}
    assert diff(before, after) == [
        {"path": "functions", "before": [], "after": None},
        {"path": "functions[0].name", "before": None, "after": "lookup"},
    ]
