"""The agent loop with MCP tools, over scripted model replies and a scripted server: listing
once per conversation, calls run or held for approval, errors the model reads, and the
limits that stop a loop."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tests.responses.scripted import FixedSearch, Json, ScriptedModels, reply
from tokenmill.clock import ManualClock
from tokenmill.errors import InvalidRequest
from tokenmill.responses.loop import AgentLoop
from tokenmill.responses.mcp import DECLINED, McpTool, check_approvals
from tokenmill.responses.objects import new_response
from tokenmill.responses.request import parse_response_request

ADD = {"name": "add", "description": "Adds two numbers.", "annotations": None,
       "input_schema": {"type": "object", "properties": {"a": {"type": "integer"},
                                                         "b": {"type": "integer"}}}}  # fmt: skip
TEXT = {"type": "object", "properties": {"text": {"type": "string"}}}
SHOUT = {"name": "shout", "description": "Upper-cases text.", "annotations": None,
         "input_schema": TEXT}  # fmt: skip


def mcp(**fields: Any) -> Json:
    return {"type": "mcp", "server_label": "calc", "require_approval": "never", **fields}


@dataclass
class ScriptedServer:
    tools: list[Json] = field(default_factory=lambda: [copy.deepcopy(ADD), copy.deepcopy(SHOUT)])
    list_error: str | None = None
    answers: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    listed: list[str] = field(default_factory=list)
    called: list[tuple[str, str, Json]] = field(default_factory=list)

    async def list_tools(self, tool: McpTool) -> tuple[list[Json], str | None]:
        self.listed.append(tool.server_label)
        if self.list_error:
            return [], self.list_error
        return copy.deepcopy(self.tools), None

    async def call(
        self, tool: McpTool, name: str, arguments: Json
    ) -> tuple[str | None, str | None]:
        self.called.append((tool.server_label, name, arguments))
        if name in self.answers:
            return self.answers[name]
        if name == "add":
            return str(arguments["a"] + arguments["b"]), None
        return str(arguments.get("text", "")).upper(), None


@dataclass
class Run:
    loop: AgentLoop
    models: ScriptedModels
    server: ScriptedServer

    async def events(self) -> list[Json]:
        return [orjson.loads(orjson.dumps(event)) async for event in self.loop.run()]

    @property
    def output(self) -> list[Json]:
        return self.loop.response["output"]


def setup(
    replies: list[Any],
    tools: list[Json] | None = None,
    history: list[Json] | None = None,
    server: ScriptedServer | None = None,
    **fields: Any,
) -> Run:
    body = {"model": "m", "input": "What is 2 + 3?", "tools": tools or [mcp()], **fields}
    request = parse_response_request(body)
    response = new_response("resp_1", request, "m", 1_767_225_600, "default")
    clock = ManualClock()
    models, server = ScriptedModels(replies), server or ScriptedServer()
    loop = AgentLoop(
        request, response, history or [], models, FixedSearch([], clock), clock, plugins=server
    )
    return Run(loop, models, server)


def types(events: list[Json]) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events]


def tool_names(body: Json) -> list[str]:
    return [tool["function"]["name"] for tool in body.get("tools", [])]


def adding(a: int = 2, b: int = 3) -> list[Json]:
    return reply(calls=[("add", orjson.dumps({"a": a, "b": b}).decode())])


async def test_a_server_is_listed_then_its_tool_called_and_its_output_read_by_the_model() -> None:
    run = setup([adding(), reply("It is 5.")])
    events = await run.events()
    assert types(events) == [
        "created", "in_progress",
        "output_item.added", "mcp_list_tools.in_progress", "mcp_list_tools.completed",
        "output_item.done",
        "output_item.added", "mcp_call_arguments.delta", "mcp_call_arguments.done",
        "mcp_call.in_progress", "mcp_call.completed", "output_item.done",
        "output_item.added", "content_part.added", "output_text.delta", "output_text.done",
        "content_part.done", "output_item.done", "completed",
    ]  # fmt: skip
    listing, call, message = run.output
    assert listing["type"] == "mcp_list_tools"
    assert [t["name"] for t in listing["tools"]] == ["add", "shout"]
    assert call == {
        "type": "mcp_call", "id": call["id"], "server_label": "calc", "name": "add",
        "arguments": '{"a":2,"b":3}', "output": "5", "error": None, "status": "completed",
        "approval_request_id": None,
    }  # fmt: skip
    assert message["content"][0]["text"] == "It is 5."
    assert run.server.called == [("calc", "add", {"a": 2, "b": 3})]
    first, second = run.models.bodies
    assert tool_names(first) == ["add", "shout"]
    assert first["tools"][0]["function"]["parameters"] == ADD["input_schema"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "add"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": call["id"], "content": "5"}
    assert run.loop.response["status"] == "completed"


async def test_a_server_already_listed_in_the_conversation_is_not_listed_again() -> None:
    first = setup([reply("Ready.")])
    await first.events()
    history = [*first.loop.request.items, *first.output]
    again = setup([adding(), reply("5")], history=history)
    events = await again.events()
    assert "mcp_list_tools.in_progress" not in types(events)
    assert again.server.listed == []
    assert tool_names(again.models.bodies[0]) == ["add", "shout"]


async def test_a_call_that_needs_approval_ends_the_response_and_runs_once_approved() -> None:
    asking = setup([adding()], tools=[mcp(require_approval="always")])
    await asking.events()
    request = asking.output[-1]
    assert request["type"] == "mcp_approval_request"
    assert (request["name"], request["arguments"]) == ("add", '{"a":2,"b":3}')
    assert asking.server.called == []
    assert asking.loop.response["status"] == "completed"
    history = [*asking.loop.request.items, *asking.output]
    approval = {"type": "mcp_approval_response", "approval_request_id": request["id"],
                "approve": True}  # fmt: skip
    approved = setup(
        [reply("It is 5.")], tools=[mcp(require_approval="always")], history=history,
        input=[approval],
    )  # fmt: skip
    check_approvals(approved.loop.request.items, history, approved.loop.request.mcp)
    events = await approved.events()
    call = approved.output[0]
    assert (call["type"], call["output"], call["approval_request_id"]) == (
        "mcp_call",
        "5",
        request["id"],
    )
    assert types(events).index("mcp_call.completed") < types(events).index("output_text.delta")
    messages = approved.models.bodies[0]["messages"]
    assert messages[-1] == {"role": "tool", "tool_call_id": call["id"], "content": "5"}
    assert [m["role"] for m in messages].count("assistant") == 1  # the request shows as no call


async def test_a_declined_call_is_not_run_and_the_model_is_told() -> None:
    asking = setup([adding()], tools=[mcp(require_approval="always")])
    await asking.events()
    request = asking.output[-1]
    history = [*asking.loop.request.items, *asking.output]
    declined = setup(
        [reply("Fine, I will not.")], tools=[mcp(require_approval="always")], history=history,
        input=[{"type": "mcp_approval_response", "approval_request_id": request["id"],
                "approve": False}],
    )  # fmt: skip
    await declined.events()
    assert declined.server.called == []
    messages = declined.models.bodies[0]["messages"]
    assert messages[-2]["tool_calls"][0]["id"] == request["id"]
    assert messages[-1] == {"role": "tool", "tool_call_id": request["id"], "content": DECLINED}


async def test_approval_per_tool_holds_only_the_named_tools() -> None:
    policy = {"never": {"tool_names": ["shout"]}}
    calls = [("shout", '{"text":"hi"}'), ("add", '{"a":1,"b":1}')]
    run = setup([reply(calls=calls)], tools=[mcp(require_approval=policy)])
    await run.events()
    assert [i["type"] for i in run.output] == ["mcp_list_tools", "mcp_call", "mcp_approval_request"]
    assert run.server.called == [("calc", "shout", {"text": "hi"})]


async def test_an_approval_for_a_request_not_in_the_conversation_is_refused() -> None:
    request = parse_response_request({
        "model": "m", "tools": [mcp()],
        "input": [{"type": "mcp_approval_response", "approval_request_id": "mcpr_x",
                   "approve": True}],
    })  # fmt: skip
    with pytest.raises(InvalidRequest) as refused:
        check_approvals(request.items, [], request.mcp)
    assert refused.value.param == "input[0].approval_request_id"
    asked = {"type": "mcp_approval_request", "id": "mcpr_x", "server_label": "other",
             "name": "add", "arguments": "{}"}  # fmt: skip
    with pytest.raises(InvalidRequest, match="'other'"):
        check_approvals(request.items, [asked], request.mcp)


async def test_a_server_that_cannot_be_listed_gives_an_item_with_its_error_and_no_tools() -> None:
    server = ScriptedServer(list_error="The MCP server 'calc' did not answer within 30 s.")
    run = setup([reply("I cannot reach it.")], server=server)
    events = await run.events()
    assert "mcp_list_tools.failed" in types(events)
    assert run.output[0]["error"] == server.list_error
    assert "tools" not in run.models.bodies[0]
    assert run.loop.response["status"] == "completed"


async def test_a_failing_tool_gives_a_failed_call_whose_error_the_model_reads() -> None:
    server = ScriptedServer(answers={"add": (None, "division by zero")})
    run = setup([adding(), reply("The tool failed.")], server=server)
    events = await run.events()
    call = run.output[1]
    assert (call["status"], call["output"], call["error"]) == ("failed", None, "division by zero")
    assert "mcp_call.failed" in types(events)
    tool_message = run.models.bodies[1]["messages"][-1]
    assert tool_message["content"] == "Error: division by zero"


async def test_a_cut_output_is_kept_with_its_error_and_the_model_reads_both() -> None:
    server = ScriptedServer(answers={"add": ("x" * 10, "The tool's output was 9 MB; cut.")})
    run = setup([adding(), reply("Long.")], server=server)
    await run.events()
    call = run.output[1]
    assert (call["status"], call["output"]) == ("completed", "x" * 10)
    assert run.models.bodies[1]["messages"][-1]["content"] == (
        "xxxxxxxxxx\n\n[The tool's output was 9 MB; cut.]"
    )


async def test_arguments_that_are_not_a_json_object_fail_the_call_without_running_it() -> None:
    run = setup([reply(calls=[("add", "not json")]), reply("Sorry.")])
    await run.events()
    assert run.server.called == []
    assert "not a JSON object" in run.output[1]["error"]


async def test_allowed_tools_limit_what_the_model_is_offered() -> None:
    run = setup([reply("ok")], tools=[mcp(allowed_tools=["shout"])])
    await run.events()
    assert tool_names(run.models.bodies[0]) == ["shout"]
    assert [t["name"] for t in run.output[0]["tools"]] == ["shout"]  # only those are imported


async def test_a_tool_named_like_a_function_is_offered_under_its_server_s_label() -> None:
    add = {"type": "function", "name": "add", "parameters": {"type": "object"}}
    run = setup([reply(calls=[("calc_add", '{"a":1,"b":2}')]), reply("3")], tools=[add, mcp()])
    await run.events()
    assert tool_names(run.models.bodies[0]) == ["add", "calc_add", "shout"]
    assert run.server.called == [("calc", "add", {"a": 1, "b": 2})]
    assert run.output[1]["name"] == "add"


async def test_a_repeated_call_stops_the_tools_and_max_tool_calls_counts_mcp_calls() -> None:
    run = setup([adding(), adding(), reply("5")])
    await run.events()
    assert tool_names(run.models.bodies[1]) == ["add", "shout"]
    assert "tools" not in run.models.bodies[2]  # the same call twice: no more tools
    limited = setup([adding(), reply("5")], max_tool_calls=1)
    await limited.events()
    assert "tools" not in limited.models.bodies[1]


async def test_tool_choice_may_force_one_tool_of_a_server() -> None:
    choice = {"type": "mcp", "server_label": "calc", "name": "shout"}
    run = setup([reply("ok")], tool_choice=choice)
    await run.events()
    assert run.models.bodies[0]["tool_choice"] == {"type": "function",
                                                   "function": {"name": "shout"}}  # fmt: skip
    assert run.loop.response["tool_choice"] == choice


async def test_inline_secrets_are_sent_to_the_server_but_never_echoed() -> None:
    tool = mcp(server_url="https://mcp.example.com/mcp", headers={"X-Api-Key": "k1"},
               authorization="t0k")  # fmt: skip
    run = setup([reply("ok")], tools=[tool])
    server_tool = run.loop.request.mcp[0]
    assert server_tool.headers == {"X-Api-Key": "k1", "Authorization": "Bearer t0k"}
    await run.events()
    echoed = orjson.dumps(run.loop.response).decode()
    assert "k1" not in echoed and "t0k" not in echoed
    assert run.loop.response["tools"][0]["server_url"] == "https://mcp.example.com/mcp"
