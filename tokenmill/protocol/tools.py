"""Parsing and validation of a chat request's tools: ``tools``, ``tool_choice``,
``parallel_tool_calls``, and the tool calls and results in its history.

Strict about what the model is asked to do (a bad tool or choice is a 400 naming the param),
lenient about history that clients echo back (null ids, arguments as objects, missing fields).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from tokenmill.errors import InvalidRequest

ToolMode = Literal["none", "auto", "required", "named"]
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")  # \Z: "$" would let a final "\n" by


@dataclass(frozen=True, slots=True)
class FunctionTool:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON Schema for an object
    strict: bool = False

    def definition(self) -> dict[str, Any]:
        """The function as a model is shown it."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["parameters"] = self.parameters
        return out


@dataclass(frozen=True, slots=True)
class ToolUse:
    """What the model may or must do with the request's tools."""

    tools: tuple[FunctionTool, ...]
    mode: ToolMode = "auto"
    name: str | None = None  # the function a ``named`` choice forces
    parallel: bool = True

    @property
    def callable(self) -> tuple[FunctionTool, ...]:
        """The functions the model may call (none when the mode is ``none``)."""
        if self.mode == "none":
            return ()
        if self.mode == "named":
            return tuple(tool for tool in self.tools if tool.name == self.name)
        return self.tools

    @property
    def forced(self) -> bool:
        return self.mode in ("required", "named")


def parse_tool_use(body: dict[str, Any]) -> ToolUse | None:
    """The request's tools and choice; None when it has no tools (or an empty list)."""
    tools = _tools(body.get("tools"))
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequest(
            "'parallel_tool_calls' must be a boolean.", param="parallel_tool_calls"
        )
    mode, name = _tool_choice(choice)
    if not tools:
        if mode in ("required", "named"):
            raise InvalidRequest(
                "'tool_choice' requires 'tools': there are no tools to call.", param="tool_choice"
            )
        return None
    if mode == "named" and name not in {tool.name for tool in tools}:
        raise InvalidRequest(
            f"'tool_choice' names the function {name!r}, which is not among 'tools'.",
            param="tool_choice",
        )
    return ToolUse(tools, mode, name, True if parallel is None else parallel)


def _tools(tools: Any) -> tuple[FunctionTool, ...]:
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array of function tools.", param="tools")
    parsed: list[FunctionTool] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise InvalidRequest(
                f"'{where}' must be an object with 'type': 'function'.", param=f"{where}.type"
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise InvalidRequest(
                f"'{where}.function' must be an object.", param=f"{where}.function"
            )
        name = function.get("name")
        if not isinstance(name, str) or not FUNCTION_NAME.match(name):
            raise InvalidRequest(
                f"'{where}.function.name' must be 1 to 64 letters, digits, '_' or '-'.",
                param=f"{where}.function.name",
            )
        if name in {tool.name for tool in parsed}:
            raise InvalidRequest(
                f"'{where}.function.name' repeats the function name {name!r}.",
                param=f"{where}.function.name",
            )
        description = function.get("description") or ""
        if not isinstance(description, str):
            raise InvalidRequest(
                f"'{where}.function.description' must be a string.",
                param=f"{where}.function.description",
            )
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, dict):
            raise InvalidRequest(
                f"'{where}.function.parameters' must be a JSON Schema object.",
                param=f"{where}.function.parameters",
            )
        if "type" not in parameters:
            parameters = {"type": "object", **parameters}
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise InvalidRequest(
                f"'{where}.function.strict' must be a boolean.", param=f"{where}.function.strict"
            )
        parsed.append(FunctionTool(name, description, parameters, bool(strict)))
    return tuple(parsed)


def _tool_choice(choice: Any) -> tuple[ToolMode, str | None]:
    if choice is None or choice == "auto":
        return "auto", None
    if choice == "none":
        return "none", None
    if choice == "required":
        return "required", None
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            return "named", name
    raise InvalidRequest(
        "'tool_choice' must be 'none', 'auto', 'required' or "
        '{"type": "function", "function": {"name": ...}}.',
        param="tool_choice",
    )


@dataclass(frozen=True, slots=True)
class HistoryCall:
    """A tool call of an assistant message in the history, as the engine renders it."""

    id: str
    name: str
    arguments: Any  # parsed JSON where the client sent a JSON string, else as sent


def history_calls(message: dict[str, Any], where: str) -> list[HistoryCall]:
    """The ``tool_calls`` of a history message, leniently: ids and arguments may be missing."""
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise InvalidRequest(f"'{where}.tool_calls' must be an array.", param=f"{where}.tool_calls")
    out: list[HistoryCall] = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(
                f"'{where}.tool_calls[{i}].function.name' must be a string.",
                param=f"{where}.tool_calls[{i}].function.name",
            )
        name: str = function["name"]
        call_id = call.get("id")
        out.append(
            HistoryCall(
                call_id if isinstance(call_id, str) else "",
                name,
                _arguments(function.get("arguments")),
            )
        )
    return out


def _arguments(arguments: Any) -> Any:
    if arguments is None:
        return {}
    if isinstance(arguments, str):
        try:
            return orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            return arguments  # shown to the model as the text it was
    return arguments
