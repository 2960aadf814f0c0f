"""Tools in the prompt: the model's own tool section where its chat template has one, else one
generic format that any template can carry.

The generic format: a system section lists the functions (name, description, JSON Schema of
the arguments) and tells the model to answer either in plain text or with one line per call,

    <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>

Calls in the history are written back the same way into the assistant's content, and tool
results come as user turns wrapped in ``<tool_response>`` tags, so that templates that know only
system, user and assistant render them too. ``tool_calls`` parses exactly this format.
"""

from __future__ import annotations

import json
from typing import Any

from tokenmill.engine.tool_grammar import CALL_CLOSE, CALL_OPEN
from tokenmill.protocol.requests import message_text
from tokenmill.protocol.tools import FunctionTool, ToolUse, history_calls

RESPONSE_OPEN = "<tool_response>"
RESPONSE_CLOSE = "</tool_response>"


def tool_section(tools: tuple[FunctionTool, ...], use: ToolUse) -> str:
    """The system text that tells the model which functions it has and how to call them."""
    listed = "\n".join(json.dumps(tool.definition(), ensure_ascii=False) for tool in tools)
    if use.mode == "named":
        ask = f"Call the function {use.name} now."
    elif use.mode == "required":
        ask = "Call one of these functions now."
    else:
        ask = "If a function helps, call it; otherwise answer in plain text."
    many = " Write one such line for each call." if use.parallel else ""
    return (
        "You can call these functions; each is given with a JSON Schema of its arguments:\n"
        f"{listed}\n"
        f"{ask} To call a function, answer with exactly\n"
        f'{CALL_OPEN}{{"name": "<function name>", "arguments": {{<arguments as JSON>}}}}'
        f"{CALL_CLOSE}\n"
        f"and nothing else.{many} Results come back as {RESPONSE_OPEN}...{RESPONSE_CLOSE}."
    )


def generic_messages(messages: list[dict[str, Any]], use: ToolUse | None) -> list[dict[str, Any]]:
    """The conversation for a template without a tool section: tools described in the system
    message, calls and results in the history written as text."""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            calls = "\n".join(
                CALL_OPEN
                + json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False)
                + CALL_CLOSE
                for c in history_calls(message, f"messages[{i}]")
            )
            text = message_text(message.get("content"))
            out.append({"role": "assistant", "content": f"{text}\n{calls}" if text else calls})
        elif role == "tool":
            result = f"{RESPONSE_OPEN}\n{message_text(message.get('content'))}\n{RESPONSE_CLOSE}"
            if out and out[-1]["role"] == "user" and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + result  # results of parallel calls: one turn
            else:
                out.append({"role": "user", "content": result, "_tool_results": True})
        else:
            out.append({**message, "content": message_text(message.get("content"))})
    for message in out:
        message.pop("_tool_results", None)
    tools = use.callable if use is not None else ()
    if not tools or use is None:
        return out
    section = tool_section(tools, use)
    if out and out[0].get("role") in ("system", "developer"):
        out[0] = {**out[0], "role": "system", "content": f"{out[0]['content']}\n\n{section}"}
    else:
        out.insert(0, {"role": "system", "content": section})
    return out


def native_tools(use: ToolUse | None) -> list[dict[str, Any]] | None:
    """The tools as a template with its own tool section expects them (OpenAI's shape)."""
    if use is None or not use.callable:
        return None
    return [{"type": "function", "function": tool.definition()} for tool in use.callable]


def native_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation for a template with its own tool section: calls with parsed arguments
    and an id, as Hugging Face templates expect."""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        plain = {**message, "content": message_text(message.get("content"))}
        if message.get("role") == "assistant" and message.get("tool_calls"):
            plain["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in history_calls(message, f"messages[{i}]")
            ]
        out.append(plain)
    return out
