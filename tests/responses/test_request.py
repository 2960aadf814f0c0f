"""``POST /v1/responses`` bodies: what is refused, with which param, and how a good one is
shown to a chat model (tools, tool choice, response format)."""

from __future__ import annotations

from typing import Any

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.responses.request import FileSearchTool, parse_response_request

CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather.", "parameters": CITY}
SEARCH = {"type": "file_search", "vector_store_ids": ["vs_1"]}


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "input": "hi", **extra}


def refused(raw: dict[str, Any]) -> str | None:
    """The param of the refusal."""
    with pytest.raises(InvalidRequest) as caught:
        parse_response_request(raw)
    assert caught.value.status == 400
    return caught.value.param


def test_an_unknown_parameter_is_named() -> None:
    assert refused(body(messages=[])) == "messages"
    assert refused(body(frequency_penalty=0.5)) == "frequency_penalty"


def test_model_and_input_are_required() -> None:
    assert refused({"input": "hi"}) == "model"
    assert refused({"model": "", "input": "hi"}) == "model"
    assert refused({"model": 7, "input": "hi"}) == "model"
    assert refused({"model": "m"}) == "input"
    assert refused(body(input=[])) == "input"
    assert refused(body(input=5)) == "input"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"reasoning": {"effort": "low"}}, "reasoning"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"background": True}, "background"),
    ],
)
def test_features_this_platform_lacks_are_refused(extra: dict[str, Any], param: str) -> None:
    assert refused(body(**extra)) == param


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ({"type": "function", "name": "f"}, "tools"),  # not an array
        ([{"type": "web_search"}], "tools[0].type"),
        ([{"type": "computer_use_preview"}], "tools[0].type"),
        (["file_search"], "tools[0].type"),
        ([WEATHER, {"type": "web_search_preview"}], "tools[1].type"),
        ([WEATHER, WEATHER], "tools[1].name"),
        ([{"type": "function", "name": "has space"}], "tools[0].name"),
        ([{"type": "function", "function": {"name": "f"}}], "tools[0].name"),  # chat's shape
        ([{"type": "function", "name": "f", "extra": 1}], "tools[0].extra"),
        ([{"type": "function", "name": "f", "parameters": "{}"}], "tools[0].parameters"),
        ([{"type": "function", "name": "f", "strict": "yes"}], "tools[0].strict"),
        ([{"type": "function", "name": "file_search"}, SEARCH], "tools"),
        ([SEARCH, {"type": "function", "name": "file_search"}], "tools"),
        ([SEARCH, SEARCH], "tools[1]"),
        ([{"type": "file_search"}], "tools[0].vector_store_ids"),
        ([{"type": "file_search", "vector_store_ids": []}], "tools[0].vector_store_ids"),
        ([{"type": "file_search", "vector_store_ids": "vs_1"}], "tools[0].vector_store_ids"),
        (
            [{"type": "file_search", "vector_store_ids": ["a", "b", "c"]}],
            "tools[0].vector_store_ids",
        ),
        ([{"type": "file_search", "vector_store_ids": [""]}], "tools[0].vector_store_ids"),
        ([{"type": "file_search", "vector_store_ids": [3]}], "tools[0].vector_store_ids"),
        ([{**SEARCH, "max_num_results": 0}], "tools[0].max_num_results"),
        ([{**SEARCH, "max_num_results": 51}], "tools[0].max_num_results"),
        ([{**SEARCH, "max_num_results": "5"}], "tools[0].max_num_results"),
        ([{**SEARCH, "max_num_results": True}], "tools[0].max_num_results"),
        ([{**SEARCH, "max_num_results": 2.5}], "tools[0].max_num_results"),
        ([{**SEARCH, "rerank": True}], "tools[0].rerank"),
        ([{**SEARCH, "filters": "x"}], "tools[0].filters"),
    ],
)
def test_bad_tools_are_refused(tools: Any, param: str) -> None:
    assert refused(body(tools=tools)) == param


@pytest.mark.parametrize(
    ("tools", "choice"),
    [
        ([WEATHER], {"type": "function", "name": "get_time"}),
        ([WEATHER], {"type": "function"}),
        ([WEATHER], {"type": "file_search"}),
        ([SEARCH], {"type": "function", "name": "file_search"}),
        ([WEATHER], {"type": "web_search"}),
        ([WEATHER], "sometimes"),
        ([], "required"),
        (None, "required"),
        (None, {"type": "function", "name": "get_weather"}),
    ],
)
def test_a_tool_choice_naming_no_tool_is_refused(tools: Any, choice: Any) -> None:
    assert refused(body(tools=tools, tool_choice=choice)) == "tool_choice"


def test_a_tool_choice_with_an_unhashable_name_is_a_400() -> None:
    assert refused(body(tools=[WEATHER], tool_choice={"type": "function", "name": ["x"]})) == (
        "tool_choice"
    )


@pytest.mark.parametrize(
    ("text", "param"),
    [
        ({"format": {"type": "json_schema", "name": "answer"}}, "text.format.schema"),
        (
            {"format": {"type": "json_schema", "name": "answer", "schema": "{}"}},
            "text.format.schema",
        ),
        ({"format": {"type": "json_schema", "schema": {"type": "object"}}}, "text.format.name"),
        ({"format": {"type": "json_schema", "name": "a b", "schema": {}}}, "text.format.name"),
        ({"format": {"type": "xml"}}, "text.format"),
        ({"format": "json_object"}, "text.format"),
        ({"colour": "blue"}, "text.format"),
        ("json", "text.format"),
    ],
)
def test_bad_text_formats_are_refused(text: Any, param: str) -> None:
    assert refused(body(text=text)) == param


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"include": ["output_text.everything"]}, "include"),
        ({"include": "file_search_call.results"}, "include"),
        ({"include": [1]}, "include"),
        ({"max_output_tokens": -1}, "max_output_tokens"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": 1.5}, "max_output_tokens"),
        ({"max_output_tokens": True}, "max_output_tokens"),
        ({"max_tool_calls": 0}, "max_tool_calls"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "1"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"stream": "true"}, "stream"),
        ({"store": "false"}, "store"),
        ({"parallel_tool_calls": 1}, "parallel_tool_calls"),
        ({"truncation": "sometimes"}, "truncation"),
        ({"instructions": ["be brief"]}, "instructions"),
        ({"previous_response_id": 12}, "previous_response_id"),
        ({"user": 12}, "user"),
        ({"metadata": "x"}, "metadata"),
        ({"metadata": {"k": 1}}, "metadata.k"),
    ],
)
def test_bad_scalars_are_refused(extra: dict[str, Any], param: str) -> None:
    assert refused(body(**extra)) == param


def test_bad_input_items_are_named_by_position() -> None:
    assert refused(body(input=[{"role": "user", "content": "a"}, {"role": "robot"}])) == (
        "input[1].role"
    )


def test_a_bare_request_takes_the_defaults() -> None:
    request = parse_response_request(body())
    assert request.model == "m"
    assert [(i["type"], i["role"]) for i in request.items] == [("message", "user")]
    assert request.items[0]["content"][0]["text"] == "hi"
    assert (request.tool_choice, request.parallel_tool_calls, request.store) == ("auto", True, True)
    assert (request.stream, request.truncation, request.include) == (False, "disabled", frozenset())
    assert request.text_format == {"type": "text"}
    assert request.tools == [] and request.chat_tools() == []
    assert request.response_format() is None
    assert request.max_output_tokens is None and request.temperature is None


def test_a_full_request_keeps_every_field() -> None:
    request = parse_response_request(
        body(
            input=[
                {"role": "developer", "content": "Answer in French."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Hi"}],
                },
            ],
            instructions="Be brief.",
            max_output_tokens=100,
            max_tool_calls=3,
            temperature=0,
            top_p=0.5,
            store=False,
            stream=True,
            include=["file_search_call.results"],
            metadata={"team": "red"},
            user="u1",
            truncation="auto",
            previous_response_id="resp_1",
            parallel_tool_calls=False,
            text={"format": {"type": "json_object"}, "verbosity": "low"},
        )
    )
    assert [i["role"] for i in request.items] == ["developer", "user"]
    assert request.instructions == "Be brief."
    assert (request.max_output_tokens, request.max_tool_calls) == (100, 3)
    assert request.temperature == 0.0 and isinstance(request.temperature, float)
    assert request.top_p == 0.5
    assert (request.store, request.stream, request.parallel_tool_calls) == (False, True, False)
    assert request.include == frozenset({"file_search_call.results"})
    assert request.metadata == {"team": "red"} and request.user == "u1"
    assert (request.truncation, request.previous_response_id) == ("auto", "resp_1")
    assert request.response_format() == {"type": "json_object"}


def test_function_tools_are_echoed_flat_and_shown_to_the_model_nested() -> None:
    bare = {"type": "function", "name": "get_time"}
    request = parse_response_request(body(tools=[WEATHER, bare]))
    assert request.tools == [
        {**WEATHER, "strict": True},
        {"type": "function", "name": "get_time", "description": None,
         "parameters": {"type": "object", "properties": {}}, "strict": True},
    ]  # fmt: skip
    weather = {"name": "get_weather", "description": "Weather.", "parameters": CITY, "strict": True}
    time = {"name": "get_time", "parameters": {"type": "object", "properties": {}}, "strict": True}
    assert request.chat_tools() == [
        {"type": "function", "function": weather},
        {"type": "function", "function": time},
    ]
    assert request.file_search is None


def test_the_file_search_tool_is_echoed_as_given_and_offered_as_a_function() -> None:
    given = {**SEARCH, "vector_store_ids": ["vs_1", "vs_2"], "max_num_results": 4,
             "filters": {"type": "eq", "key": "lang", "value": "en"}}  # fmt: skip
    request = parse_response_request(body(tools=[WEATHER, given]))
    tool = request.file_search
    assert isinstance(tool, FileSearchTool)
    assert tool.vector_store_ids == ("vs_1", "vs_2") and tool.max_num_results == 4
    assert tool.filters is not None
    assert request.tools[1] == given
    offered = request.chat_tools()
    assert [t["function"]["name"] for t in offered] == ["get_weather", "file_search"]
    assert offered[1]["function"]["parameters"]["required"] == ["query"]
    default = parse_response_request(body(tools=[SEARCH])).file_search
    assert default is not None and default.max_num_results == 10 and default.filters is None


@pytest.mark.parametrize(
    ("choice", "echoed", "chat"),
    [
        (None, "auto", "auto"),
        ("none", "none", "none"),
        ("required", "required", "required"),
        ({"type": "function", "name": "get_weather"}, {"type": "function", "name": "get_weather"},
         {"type": "function", "function": {"name": "get_weather"}}),
        ({"type": "file_search"}, {"type": "file_search"},
         {"type": "function", "function": {"name": "file_search"}}),
    ],
)  # fmt: skip
def test_tool_choice_is_echoed_and_translated_for_chat(choice: Any, echoed: Any, chat: Any) -> None:
    request = parse_response_request(body(tools=[WEATHER, SEARCH], tool_choice=choice))
    assert request.tool_choice == echoed
    assert request.chat_tool_choice() == chat


def test_a_json_schema_format_becomes_chat_s_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
    request = parse_response_request(body(text={"format": fmt}))
    assert request.text_format == fmt
    assert request.response_format() == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    assert parse_response_request(body(text={"format": {"type": "text"}})).response_format() is None
    assert parse_response_request(body(text={"verbosity": "low"})).text_format == {"type": "text"}
