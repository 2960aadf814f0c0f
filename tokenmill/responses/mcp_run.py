"""The platform's side of the ``mcp`` tool within a response: list, ask, call.

Each server's tools are listed once per conversation (an ``mcp_list_tools`` item already in it
is reused, as OpenAI's API does), and only those the tool allows are imported. A call the model
makes either waits for approval (an ``mcp_approval_request`` item ends the response) or runs at
once as an ``mcp_call`` item; an approval in the next request's input runs the call it approves
before the model is called. A server that fails, hangs or answers too much gives an item with
its ``error``; the model reads that error and the response goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from tokenmill.responses.items import new_id
from tokenmill.responses.mcp import McpTool
from tokenmill.responses.step import Event


class Plugins(Protocol):
    async def list_tools(self, tool: McpTool) -> tuple[list[dict[str, Any]], str | None]:
        """The server's tools (OpenAI's ``mcp_list_tools`` shape), or why they are not."""
        ...

    async def call(
        self, tool: McpTool, name: str, arguments: dict[str, Any]
    ) -> tuple[str | None, str | None]:
        """The call's output and error (either, or an output cut short and why)."""
        ...


@dataclass(slots=True)
class McpRun:
    tools: tuple[McpTool, ...]
    plugins: Plugins | None
    output: list[dict[str, Any]]  # the response's output, appended to
    calls: int = 0

    def listings(self, conversation: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The latest ``mcp_list_tools`` item of each server in the conversation."""
        return {
            item["server_label"]: item for item in conversation if item["type"] == "mcp_list_tools"
        }

    async def list_missing(self, conversation: list[dict[str, Any]]) -> AsyncIterator[Event]:
        listed = self.listings(conversation)
        for tool in self.tools:
            if tool.server_label in listed:
                continue
            item: dict[str, Any] = {
                "type": "mcp_list_tools",
                "id": new_id("mcpl"),
                "server_label": tool.server_label,
                "tools": [],
                "error": None,
            }
            index = self._add(item)
            yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}
            where = {"item_id": item["id"], "output_index": index}
            yield {**where, "type": "response.mcp_list_tools.in_progress"}
            tools, item["error"] = await self._plugins.list_tools(tool)
            item["tools"] = [spec for spec in tools if tool.allows(str(spec["name"]))]
            outcome = "failed" if item["error"] else "completed"
            yield {**where, "type": f"response.mcp_list_tools.{outcome}"}
            yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}

    async def approved(
        self, new_items: list[dict[str, Any]], conversation: list[dict[str, Any]]
    ) -> AsyncIterator[Event]:
        """Runs the calls the new input approves (each once, however often it is re-sent)."""
        asked = {i["id"]: i for i in conversation if i["type"] == "mcp_approval_request"}
        done = {i.get("approval_request_id") for i in conversation if i["type"] == "mcp_call"}
        servers = {tool.server_label: tool for tool in self.tools}
        for item in new_items:
            if item["type"] != "mcp_approval_response" or not item["approve"]:
                continue
            request_id = item["approval_request_id"]
            if request_id in done:
                continue
            done.add(request_id)
            request = asked[request_id]  # checked by ``mcp.check_approvals``
            tool = servers[request["server_label"]]
            async for event in self.call(tool, request["name"], request["arguments"], request_id):
                yield event

    def ask(self, tool: McpTool, name: str, arguments: str) -> Iterator[Event]:
        item = {
            "type": "mcp_approval_request",
            "id": new_id("mcpr"),
            "server_label": tool.server_label,
            "name": name,
            "arguments": arguments,
        }
        index = self._add(item)
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}
        yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}

    async def call(
        self, tool: McpTool, name: str, arguments: str, approval_request_id: str | None = None
    ) -> AsyncIterator[Event]:
        item: dict[str, Any] = {
            "type": "mcp_call",
            "id": new_id("mcp"),
            "server_label": tool.server_label,
            "name": name,
            "arguments": arguments,
            "output": None,
            "error": None,
            "status": "in_progress",
            "approval_request_id": approval_request_id,
        }
        index = self._add(item)
        where = {"item_id": item["id"], "output_index": index}
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}
        yield {**where, "type": "response.mcp_call_arguments.delta", "delta": arguments}
        yield {**where, "type": "response.mcp_call_arguments.done", "arguments": arguments}
        yield {**where, "type": "response.mcp_call.in_progress"}
        try:
            parsed = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            item["output"], item["error"] = await self._plugins.call(tool, name, parsed)
        else:
            item["error"] = "The call's arguments are not a JSON object; the tool was not run."
        self.calls += 1
        item["status"] = "failed" if item["error"] and item["output"] is None else "completed"
        yield {**where, "type": f"response.mcp_call.{item['status']}"}
        yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}

    @property
    def _plugins(self) -> Plugins:
        assert self.plugins is not None, "a request with mcp tools needs plugins"
        return self.plugins

    def _add(self, item: dict[str, Any]) -> int:
        self.output.append(item)
        return len(self.output) - 1
