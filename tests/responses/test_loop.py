"""The agent loop over scripted model replies and a fixed search: the events a client reads, the
bodies each model call is sent, and how the loop stops (output limit, tool limit, failures)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.responses.scripted import FixedSearch, Json, ScriptedModels, reply, searching
from tokenmill.clock import ManualClock
from tokenmill.errors import InvalidRequest, RateLimited, TokenmillError
from tokenmill.protocol.requests import parse_chat
from tokenmill.responses.items import parse_input, search_results_text
from tokenmill.responses.loop import AgentLoop
from tokenmill.responses.objects import new_response
from tokenmill.responses.request import parse_response_request

CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function", "name": "get_weather", "parameters": CITY}
SEARCH = {"type": "file_search", "vector_store_ids": ["vs_1"]}
RESULTS: list[Json] = [
    {"file_id": "file_tea", "filename": "tea.txt", "score": 0.9, "attributes": {},
     "text": "Green tea is brewed at 80 degrees."},
    {"file_id": "file_coffee", "filename": "coffee.txt", "score": 0.4, "attributes": {},
     "text": "Espresso is brewed under pressure."},
]  # fmt: skip


@dataclass
class Run:
    loop: AgentLoop
    models: ScriptedModels
    search: FixedSearch

    async def events(self) -> list[Json]:
        """Every event as a client reads it (serialized when it is sent)."""
        return [orjson.loads(orjson.dumps(event)) async for event in self.loop.run()]


def setup(
    replies: list[Any],
    history: list[Json] | None = None,
    seconds_per_search: float = 0.0,
    budget_seconds: float = 300.0,
    **fields: Any,
) -> Run:
    request = parse_response_request({"model": "m", "input": "How do I brew tea?", **fields})
    response = new_response("resp_1", request, "m", 1_767_225_600, "default")
    clock = ManualClock()
    models, search = ScriptedModels(replies), FixedSearch(RESULTS, clock, seconds_per_search)
    loop = AgentLoop(request, response, history or [], models, search, clock, budget_seconds)
    return Run(loop, models, search)


def types(events: list[Json]) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events]


def tool_names(body: Json) -> list[str]:
    return [tool["function"]["name"] for tool in body.get("tools", [])]


async def test_a_plain_answer_streams_openai_s_events_in_order() -> None:
    run = setup([reply("Hel", "lo", prompt=12, completion=2)], instructions="Be brief.")
    events = await run.events()
    assert types(events) == [
        "created", "in_progress", "output_item.added", "content_part.added",
        "output_text.delta", "output_text.delta", "output_text.done", "content_part.done",
        "output_item.done", "completed",
    ]  # fmt: skip
    created = events[0]["response"]
    assert (created["id"], created["status"], created["output"]) == ("resp_1", "in_progress", [])
    assert created["usage"] is None
    added = events[2]["item"]
    assert (added["type"], added["status"], added["content"]) == ("message", "in_progress", [])
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas == ["Hel", "lo"]
    assert events[6]["text"] == "Hello" and events[7]["part"]["text"] == "Hello"
    assert {e["item_id"] for e in events[3:8]} == {added["id"]}
    assert {e["output_index"] for e in events[2:9]} == {0}
    final = events[-1]["response"]
    assert final == run.loop.response and final["status"] == "completed"
    [message] = final["output"]
    assert message == events[8]["item"]
    assert (message["role"], message["status"]) == ("assistant", "completed")
    assert message["content"] == [
        {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
    ]
    assert final["usage"] == {
        "input_tokens": 12, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 14,
    }  # fmt: skip
    [body] = run.models.bodies
    assert body == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "How do I brew tea?"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert run.models.calls[0].closed >= 1


async def test_a_client_function_call_ends_the_response() -> None:
    arguments = '{"city": "Paris"}'
    run = setup([reply("Checking.", calls=[("get_weather", arguments)])], tools=[WEATHER])
    events = await run.events()
    assert types(events) == [
        "created", "in_progress", "output_item.added", "content_part.added",
        "output_text.delta", "output_item.added",
        *["function_call_arguments.delta"] * 9,
        "output_text.done", "content_part.done", "output_item.done",
        "function_call_arguments.done", "output_item.done", "completed",
    ]  # fmt: skip
    started = events[5]["item"]
    assert (started["type"], started["status"], started["arguments"]) == (
        "function_call", "in_progress", "")  # fmt: skip
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(e["delta"] for e in deltas) == arguments
    assert {(e["item_id"], e["output_index"]) for e in deltas} == {(started["id"], 1)}
    done = events[-3]
    assert (done["arguments"], done["output_index"]) == (arguments, 1) and "name" not in done
    message, call = run.loop.response["output"]
    assert message["content"][0]["text"] == "Checking."
    assert call == {
        "type": "function_call",
        "id": started["id"],
        "call_id": "call_0",
        "name": "get_weather",
        "arguments": arguments,
        "status": "completed",
    }
    assert events[-2]["item"] == call
    assert run.loop.response["status"] == "completed"
    assert len(run.models.bodies) == 1 and run.search.queries == []
    assert tool_names(run.models.bodies[0]) == ["get_weather"]


async def test_a_file_search_runs_and_the_answer_cites_its_results() -> None:
    answer = "Brew it at 80 degrees [1]."
    run = setup(
        [searching("green tea", prompt=20, completion=8),
         reply("Brew it at 80 degrees ", "[1].", prompt=60, completion=6)],
        tools=[SEARCH],
    )  # fmt: skip
    events = await run.events()
    assert types(events) == [
        "created", "in_progress", "output_item.added", "file_search_call.in_progress",
        "file_search_call.searching", "file_search_call.completed", "output_item.done",
        "output_item.added", "content_part.added", "output_text.delta", "output_text.delta",
        "output_text.annotation.added", "output_text.done", "content_part.done",
        "output_item.done", "completed",
    ]  # fmt: skip
    assert run.search.queries == ["green tea"]
    search, message = run.loop.response["output"]
    assert (search["type"], search["status"], search["queries"]) == (
        "file_search_call", "completed", ["green tea"])  # fmt: skip
    assert {e["item_id"] for e in events[3:6]} == {search["id"]}
    citation = {"type": "file_citation", "file_id": "file_tea", "filename": "tea.txt",
                "index": answer.index("[1]")}  # fmt: skip
    assert message["content"][0]["text"] == answer
    assert message["content"][0]["annotations"] == [citation]
    assert events[11]["annotation"] == citation and events[11]["annotation_index"] == 0
    assert events[11]["output_index"] == 1
    second = run.models.bodies[1]
    call_turn, tool_turn = second["messages"][-2:]
    [call] = call_turn["tool_calls"]
    assert call["id"] == search["id"] and call["function"]["name"] == "file_search"
    assert orjson.loads(call["function"]["arguments"]) == {"query": "green tea"}
    assert tool_turn == {"role": "tool", "tool_call_id": search["id"],
                         "content": search_results_text(RESULTS)}  # fmt: skip
    assert tool_names(second) == ["file_search"] and second["tool_choice"] == "auto"
    usage = run.loop.response["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (80, 14, 94)
    assert [call.closed >= 1 for call in run.models.calls] == [True, True]
    for body in run.models.bodies:
        parse_chat(body)  # every body is a chat request the gateway takes


@pytest.mark.parametrize("include", [False, True])
async def test_search_results_are_shown_only_when_included(include: bool) -> None:
    fields: Json = {"include": ["file_search_call.results"]} if include else {}
    run = setup([searching("tea"), reply("Green tea: 80 degrees.")], tools=[SEARCH], **fields)
    events = await run.events()
    shown = RESULTS if include else None
    [done] = [e for e in events if e["type"] == "response.output_item.done"][:1]
    assert done["item"]["type"] == "file_search_call" and done["item"]["results"] == shown
    assert events[-1]["response"]["output"][0]["results"] == shown
    assert run.loop.response["output"][0]["results"] == RESULTS  # kept for a follow-up


async def test_max_tool_calls_stops_offering_file_search() -> None:
    run = setup([searching("tea"), reply("Green tea.")], tools=[WEATHER, SEARCH], max_tool_calls=1)
    await run.events()
    assert tool_names(run.models.bodies[0]) == ["get_weather", "file_search"]
    assert tool_names(run.models.bodies[1]) == ["get_weather"]
    assert run.loop.response["status"] == "completed"


async def test_without_a_limit_a_second_search_is_still_offered() -> None:
    run = setup([searching("tea"), searching("coffee"), reply("Both.")], tools=[SEARCH])
    await run.events()
    assert [tool_names(b) for b in run.models.bodies] == [["file_search"]] * 3
    assert run.search.queries == ["tea", "coffee"]


async def test_repeating_a_search_stops_offering_file_search() -> None:
    run = setup([searching("tea"), searching(" tea "), reply("Tea.")], tools=[SEARCH])
    await run.events()
    assert [tool_names(b) for b in run.models.bodies] == [["file_search"], ["file_search"], []]
    assert "tool_choice" not in run.models.bodies[2]


async def test_a_spent_time_budget_stops_offering_file_search() -> None:
    run = setup(
        [searching("tea"), reply("Tea.")], tools=[SEARCH], seconds_per_search=11, budget_seconds=10
    )
    await run.events()
    assert [tool_names(b) for b in run.models.bodies] == [["file_search"], []]


async def test_the_first_call_takes_the_tool_choice_and_later_ones_auto() -> None:
    run = setup(
        [searching("tea"), reply("Tea.")],
        tools=[WEATHER, SEARCH],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    await run.events()
    first, second = run.models.bodies
    assert first["tool_choice"] == "required" and second["tool_choice"] == "auto"
    assert first["parallel_tool_calls"] is False and second["parallel_tool_calls"] is False
    assert run.loop.response["tool_choice"] == "required"  # echoed as given


@pytest.mark.parametrize("choice", [{"type": "file_search"}, "required"])
async def test_a_forced_search_runs_the_user_s_message_before_the_model(choice: Any) -> None:
    run = setup([reply("Tea [1].")], tools=[SEARCH], tool_choice=choice)
    events = await run.events()
    assert run.search.queries == ["How do I brew tea?"]
    assert types(events)[:5] == [
        "created", "in_progress", "output_item.added", "file_search_call.in_progress",
        "file_search_call.searching",
    ]  # fmt: skip
    [body] = run.models.bodies
    assert "tools" not in body  # the search is done: the model answers from it
    assert body["messages"][-1]["role"] == "tool"
    assert search_results_text(RESULTS) == body["messages"][-1]["content"]
    [item, message] = run.loop.response["output"]
    assert item["type"] == "file_search_call" and item["queries"] == ["How do I brew tea?"]
    assert message["content"][0]["annotations"][0]["file_id"] == "file_tea"
    assert events[0]["response"]["output"] == []  # created before anything ran


async def test_a_rewrite_step_writes_the_forced_search_s_query() -> None:
    asked: list[str] = []

    async def rewrite(question: str) -> str:
        asked.append(question)
        return "tea brewing temperature"

    run = setup([reply("80 degrees [1].")], tools=[SEARCH], tool_choice={"type": "file_search"})
    run.loop.rewrite = rewrite
    await run.events()
    assert asked == ["How do I brew tea?"]
    assert run.search.queries == ["tea brewing temperature"]
    assert run.loop.response["output"][0]["queries"] == ["tea brewing temperature"]


async def test_required_with_functions_lets_the_model_choose() -> None:
    run = setup([reply(calls=[("get_weather", '{"city": "Oslo"}')])],
                tools=[WEATHER, SEARCH], tool_choice="required")  # fmt: skip
    await run.events()
    assert run.search.queries == []
    assert run.models.bodies[0]["tool_choice"] == "required"


async def test_tool_choice_none_offers_no_tools() -> None:
    run = setup([reply("Hi.")], tools=[WEATHER, SEARCH], tool_choice="none")
    await run.events()
    assert "tools" not in run.models.bodies[0] and "tool_choice" not in run.models.bodies[0]


async def test_sampling_format_and_history_go_into_the_body() -> None:
    history = parse_input(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    )
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    run = setup(
        [reply('{"a": "b"}')],
        history=history,
        temperature=0.2,
        top_p=0.9,
        text={"format": {"type": "json_schema", "name": "out", "schema": schema}},
    )
    await run.events()
    [body] = run.models.bodies
    assert [m["content"] for m in body["messages"]] == ["Hi", "Yo", "How do I brew tea?"]
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "out", "schema": schema}}  # fmt: skip


async def test_max_output_tokens_bounds_every_round_and_a_cut_answer_is_incomplete() -> None:
    run = setup(
        [searching("tea", completion=10), reply("Green tea is", finish="length", completion=40)],
        tools=[SEARCH],
        max_output_tokens=50,
    )
    events = await run.events()
    assert [b["max_tokens"] for b in run.models.bodies] == [50, 40]
    assert events[-1]["type"] == "response.incomplete"
    response = run.loop.response
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][-1]["status"] == "incomplete"
    assert response["usage"]["output_tokens"] == 50


async def test_output_spent_by_a_search_round_ends_the_response_incomplete() -> None:
    run = setup([searching("tea", completion=10)], tools=[SEARCH], max_output_tokens=10)
    events = await run.events()
    assert len(run.models.bodies) == 1 and run.search.queries == ["tea"]
    assert events[-1]["type"] == "response.incomplete"
    assert run.loop.response["incomplete_details"] == {"reason": "max_output_tokens"}


async def test_a_refused_first_call_propagates_before_any_event() -> None:
    run = setup([RateLimited("Slow down.")])
    seen: list[Json] = []
    with pytest.raises(RateLimited):
        async for event in run.loop.run():
            seen.append(event)
    assert seen == []


@pytest.mark.parametrize(
    ("error", "code"),
    [(RateLimited("Slow down."), "rate_limit_exceeded"), (InvalidRequest("Too long."), None)],
)
async def test_a_later_refused_call_fails_the_response_and_keeps_the_usage(
    error: TokenmillError, code: str | None
) -> None:
    run = setup([searching("tea", prompt=7, completion=3), error], tools=[SEARCH])
    events = await run.events()
    assert types(events)[-1] == "failed" and "completed" not in types(events)
    response = run.loop.response
    assert events[-1]["response"]["status"] == response["status"] == "failed"
    assert response["error"] == {"code": code or "invalid_request_error", "message": error.message}
    assert (response["usage"]["input_tokens"], response["usage"]["output_tokens"]) == (7, 3)
    assert response["output"][0]["type"] == "file_search_call"


async def test_a_stream_broken_midway_fails_the_response_and_closes_the_call() -> None:
    broken: list[Json | TokenmillError] = [*reply("Hel")[:2], RateLimited("Gone.")]
    run = setup([broken])
    events = await run.events()
    assert events[-1]["type"] == "response.failed"
    assert run.loop.response["error"]["code"] == "rate_limit_exceeded"
    assert run.models.calls[0].closed >= 1


async def test_closing_the_stream_midway_closes_the_model_call() -> None:
    run = setup([reply("a", "b", "c")])
    events = run.loop.run()
    async for event in events:
        if event["type"] == "response.output_text.delta":
            break
    await events.aclose()  # type: ignore[attr-defined]
    assert run.models.calls[0].closed >= 1


@pytest.mark.parametrize("read", [1, 2])
async def test_closing_the_stream_before_any_chunk_closes_the_model_call(read: int) -> None:
    run = setup([reply("a")])
    events = run.loop.run()
    for _ in range(read):  # response.created, then response.in_progress
        await anext(events)
    await events.aclose()  # type: ignore[attr-defined]
    assert run.models.calls[0].closed >= 1
