"""Tool calling through a live ``tokenmill serve``: the official openai client and LangChain."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.e2e.conftest import Platform

MODEL = "smollm2-135m-instruct"
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                      "parameters": WEATHER, "strict": True}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]  # fmt: skip
FORCE: Any = {"type": "function", "function": {"name": "get_weather"}}
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_a_forced_call_is_valid_and_metered(platform: Platform) -> None:
    raw = platform.client().chat.completions.with_raw_response.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice=FORCE, parallel_tool_calls=False,
        max_tokens=48, temperature=0,
    )  # fmt: skip
    reply = raw.parse()
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    usage = platform.usage(raw.headers["x-request-id"])
    assert usage.status == "ok"
    assert reply.usage is not None
    assert usage.completion_tokens == reply.usage.completion_tokens


def test_a_streamed_call_reassembles_into_the_unstreamed_one(platform: Platform) -> None:
    client = platform.client()
    request: Any = dict(model=MODEL, messages=ASK, tools=TOOLS, tool_choice=FORCE,
                        parallel_tool_calls=False, max_tokens=48, temperature=0)  # fmt: skip
    whole = client.chat.completions.create(**request)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    with client.chat.completions.create(**request, stream=True) as chunks:
        for chunk in chunks:
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for fragment in choice.delta.tool_calls or []:
                    call = calls.setdefault(fragment.index, {"id": "", "name": "", "args": ""})
                    call["id"] += fragment.id or ""
                    if fragment.function is not None:
                        call["name"] += fragment.function.name or ""
                        call["args"] += fragment.function.arguments or ""
    assert finish == "tool_calls"
    [expected] = whole.choices[0].message.tool_calls or []
    [call] = calls.values()
    assert call["id"].startswith("call_")
    assert (call["name"], call["args"]) == (expected.function.name, expected.function.arguments)


def test_a_tool_result_follow_up_is_answered(platform: Platform) -> None:
    client = platform.client()
    first = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice=FORCE, max_tokens=48, temperature=0,
        parallel_tool_calls=False,
    )  # fmt: skip
    message = first.choices[0].message
    [call] = message.tool_calls or []
    history: Any = [
        *ASK,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_celsius": 21}'},
    ]
    reply = client.chat.completions.create(
        model=MODEL, messages=history, tools=TOOLS, max_tokens=16, temperature=0
    )
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert reply.usage is not None and first.usage is not None
    assert reply.usage.prompt_tokens > first.usage.prompt_tokens


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


def test_langchain_bind_tools_round_trip(platform: Platform) -> None:
    llm = ChatOpenAI(
        model=MODEL, base_url=f"{platform.base_url}/v1", api_key=platform.admin_key,
        temperature=0, max_tokens=48, max_retries=0,
    )  # fmt: skip
    bound = llm.bind_tools([get_weather], tool_choice="get_weather")
    question = HumanMessage("What is the weather in Paris?")
    answer = bound.invoke([question])
    [call] = answer.tool_calls
    assert call["name"] == "get_weather"
    assert isinstance(call["args"]["city"], str)
    result = get_weather.invoke(call["args"])
    follow_up = llm.bind_tools([get_weather]).invoke(
        [question, answer, ToolMessage(result, tool_call_id=call["id"])]
    )
    assert follow_up.response_metadata["finish_reason"] in ("stop", "length", "tool_calls")
