"""Tool calling through the live engine replica, with the bundled SmolLM2."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from .conftest import SERVED_NAME
from .test_server import error_of, stream

pytestmark = pytest.mark.model

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "maxLength": 30}},
    "required": ["timezone"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "Time in a timezone",
                                      "parameters": TIME, "strict": True}},
]  # fmt: skip
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def body(**extra: Any) -> dict[str, Any]:
    return {"model": SERVED_NAME, "messages": ASK, "tools": TOOLS, "max_tokens": 48,
            "temperature": 0, **extra}  # fmt: skip


def named(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def assert_valid_calls(calls: list[dict[str, Any]], names: set[str]) -> None:
    assert calls
    for call in calls:
        assert call["id"].startswith("call_")
        assert call["type"] == "function"
        assert call["function"]["name"] in names
        arguments = json.loads(call["function"]["arguments"])
        jsonschema.validate(arguments, SCHEMAS[call["function"]["name"]])


def test_a_named_choice_forces_a_valid_call(client: httpx.Client) -> None:
    reply = client.post(
        "/v1/chat/completions",
        json=body(tool_choice=named("get_weather"), parallel_tool_calls=False),
    )
    assert reply.status_code == 200, reply.text
    [choice] = reply.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    assert len(message["tool_calls"]) == 1
    assert_valid_calls(message["tool_calls"], {"get_weather"})
    assert reply.json()["usage"]["completion_tokens"] > 0


def test_required_calls_one_of_two_tools_with_sampling(client: httpx.Client) -> None:
    reply = client.post(
        "/v1/chat/completions",
        json=body(tool_choice="required", temperature=1.0, seed=1, parallel_tool_calls=False),
    ).json()
    [choice] = reply["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert_valid_calls(choice["message"]["tool_calls"], {"get_weather", "get_time"})


def test_parallel_calls_each_validate(client: httpx.Client) -> None:
    ask = [{"role": "user", "content": "What time is it in Paris, and in Tokyo?"}]
    reply = client.post(
        "/v1/chat/completions",
        json=body(messages=ask, tool_choice=named("get_time"), max_tokens=64),
        timeout=300,  # a grammar makes each token dearer; the machine may be shared
    ).json()
    [choice] = reply["choices"]
    calls = choice["message"]["tool_calls"]
    assert calls and choice["finish_reason"] in ("tool_calls", "length")
    # a call cut off by max_tokens is the last one; every call before it is whole
    whole = calls if choice["finish_reason"] == "tool_calls" else calls[:-1]
    for call in whole:
        assert_valid_calls([call], {"get_time"})
    assert len({call["id"] for call in calls}) == len(calls)


def test_streamed_fragments_reassemble_into_the_same_call(client: httpx.Client) -> None:
    request = body(tool_choice=named("get_weather"), parallel_tool_calls=False)
    whole = client.post("/v1/chat/completions", json=request).json()
    events = stream(client, "/v1/chat/completions", request)
    assert events[-1] == "[DONE]"
    usage = events[-2]["usage"]
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in events[:-2]:
        for choice in chunk["choices"]:
            finish = choice["finish_reason"] or finish
            for fragment in choice["delta"].get("tool_calls", []):
                if "id" in fragment:
                    assert fragment["index"] not in calls
                    assert fragment["type"] == "function"
                    assert fragment["function"]["arguments"] == ""
                    calls[fragment["index"]] = {**fragment, "function": {**fragment["function"]}}
                else:
                    assert set(fragment) == {"index", "function"}
                    calls[fragment["index"]]["function"]["arguments"] += fragment["function"][
                        "arguments"
                    ]
    assert finish == "tool_calls"
    [expected] = whole["choices"][0]["message"]["tool_calls"]
    [call] = calls.values()
    assert call["function"] == expected["function"]
    assert_valid_calls([call], {"get_weather"})
    assert usage["completion_tokens"] == whole["usage"]["completion_tokens"]


def test_a_history_with_calls_and_results_is_answered(client: httpx.Client) -> None:
    arguments = json.dumps({"city": "Paris", "unit": "celsius"})
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]  # fmt: skip
    reply = client.post("/v1/chat/completions", json=body(messages=history, max_tokens=8))
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")


def test_a_lenient_history_is_no_server_error(client: httpx.Client) -> None:
    history = [
        *ASK,
        {"role": "assistant", "tool_calls": [
            {"id": None, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"function": {"name": "get_time"}}]},
        {"role": "tool", "content": "21 degrees"},
        {"role": "tool", "tool_call_id": None, "content": None},
    ]  # fmt: skip
    reply = client.post("/v1/chat/completions", json=body(messages=history, max_tokens=4))
    assert reply.status_code == 200, reply.text


def test_tool_choice_none_answers_in_text(client: httpx.Client) -> None:
    reply = client.post("/v1/chat/completions", json=body(tool_choice="none", max_tokens=4)).json()
    [choice] = reply["choices"]
    assert "tool_calls" not in choice["message"]
    assert choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")


def test_auto_may_answer_in_text_or_with_a_call(client: httpx.Client) -> None:
    reply = client.post("/v1/chat/completions", json=body(max_tokens=12)).json()
    [choice] = reply["choices"]
    if choice["finish_reason"] == "tool_calls":
        names = {call["function"]["name"] for call in choice["message"]["tool_calls"]}
        assert names <= {"get_weather", "get_time"}
    else:
        assert choice["message"]["content"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": {"type": "function"}}, "tools"),
        ({"tools": [{"type": "function", "function": {"description": "x"}}]},
         "tools[0].function.name"),
        ({"tool_choice": named("nope")}, "tool_choice"),
        ({"tools": None, "tool_choice": "required"}, "tool_choice"),
        ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ],
)  # fmt: skip
def test_bad_tools_are_refused_naming_the_param(
    client: httpx.Client, extra: dict[str, Any], param: str
) -> None:
    reply = client.post("/v1/chat/completions", json=body(**extra))
    assert reply.status_code == 400
    assert error_of(reply)["param"] == param
