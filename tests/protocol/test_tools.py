"""Tools, tool choice and tool calls in the history: what is refused, with which param."""

from __future__ import annotations

from typing import Any

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.requests import parse_chat
from tokenmill.protocol.tools import history_calls, parse_tool_use

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip
TIME = {"type": "function", "function": {"name": "get_time"}}


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def refusal(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat(body)
    return caught.value


def test_tools_parse_with_defaults() -> None:
    use = parse_tool_use(chat(tools=[WEATHER, TIME]))
    assert use is not None
    assert (use.mode, use.name, use.parallel) == ("auto", None, True)
    assert [tool.name for tool in use.callable] == ["get_weather", "get_time"]
    assert use.tools[1].parameters == {"type": "object"}  # no parameters: any object
    assert not use.forced


def test_a_named_choice_allows_only_that_function() -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    use = parse_chat(chat(tools=[WEATHER, TIME], tool_choice=choice, parallel_tool_calls=False))
    assert use.tools is not None
    assert [tool.name for tool in use.tools.callable] == ["get_time"]
    assert use.tools.forced and not use.tools.parallel


def test_none_allows_no_function_and_no_tools_is_none() -> None:
    use = parse_tool_use(chat(tools=[WEATHER], tool_choice="none"))
    assert use is not None and use.callable == ()
    assert parse_tool_use(chat()) is None
    assert parse_tool_use(chat(tools=[], tool_choice="auto")) is None


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": {"type": "function"}}, "tools"),
        ({"tools": ["get_weather"]}, "tools[0].type"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]},
         "tools[0].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]},
         "tools[0].function.name"),
        ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
         "tools[0].function.parameters"),
        ({"tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]},
         "tools[0].function.strict"),
        ({"tools": [WEATHER], "tool_choice": "always"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
         "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
         "tool_choice"),
        ({"tools": [WEATHER], "parallel_tool_calls": 1}, "parallel_tool_calls"),
    ],
)  # fmt: skip
def test_bad_tools_are_refused_naming_the_param(extra: dict[str, Any], param: str) -> None:
    assert refusal(chat(**extra)).param == param


def test_history_calls_are_read_leniently() -> None:
    message = {"role": "assistant", "tool_calls": [
        {"id": None, "function": {"name": "a", "arguments": {"x": 1}}},
        {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": '{"y": 2}'}},
        {"function": {"name": "c", "arguments": "not json"}},
        {"function": {"name": "d"}},
    ]}  # fmt: skip
    calls = history_calls(message, "messages[1]")
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("", "a", {"x": 1}), ("call_2", "b", {"y": 2}), ("", "c", "not json"), ("", "d", {}),
    ]  # fmt: skip


def test_a_history_with_calls_and_results_parses() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "content": None},
    ]  # fmt: skip
    assert parse_chat(chat(messages=messages)).messages == messages


@pytest.mark.parametrize(
    ("calls", "param"),
    [
        ("call", "messages[1].tool_calls"),
        ([{"function": {}}], "messages[1].tool_calls[0].function.name"),
        (["x"], "messages[1].tool_calls[0].function.name"),
    ],
)
def test_malformed_history_calls_are_refused(calls: Any, param: str) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": calls}]
    assert refusal(chat(messages=messages)).param == param
