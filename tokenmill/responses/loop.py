"""The agent loop of a response: model, then the platform's tools, then the model again.

Each round is one streamed chat call (``Models.open``). Calls of the client's functions end
the response with ``function_call`` items (the client runs them and sends their output in a
follow-up response). Calls of ``file_search`` are run here, shown as ``file_search_call``
items, and so are the tools of MCP servers (``responses.mcp_run``: ``mcp_call`` items, or an
``mcp_approval_request`` that ends the response); their results go back to the model in the
next round. The loop stops offering the platform's tools once ``max_tool_calls`` of them ran,
once the time budget is spent, or when the model only repeats a call it already made;
``max_output_tokens`` bounds the output of all rounds together (a response cut off by it is
``incomplete``).

The loop is an async generator of events (OpenAI's stream, without sequence numbers); the
response object it was given is complete when the generator is. A failure before the first
model call started propagates (the request gets its 4xx); a later one fails the response
(``response.failed`` with the error) and keeps what was already done and billed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from tokenmill.clock import Clock
from tokenmill.errors import TokenmillError
from tokenmill.responses.items import item_text, new_id, to_messages
from tokenmill.responses.mcp import McpTool, chat_names, definition
from tokenmill.responses.mcp_run import McpRun, Plugins
from tokenmill.responses.objects import Usage, shown, shown_item
from tokenmill.responses.request import FILE_SEARCH, FileSearchTool, ResponseRequest
from tokenmill.responses.step import Event, PendingCall, Step

DEFAULT_MAX_TOOL_CALLS = 8
DEFAULT_BUDGET_SECONDS = 300.0


class ModelCall(Protocol):
    def chunks(self) -> AsyncIterator[dict[str, Any]]: ...

    async def close(self) -> None:
        """Ends the call: a no-op once its stream was read to the end, else it is aborted."""
        ...


class Models(Protocol):
    async def open(self, body: dict[str, Any]) -> ModelCall:
        """Admits, routes and sends one streamed chat call; raises ``TokenmillError``."""
        ...


class Search(Protocol):
    async def search(self, tool: FileSearchTool, query: str) -> list[dict[str, Any]]:
        """The results (``file_id``, ``filename``, ``score``, ``text``, ``attributes``)."""
        ...


@dataclass(slots=True)
class AgentLoop:
    request: ResponseRequest
    response: dict[str, Any]  # from ``new_response``; completed in place
    history: list[dict[str, Any]]  # earlier items of the conversation
    models: Models
    search: Search
    clock: Clock
    budget_seconds: float = DEFAULT_BUDGET_SECONDS
    plugins: Plugins | None = None  # runs the request's mcp tools
    rewrite: Callable[[str], Awaitable[str]] | None = None  # a forced search's query writer
    usage: Usage = field(default_factory=Usage)
    searches: int = 0
    made: set[str] = field(default_factory=set)  # the platform calls made, as ``_key``s
    mcp: McpRun = field(init=False)

    def __post_init__(self) -> None:
        self.mcp = McpRun(self.request.mcp, self.plugins, self.response["output"])

    @property
    def platform_calls(self) -> int:
        return self.searches + self.mcp.calls

    @property
    def conversation(self) -> list[dict[str, Any]]:
        """Everything the model has seen or said: history, input, output so far."""
        return [*self.history, *self.request.items, *self.response["output"]]

    async def run(self) -> AsyncIterator[Event]:
        started = self.clock.monotonic()
        opening = [
            {"type": "response.created", "response": self._shown()},
            {"type": "response.in_progress", "response": self._shown()},
        ]
        if self.request.mcp:  # approved calls run, and servers not yet listed are
            opening += [e async for e in self.mcp.approved(self.request.items, self.conversation)]
            opening += [e async for e in self.mcp.list_missing(self.conversation)]
        forced = self._forced_query()
        if forced is not None and self.rewrite is not None:
            forced = await self.rewrite(forced)
        if forced is not None:  # searched before the model is called: no query to write
            opening += [event async for event in self._search(forced)]
        call: ModelCall | None = await self.models.open(  # after a forced search, an answer
            self._body(first=forced is None, platform_tools=forced is None)
        )
        try:
            for event in opening:
                yield event
            while call is not None:
                names = self._mcp_names()
                step = Step(
                    self.response["output"],
                    self.usage,
                    self._sources(),
                    frozenset({FILE_SEARCH, *names}),
                )
                async for chunk in call.chunks():
                    for event in step.feed(chunk):
                        yield event
                await call.close()
                call = None
                for event in step.close():
                    yield event
                if step.finish_reason == "length":
                    self._finish("incomplete", {"reason": "max_output_tokens"})
                    break
                fresh = any(self._key(c) not in self.made for c in step.platform_calls)
                waiting = False  # for the client's approval of a call
                for pending in step.platform_calls:
                    self.made.add(self._key(pending))
                    if pending.name == FILE_SEARCH:
                        events = self._search(self._query(pending))
                    else:
                        tool, spec = names[pending.name]
                        if tool.needs_approval(spec["name"]):
                            waiting = True
                            for event in self.mcp.ask(tool, spec["name"], pending.arguments):
                                yield event
                            continue
                        events = self.mcp.call(tool, spec["name"], pending.arguments)
                    async for event in events:
                        yield event
                # Searches beside a call of the client's run too (their results are there for
                # the follow-up), but the response then ends.
                if step.client_calls or waiting or not step.platform_calls:
                    self._finish("completed")
                    break
                remaining = self._remaining_output()
                if remaining is not None and remaining <= 0:
                    self._finish("incomplete", {"reason": "max_output_tokens"})
                    break
                platform_tools = (
                    fresh
                    and self.platform_calls
                    < (self.request.max_tool_calls or DEFAULT_MAX_TOOL_CALLS)
                    and self.clock.monotonic() - started < self.budget_seconds
                )
                call = await self.models.open(
                    self._body(first=False, platform_tools=platform_tools)
                )
        except TokenmillError as error:
            self.response["status"] = "failed"
            self.response["error"] = {"code": error.code or error.type, "message": error.message}
            self.response["usage"] = self.usage.as_openai()
            yield {"type": "response.failed", "response": self._shown()}
            return
        finally:  # also when the generator is closed early (client gone): stop the call
            if call is not None:
                await call.close()
        yield {"type": f"response.{self.response['status']}", "response": self._shown()}

    def _finish(self, status: str, incomplete: dict[str, Any] | None = None) -> None:
        self.response["status"] = status
        self.response["incomplete_details"] = incomplete
        self.response["usage"] = self.usage.as_openai()

    def _shown(self) -> dict[str, Any]:
        return shown(
            dict(self.response, output=list(self.response["output"])), self.request.include
        )

    async def _search(self, query: str) -> AsyncIterator[Event]:
        tool = self.request.file_search
        assert tool is not None  # the model is offered file_search only with the tool
        item: dict[str, Any] = {
            "type": "file_search_call",
            "id": new_id("fs"),
            "status": "in_progress",
            "queries": [query],
            "results": None,
        }
        output = self.response["output"]
        output.append(item)
        index = len(output) - 1
        where = {"item_id": item["id"], "output_index": index}
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}
        yield {**where, "type": "response.file_search_call.in_progress"}
        yield {**where, "type": "response.file_search_call.searching"}
        item["results"] = await self.search.search(tool, query)
        item["status"] = "completed"
        self.searches += 1
        self.made.add(query)
        yield {**where, "type": "response.file_search_call.completed"}
        yield {
            "type": "response.output_item.done",
            "output_index": index,
            "item": shown_item(dict(item), self.request.include),
        }

    def _forced_query(self) -> str | None:
        """When the request forces a file search (``tool_choice`` ``file_search``, or
        ``required`` with no function to call instead), the platform searches the latest user
        message as it is, without asking the model to write a query first."""
        request = self.request
        if request.file_search is None or not (
            request.tool_choice == {"type": FILE_SEARCH}
            or (request.tool_choice == "required" and not request.functions)
        ):
            return None
        for item in reversed(self.conversation):
            if item["type"] == "message" and item["role"] == "user" and item_text(item).strip():
                return item_text(item).strip()
        return None

    def _mcp_names(self) -> dict[str, tuple[McpTool, dict[str, Any]]]:
        """The model's name for each MCP tool it may call (``mcp.chat_names``)."""
        if not self.request.mcp:
            return {}
        taken = {f["name"] for f in self.request.functions} | {FILE_SEARCH}
        return chat_names(self.request.mcp, self.mcp.listings(self.conversation), taken)

    def _key(self, call: PendingCall) -> str:
        """A call as the loop tells repeats apart: a search by its query, a tool by its name
        and arguments."""
        if call.name == FILE_SEARCH:
            return self._query(call)
        try:
            arguments = orjson.dumps(
                orjson.loads(call.arguments or "{}"), option=orjson.OPT_SORT_KEYS
            )
        except orjson.JSONDecodeError:
            arguments = call.arguments.encode()
        return f"{call.name}\0{arguments.decode()}"

    @staticmethod
    def _query(call: PendingCall) -> str:
        try:
            arguments = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            return call.arguments.strip()
        query = arguments.get("query") if isinstance(arguments, dict) else None
        return query.strip() if isinstance(query, str) else call.arguments.strip()

    def _sources(self) -> list[dict[str, Any]]:
        """The results of the latest file search the model saw, for citations."""
        for item in reversed(self.conversation):
            if item["type"] == "file_search_call":
                return list(item.get("results") or [])
        return []

    def _remaining_output(self) -> int | None:
        limit = self.request.max_output_tokens
        return None if limit is None else limit - self.usage.output_tokens

    def _body(self, *, first: bool, platform_tools: bool) -> dict[str, Any]:
        request = self.request
        body: dict[str, Any] = {
            "model": request.model,
            "messages": to_messages(request.instructions, self.conversation),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        remaining = self._remaining_output()
        if remaining is not None:
            body["max_tokens"] = remaining
        if (fmt := request.response_format()) is not None:
            body["response_format"] = fmt
        names = self._mcp_names()
        tools = request.chat_tools() + [definition(n, spec) for n, (_, spec) in names.items()]
        if not platform_tools:
            platform = {FILE_SEARCH, *names}
            tools = [t for t in tools if t["function"]["name"] not in platform]
        if tools and request.tool_choice != "none":
            body["tools"] = tools
            by_tool = {(tool.server_label, spec["name"]): n for n, (tool, spec) in names.items()}
            choice = request.chat_tool_choice(by_tool) if first else "auto"
            body["tool_choice"] = choice
            # One call per round when a platform tool is forced: small models repeat a forced
            # call until the output limit when they may make several.
            forced = isinstance(choice, dict) and choice["function"]["name"] in {
                FILE_SEARCH,
                *names,
            }
            body["parallel_tool_calls"] = request.parallel_tool_calls and not forced
        return body
