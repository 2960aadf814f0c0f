"""The items of a conversation in the Responses API, and how a chat model is shown them.

Input is a string (one user message) or a list of items: messages (``role`` ``user``,
``system``, ``developer`` or ``assistant``; ``content`` a string or ``input_text`` /
``output_text`` parts), ``function_call`` items a response produced and ``function_call_output``
items the client answers them with, ``file_search_call`` items echoed back, and the ``mcp_``
items (``responses.mcp``). Every item is
stored as OpenAI lists it (with an id), and turned into chat messages for each model call: a
function call becomes an assistant ``tool_calls`` entry, its output a ``tool`` message, and a
file search the same pair, its results numbered so the model can cite them.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from tokenmill.errors import InvalidRequest
from tokenmill.responses.mcp import DECLINED, ITEM_TYPES, call_result_text, parse_mcp_item

ROLES = frozenset({"user", "system", "developer", "assistant"})
TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
MAX_ITEMS = 2048


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def parse_input(raw: Any) -> list[dict[str, Any]]:
    """The input as stored items; raises ``InvalidRequest`` naming ``input[i]...``."""
    if isinstance(raw, str):
        return [message_item("user", raw)]
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest(
            "'input' must be a string or a non-empty array of items.", param="input"
        )
    if len(raw) > MAX_ITEMS:
        raise InvalidRequest(f"'input' may hold at most {MAX_ITEMS} items.", param="input")
    return [_item(item, f"input[{i}]") for i, item in enumerate(raw)]


def message_item(role: str, text: str, item_id: str | None = None) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    part: dict[str, Any] = {"type": kind, "text": text}
    if kind == "output_text":
        part["annotations"] = []
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": "completed",
        "role": role,
        "content": [part],
    }


def _item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidRequest(f"'{where}' must be an object.", param=where)
    kind = item.get("type", "message")
    if kind == "message":
        return _message(item, where)
    if kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            _require_str(item, key, where)
        return {
            "type": "function_call",
            "id": _id(item, "fc"),
            "call_id": item["call_id"],
            "name": item["name"],
            "arguments": item["arguments"],
            "status": "completed",
        }
    if kind == "function_call_output":
        _require_str(item, "call_id", where)
        output = item.get("output")
        if not isinstance(output, str):
            output = _text_of_parts(output, f"{where}.output")
        return {
            "type": "function_call_output",
            "id": _id(item, "fco"),
            "call_id": item["call_id"],
            "output": output,
            "status": "completed",
        }
    if kind == "file_search_call":
        queries = item.get("queries")
        if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
            raise InvalidRequest(
                f"'{where}.queries' must be an array of strings.", param=f"{where}.queries"
            )
        return {
            "type": "file_search_call",
            "id": _id(item, "fs"),
            "status": "completed",
            "queries": queries,
            "results": item.get("results") if isinstance(item.get("results"), list) else None,
        }
    if kind in ITEM_TYPES:
        return parse_mcp_item(item, kind, where, new_id)
    raise InvalidRequest(
        f"'{where}.type' must be 'message', 'function_call', 'function_call_output', "
        f"'file_search_call' or an 'mcp_' item, got {kind!r}.",
        param=f"{where}.type",
    )


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRequest(
            f"'{where}.role' must be one of {sorted(ROLES)}, got {role!r}.", param=f"{where}.role"
        )
    content = item.get("content")
    text = content if isinstance(content, str) else _text_of_parts(content, f"{where}.content")
    return message_item(role, text, item.get("id") if isinstance(item.get("id"), str) else None)


def _text_of_parts(parts: Any, where: str) -> str:
    if not isinstance(parts, list):
        raise InvalidRequest(f"'{where}' must be a string or an array of parts.", param=where)
    texts = []
    for i, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if (
            not isinstance(kind, str)
            or kind not in TEXT_PARTS
            or not isinstance(part.get("text"), str)
        ):
            raise InvalidRequest(
                f"'{where}[{i}]' must be a text part ('input_text' or 'output_text'); "
                f"{kind!r} parts are not supported.",
                param=f"{where}[{i}]",
            )
        texts.append(part["text"])
    return "".join(texts)


def _require_str(item: dict[str, Any], key: str, where: str) -> None:
    if not isinstance(item.get(key), str) or not item[key]:
        raise InvalidRequest(
            f"'{where}.{key}' is required and must be a string.", param=f"{where}.{key}"
        )


def _id(item: dict[str, Any], prefix: str) -> str:
    value = item.get("id")
    return value if isinstance(value, str) and value else new_id(prefix)


def item_text(item: dict[str, Any]) -> str:
    """The text of a message item."""
    return "".join(part.get("text", "") for part in item.get("content") or ())


def search_results_text(results: list[dict[str, Any]]) -> str:
    """File search results as the model reads them: numbered by rank, so it can cite ``[n]``,
    and written best last, nearest the answer, where models (small ones above all) read best."""
    if not results:
        return "No passages matched the query."
    blocks = [
        f"[{n}] {result.get('filename') or result.get('file_id')}\n{result.get('text', '')}"
        for n, result in enumerate(results, 1)
    ]
    return (
        "Passages from the user's files, the most relevant last. Answer from them and cite "
        "each one you use as [n].\n\n" + "\n\n".join(reversed(blocks))
    )


def to_messages(instructions: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages for a model call over ``items`` (the whole conversation so far)."""
    messages: list[dict[str, Any]] = []
    declined = {
        item["approval_request_id"]
        for item in items
        if item["type"] == "mcp_approval_response" and not item["approve"]
    }
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": item_text(item)})
        elif kind == "function_call":
            _call(messages, item["call_id"], item["name"], item["arguments"])
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
            )
        elif kind == "file_search_call":
            arguments = orjson.dumps({"query": " ".join(item["queries"])}).decode()
            _call(messages, item["id"], "file_search", arguments)
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item["id"],
                    "content": search_results_text(item.get("results") or []),
                }
            )
        elif kind == "mcp_call" or (kind == "mcp_approval_request" and item["id"] in declined):
            # An approval still awaited, or answered yes (its mcp_call follows), shows nothing.
            _call(messages, item["id"], item["name"], item["arguments"])
            text = call_result_text(item) if kind == "mcp_call" else DECLINED
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": text})
    return messages


def _call(messages: list[dict[str, Any]], call_id: str, name: str, arguments: str) -> None:
    """Adds a tool call to the last assistant turn, or starts one."""
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and "tool_calls" in last:
        last["tool_calls"].append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
