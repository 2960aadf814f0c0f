"""The generic tool-call format parsed from text, whole and streamed in pieces."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenmill.engine.tool_calls import ToolCallDelta, ToolCallParser, parse_tool_calls

NAMES = {"get_weather", "add"}
TWO_CALLS = (
    'Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Pa}ris \\" <",'
    ' "n": [1, {"x": 2}]}}</tool_call>\n'
    '<tool_call>{"arguments": {"a": 1}, "name": "add"}</tool_call>\n'
)


def streamed(text: str, size: int) -> tuple[str, list[dict[str, Any]], list[ToolCallDelta]]:
    ids = iter(f"call_{i}" for i in range(100))
    parser = ToolCallParser(NAMES, new_id=lambda: next(ids))
    fragments = []
    for start in range(0, len(text), size):
        fragments += parser.push(text[start : start + size])
    fragments += parser.finish()
    content = "".join(f for f in fragments if isinstance(f, str))
    deltas = [f for f in fragments if isinstance(f, ToolCallDelta)]
    calls: list[dict[str, Any]] = []
    for delta in deltas:
        if delta.id is not None:
            assert delta.arguments == ""  # a head carries no arguments, as OpenAI's
            calls.append({"id": delta.id, "name": delta.name, "arguments": ""})
        calls[delta.index]["arguments"] += delta.arguments
    return content, calls, deltas


def test_a_whole_output_splits_into_content_and_calls() -> None:
    content, calls = parse_tool_calls(TWO_CALLS, NAMES)
    assert content == "Let me check."
    assert [c["name"] for c in calls] == ["get_weather", "add"]
    assert json.loads(calls[0]["arguments"]) == {"city": 'Pa}ris " <', "n": [1, {"x": 2}]}
    assert json.loads(calls[1]["arguments"]) == {"a": 1}
    assert all(c["id"].startswith("call_") for c in calls)
    assert calls[0]["id"] != calls[1]["id"]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 11, 1000])
def test_streamed_in_pieces_gives_the_same_content_and_calls(size: int) -> None:
    content, calls, deltas = streamed(TWO_CALLS, size)
    whole_content, whole_calls = parse_tool_calls(TWO_CALLS, NAMES)
    assert content == whole_content
    assert [(c["name"], c["arguments"]) for c in calls] == [
        (c["name"], c["arguments"]) for c in whole_calls
    ]
    if size < 10:  # the first call's arguments stream in more than one piece
        assert len([d for d in deltas if d.index == 0 and d.id is None]) > 1


@pytest.mark.parametrize(
    "text",
    [
        "Hello there.",
        "  Indented, with a trailing newline\n",
        "Compare a <tool_ with a < b.",
        'Not a call: <tool_call>{"name": "unknown", "arguments": {}}</tool_call>',
        "Broken <tool_call>{not json}</tool_call> call",
    ],
)
@pytest.mark.parametrize("size", [1, 4, 1000])
def test_text_that_is_no_call_of_an_allowed_function_is_content(text: str, size: int) -> None:
    content, calls, _ = streamed(text, size)
    assert calls == []
    assert content == text


def test_an_unclosed_call_whose_name_is_unknown_yet_is_content() -> None:
    assert parse_tool_calls('<tool_call>{"name": "get_wea', NAMES) == (
        '<tool_call>{"name": "get_wea',
        [],
    )


def test_a_cut_off_call_keeps_the_arguments_it_had() -> None:
    content, calls = parse_tool_calls('<tool_call>{"name": "add", "arguments": {"a": 1', NAMES)
    assert content == ""
    assert [(c["name"], c["arguments"]) for c in calls] == [("add", '{"a": 1')]


def test_a_call_without_its_closing_tag_still_counts() -> None:
    _, calls = parse_tool_calls('<tool_call>{"name": "add", "arguments": {"a": 1}}', NAMES)
    assert [(c["name"], c["arguments"]) for c in calls] == [("add", '{"a": 1}')]


def test_hermes_style_whitespace_and_parameters_are_accepted() -> None:
    text = '<tool_call>\n{"name": "add", "arguments": {"a": 2}}\n</tool_call>'
    assert parse_tool_calls(text, NAMES)[1][0]["arguments"] == '{"a": 2}'
    text = '<tool_call>{"parameters": {"a": 3}, "name": "add"}</tool_call>'
    assert parse_tool_calls(text, NAMES)[1][0]["arguments"] == '{"a":3}'
