"""The ``mcp`` tool of the Responses API and its items.

    {"type": "mcp", "server_label": "wiki",
     "allowed_tools": [...], "require_approval": "always" | "never" | {...},
     "server_url": ..., "headers": {...}, "authorization": ..., "server_description": ...}

A label alone names one of the tenant's registered MCP servers (``plugins.servers``); with a
``server_url`` the server is given inline, for this response only (its ``headers`` and
``authorization`` are sent to it, never stored or echoed). Calls wait for approval unless
``require_approval`` (and the registered server's policy) say ``never``, as in OpenAI's API.

Items: ``mcp_list_tools`` (a server's tools, listed once per conversation), ``mcp_call`` (a
call and its output or error), ``mcp_approval_request`` (a call waiting for the client) and
``mcp_approval_response`` (the client's answer, in the next request's input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tokenmill.errors import InvalidRequest
from tokenmill.plugins.policy import (
    HEADER_VALUE,
    LABEL,
    needs_approval,
    parse_allowed_tools,
    parse_approval,
    parse_headers,
)
from tokenmill.protocol.requests import refuse_unknown
from tokenmill.protocol.tools import FUNCTION_NAME

MCP = "mcp"
TOOL_FIELDS = frozenset(
    {
        "type",
        "server_label",
        "server_url",
        "server_description",
        "headers",
        "authorization",
        "allowed_tools",
        "require_approval",
        "connector_id",
    }
)
SECRET_FIELDS = frozenset({"headers", "authorization"})
ITEM_TYPES = frozenset(
    {"mcp_list_tools", "mcp_call", "mcp_approval_request", "mcp_approval_response"}
)
DECLINED = "The user declined this call."


@dataclass(frozen=True, slots=True)
class McpTool:
    server_label: str
    server_url: str | None = None  # inline; None names a registered server
    headers: dict[str, str] = field(default_factory=dict)  # inline only
    allowed: tuple[tuple[str, ...], ...] = ()  # a tool must be in every list
    approvals: tuple[Any, ...] = ("always",)  # a call waits if any policy says so
    raw: dict[str, Any] = field(default_factory=dict)  # echoed, without secrets

    def allows(self, name: str) -> bool:
        return all(name in names for names in self.allowed)

    def needs_approval(self, name: str) -> bool:
        return any(needs_approval(policy, name) for policy in self.approvals)


def parse_mcp_tool(tool: dict[str, Any], where: str) -> McpTool:
    refuse_unknown(tool, TOOL_FIELDS, where)
    if tool.get("connector_id") is not None:
        raise InvalidRequest(
            f"'{where}.connector_id': connectors are not available; register the MCP server "
            "and name it by server_label.",
            param=f"{where}.connector_id",
        )
    label = tool.get("server_label")
    if not isinstance(label, str) or not LABEL.match(label):
        raise InvalidRequest(
            f"'{where}.server_label' must be 1 to 64 letters, digits, '_' or '-'.",
            param=f"{where}.server_label",
        )
    url = tool.get("server_url")
    if url is not None and not isinstance(url, str):
        raise InvalidRequest(f"'{where}.server_url' must be a string.", param=f"{where}.server_url")
    headers = parse_headers(tool.get("headers"), f"{where}.headers")
    authorization = tool.get("authorization")
    if authorization is not None:
        if not isinstance(authorization, str) or not HEADER_VALUE.match(authorization):
            raise InvalidRequest(
                f"'{where}.authorization' must be a one-line string.",
                param=f"{where}.authorization",
            )
        headers["Authorization"] = f"Bearer {authorization}"
    if headers and url is None:
        raise InvalidRequest(
            f"'{where}.headers' go with a server_url; a registered server has its own.",
            param=f"{where}.headers",
        )
    allowed = parse_allowed_tools(tool.get("allowed_tools"), f"{where}.allowed_tools")
    approval = parse_approval(tool.get("require_approval", "always"), f"{where}.require_approval")
    return McpTool(
        server_label=label,
        server_url=url,
        headers=headers,
        allowed=() if allowed is None else (allowed,),
        approvals=(approval,),
        raw={k: v for k, v in tool.items() if k not in SECRET_FIELDS},
    )


def parse_mcp_item(item: dict[str, Any], kind: str, where: str, new_id: Any) -> dict[str, Any]:
    """An ``mcp_*`` input item, echoed back by a client that keeps its own conversation."""
    if kind == "mcp_approval_response":
        request_id = item.get("approval_request_id")
        if not isinstance(request_id, str) or not request_id:
            raise InvalidRequest(
                f"'{where}.approval_request_id' is required.", param=f"{where}.approval_request_id"
            )
        if not isinstance(item.get("approve"), bool):
            raise InvalidRequest(
                f"'{where}.approve' must be true or false.", param=f"{where}.approve"
            )
        return {
            "type": kind,
            "id": _str(item, "id", where, required=False) or new_id("mcpa"),
            "approval_request_id": request_id,
            "approve": item["approve"],
            "reason": _str(item, "reason", where, required=False),
        }
    label = _str(item, "server_label", where)
    if kind == "mcp_list_tools":
        tools = item.get("tools")
        if not isinstance(tools, list) or not all(
            isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools
        ):
            raise InvalidRequest(
                f"'{where}.tools' must be a list of tools with names.", param=f"{where}.tools"
            )
        return {
            "type": kind,
            "id": _str(item, "id", where, required=False) or new_id("mcpl"),
            "server_label": label,
            "tools": tools,
            "error": _str(item, "error", where, required=False),
        }
    base = {
        "type": kind,
        "id": _str(item, "id", where, required=kind == "mcp_approval_request") or new_id("mcp"),
        "server_label": label,
        "name": _str(item, "name", where),
        "arguments": _str(item, "arguments", where),
    }
    if kind == "mcp_approval_request":
        return base
    return {
        **base,
        "output": _str(item, "output", where, required=False),
        "error": _str(item, "error", where, required=False),
        "status": "failed" if item.get("error") else "completed",
        "approval_request_id": _str(item, "approval_request_id", where, required=False),
    }


def _str(item: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidRequest(
            f"'{where}.{key}' is required and must be a string."
            if required
            else f"'{where}.{key}' must be a string.",
            param=f"{where}.{key}",
        )
    return value


def check_approvals(
    new_items: list[dict[str, Any]], history: list[dict[str, Any]], tools: tuple[McpTool, ...]
) -> None:
    """Every approval answers a request of this conversation, for a server the request still
    offers; raises ``InvalidRequest`` naming the input item."""
    requests = {
        item["id"]: item
        for item in [*history, *new_items]
        if item["type"] == "mcp_approval_request"
    }
    labels = {tool.server_label for tool in tools}
    for i, item in enumerate(new_items):
        if item["type"] != "mcp_approval_response":
            continue
        where = f"input[{i}].approval_request_id"
        asked = requests.get(item["approval_request_id"])
        if asked is None:
            raise InvalidRequest(
                f"'{where}': no MCP approval request with id "
                f"'{item['approval_request_id']}' in this conversation.",
                param=where,
            )
        if asked["server_label"] not in labels:
            raise InvalidRequest(
                f"'{where}': the approved call is to the MCP server '{asked['server_label']}', "
                "which this request's tools do not include.",
                param=where,
            )


def chat_names(
    tools: tuple[McpTool, ...], listings: dict[str, dict[str, Any]], taken: set[str]
) -> dict[str, tuple[McpTool, dict[str, Any]]]:
    """The model's name for each allowed tool of each server (its own name, or
    ``label_name`` where that is taken): name -> (server, tool as listed)."""
    names: dict[str, tuple[McpTool, dict[str, Any]]] = {}
    for tool in tools:
        listing = listings.get(tool.server_label)
        for spec in (listing or {}).get("tools") or ():
            name = str(spec["name"])
            if not tool.allows(name):
                continue
            chat = name
            if chat in taken or chat in names or not FUNCTION_NAME.match(chat):
                chat = re.sub(r"[^A-Za-z0-9_-]", "_", f"{tool.server_label}_{name}")[:64]
            names[chat] = (tool, spec)
    return names


def definition(chat_name: str, spec: dict[str, Any]) -> dict[str, Any]:
    schema = spec.get("input_schema")
    return {
        "type": "function",
        "function": {
            "name": chat_name,
            "description": spec.get("description") or "",
            "parameters": schema if isinstance(schema, dict) else {"type": "object"},
        },
    }


def call_result_text(item: dict[str, Any]) -> str:
    """What the model reads back from an ``mcp_call``."""
    if item.get("error") and item.get("output"):
        return f"{item['output']}\n\n[{item['error']}]"
    if item.get("error"):
        return f"Error: {item['error']}"
    return str(item.get("output") or "")
