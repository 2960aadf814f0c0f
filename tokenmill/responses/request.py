"""A ``POST /v1/responses`` body, parsed and validated as OpenAI's reference describes it.

Fields: ``model``, ``input`` (a string or a list of items, see ``responses.items``),
``instructions``, ``tools`` (``function`` tools, run by the client, and ``file_search`` over the
tenant's vector stores, run by the platform), ``tool_choice``, ``parallel_tool_calls``, ``mcp``
tools (``responses.mcp``), ``max_tool_calls``, ``max_output_tokens``, ``temperature``,
``top_p``, ``text.format``, ``store``, ``previous_response_id``, ``stream``, ``include``,
``metadata``, ``user``, ``service_tier`` and ``truncation``. Anything else is a 400 naming the
parameter; so is a tool type this platform does not run (``web_search``, ``computer_use``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenmill.errors import InvalidRequest
from tokenmill.knowledge.filters import Filter, parse_filters
from tokenmill.knowledge.search import DEFAULT_MAX_RESULTS, MAX_RESULTS
from tokenmill.knowledge.stores import parse_metadata
from tokenmill.protocol.requests import bool_field, refuse_unknown
from tokenmill.protocol.tools import FUNCTION_NAME
from tokenmill.responses.items import parse_input
from tokenmill.responses.mcp import MCP, McpTool, parse_mcp_tool

FILE_SEARCH = "file_search"
INCLUDABLE = frozenset({"file_search_call.results", "message.output_text.logprobs"})
FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "text",
        "store",
        "previous_response_id",
        "stream",
        "include",
        "metadata",
        "user",
        "service_tier",
        "truncation",
        "reasoning",
        "background",
        "prompt",
    }
)
MAX_VECTOR_STORES = 2  # as OpenAI's file_search tool


@dataclass(frozen=True, slots=True)
class FileSearchTool:
    """Searched by the platform when the model calls it; the model sees ``file_search(query)``."""

    vector_store_ids: tuple[str, ...]
    max_num_results: int = DEFAULT_MAX_RESULTS
    filters: Filter | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # as given, echoed in the response

    def definition(self) -> dict[str, Any]:
        """The chat function the model is shown for it."""
        return {
            "type": "function",
            "function": {
                "name": FILE_SEARCH,
                "description": "Search the user's files for passages relevant to a query.",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"],
                },
            },
        }


@dataclass(frozen=True, slots=True)
class ResponseRequest:
    model: str
    items: list[dict[str, Any]]  # the new input items, with ids
    instructions: str | None = None
    functions: tuple[dict[str, Any], ...] = ()  # as given (Responses shape), echoed
    file_search: FileSearchTool | None = None
    mcp: tuple[McpTool, ...] = ()
    tool_choice: Any = "auto"  # as given, echoed
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})
    store: bool = True
    previous_response_id: str | None = None
    stream: bool = False
    include: frozenset[str] = frozenset()
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    service_tier: str | None = None
    truncation: str = "disabled"

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools as given, for the response object."""
        out = list(self.functions)
        if self.file_search is not None:
            out.append(self.file_search.raw)
        out.extend(tool.raw for tool in self.mcp)
        return out

    def chat_tools(self) -> list[dict[str, Any]]:
        """Every tool as a chat function for the model."""
        out = [
            {
                "type": "function",
                "function": {
                    k: v
                    for k, v in tool.items()
                    if k in ("name", "description", "parameters", "strict") and v is not None
                },
            }
            for tool in self.functions
        ]
        if self.file_search is not None:
            out.append(self.file_search.definition())
        return out

    def chat_tool_choice(self, mcp_names: dict[tuple[str, str], str] | None = None) -> Any:
        """``tool_choice`` as chat completions take it (``mcp_names``: the model's name of
        each (server label, tool) it is offered)."""
        choice = self.tool_choice
        if isinstance(choice, dict) and choice["type"] == MCP:
            name = (mcp_names or {}).get((choice["server_label"], choice.get("name") or ""))
            return {"type": "function", "function": {"name": name}} if name else "required"
        if isinstance(choice, dict):
            name = FILE_SEARCH if choice["type"] == FILE_SEARCH else choice["name"]
            return {"type": "function", "function": {"name": name}}
        return choice

    def response_format(self) -> dict[str, Any] | None:
        fmt = self.text_format
        if fmt["type"] == "json_object":
            return {"type": "json_object"}
        if fmt["type"] == "json_schema":
            spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
            return {"type": "json_schema", "json_schema": spec}
        return None


def parse_response_request(body: dict[str, Any]) -> ResponseRequest:
    """Raises ``InvalidRequest`` naming the offending param."""
    refuse_unknown(body, FIELDS)
    for unsupported in ("prompt", "reasoning"):  # a prompt is applied by the gateway first
        if body.get(unsupported) is not None:
            raise InvalidRequest(
                f"'{unsupported}' is not supported by this platform yet.", param=unsupported
            )
    if body.get("background"):
        raise InvalidRequest("'background' responses are not supported.", param="background")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string.", param="model")
    if "input" not in body:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    functions, file_search, mcp = _tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), functions, file_search, mcp)
    return ResponseRequest(
        model=model,
        items=parse_input(body["input"]),
        instructions=_optional_str(body, "instructions"),
        functions=functions,
        file_search=file_search,
        mcp=mcp,
        tool_choice=tool_choice,
        parallel_tool_calls=bool_field(body, "parallel_tool_calls", True),
        max_tool_calls=_positive(body, "max_tool_calls"),
        max_output_tokens=_positive(body, "max_output_tokens"),
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0),
        text_format=_text_format(body.get("text")),
        store=bool_field(body, "store", True),
        previous_response_id=_optional_str(body, "previous_response_id"),
        stream=bool_field(body, "stream", False),
        include=_include(body.get("include")),
        metadata=parse_metadata(body.get("metadata")),
        user=_optional_str(body, "user"),
        service_tier=body.get("service_tier"),
        truncation=_truncation(body.get("truncation")),
    )


def _tools(
    raw: Any,
) -> tuple[tuple[dict[str, Any], ...], FileSearchTool | None, tuple[McpTool, ...]]:
    if raw is None:
        return (), None, ()
    if not isinstance(raw, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    functions: list[dict[str, Any]] = []
    file_search: FileSearchTool | None = None
    mcp: list[McpTool] = []
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            functions.append(_function(tool, where, {f["name"] for f in functions}))
        elif kind == FILE_SEARCH:
            if file_search is not None:
                raise InvalidRequest(
                    f"'{where}': only one file_search tool is allowed.", param=where
                )
            file_search = _file_search(tool, where)
        elif kind == MCP:
            server = parse_mcp_tool(tool, where)
            if server.server_label in {m.server_label for m in mcp}:
                raise InvalidRequest(
                    f"'{where}.server_label' repeats {server.server_label!r}.",
                    param=f"{where}.server_label",
                )
            mcp.append(server)
        else:
            raise InvalidRequest(
                f"'{where}.type' must be 'function', 'file_search' or 'mcp', got {kind!r}.",
                param=f"{where}.type",
            )
    if file_search is not None and FILE_SEARCH in {f["name"] for f in functions}:
        raise InvalidRequest(
            "A function tool may not be named 'file_search' beside the file_search tool.",
            param="tools",
        )
    return tuple(functions), file_search, tuple(mcp)


def _function(tool: dict[str, Any], where: str, taken: set[str]) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME.match(name):
        raise InvalidRequest(
            f"'{where}.name' must be 1 to 64 letters, digits, '_' or '-'.", param=f"{where}.name"
        )
    if name in taken:
        raise InvalidRequest(
            f"'{where}.name' repeats the function name {name!r}.", param=f"{where}.name"
        )
    refuse_unknown(tool, {"type", "name", "description", "parameters", "strict"}, where)
    for key, kind in (("description", str), ("parameters", dict), ("strict", bool)):
        if tool.get(key) is not None and not isinstance(tool[key], kind):
            raise InvalidRequest(
                f"'{where}.{key}' must be a {kind.__name__}.", param=f"{where}.{key}"
            )
    return {
        "type": "function",
        "name": name,
        "description": tool.get("description"),
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
        "strict": tool.get("strict", True),
    }


def _file_search(tool: dict[str, Any], where: str) -> FileSearchTool:
    fields = {"type", "vector_store_ids", "max_num_results", "filters", "ranking_options"}
    refuse_unknown(tool, fields, where)
    stores = tool.get("vector_store_ids")
    if (
        not isinstance(stores, list)
        or not 1 <= len(stores) <= MAX_VECTOR_STORES
        or not all(isinstance(s, str) and s for s in stores)
    ):
        raise InvalidRequest(
            f"'{where}.vector_store_ids' must be a list of 1 to {MAX_VECTOR_STORES} ids.",
            param=f"{where}.vector_store_ids",
        )
    results = tool.get("max_num_results", DEFAULT_MAX_RESULTS)
    if isinstance(results, bool) or not isinstance(results, int) or not 1 <= results <= MAX_RESULTS:
        raise InvalidRequest(
            f"'{where}.max_num_results' must be an integer from 1 to {MAX_RESULTS}.",
            param=f"{where}.max_num_results",
        )
    filters = tool.get("filters")
    return FileSearchTool(
        vector_store_ids=tuple(stores),
        max_num_results=results,
        filters=None if filters is None else parse_filters(filters, f"{where}.filters"),
        raw={"type": FILE_SEARCH, **{k: v for k, v in tool.items() if k != "type"}},
    )


def _tool_choice(
    raw: Any,
    functions: tuple[dict[str, Any], ...],
    file_search: FileSearchTool | None,
    mcp: tuple[McpTool, ...],
) -> Any:
    if raw is None:
        return "auto"
    if raw in ("auto", "none", "required"):
        if raw == "required" and not functions and file_search is None and not mcp:
            raise InvalidRequest(
                "'tool_choice' is 'required' but there are no tools.", param="tool_choice"
            )
        return raw
    kind = raw.get("type") if isinstance(raw, dict) else None
    name = raw.get("name") if isinstance(raw, dict) else None
    if kind == "function" and isinstance(name, str) and name in {f["name"] for f in functions}:
        return {"type": "function", "name": raw["name"]}
    if kind == FILE_SEARCH and file_search is not None:
        return {"type": FILE_SEARCH}
    label = raw.get("server_label") if isinstance(raw, dict) else None
    if kind == MCP and label in {m.server_label for m in mcp}:
        if name is not None and not isinstance(name, str):
            raise InvalidRequest("'tool_choice.name' must be a string.", param="tool_choice.name")
        return {"type": MCP, "server_label": label, **({"name": name} if name else {})}
    raise InvalidRequest(
        "'tool_choice' must be 'none', 'auto', 'required', "
        '{"type": "function", "name": ...} naming one of the tools, {"type": "file_search"} '
        'with a file_search tool, or {"type": "mcp", "server_label": ...} naming an mcp tool.',
        param="tool_choice",
    )


def _text_format(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {"type": "text"}
    fmt = raw.get("format") if isinstance(raw, dict) else None
    if fmt is None and isinstance(raw, dict) and set(raw) <= {"format", "verbosity"}:
        return {"type": "text"}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        assert isinstance(fmt, dict)
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest(
                "'text.format.schema' must be a JSON Schema object.", param="text.format.schema"
            )
        if not isinstance(fmt.get("name"), str) or not FUNCTION_NAME.match(fmt["name"]):
            raise InvalidRequest(
                "'text.format.name' must be 1 to 64 letters, digits, '_' or '-'.",
                param="text.format.name",
            )
        return {k: fmt[k] for k in ("type", "name", "schema", "strict", "description") if k in fmt}
    raise InvalidRequest(
        "'text.format.type' must be 'text', 'json_object' or 'json_schema'.",
        param="text.format",
    )


def _include(raw: Any) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InvalidRequest("'include' must be an array of strings.", param="include")
    unknown = sorted(set(raw) - INCLUDABLE)
    if unknown:
        raise InvalidRequest(
            f"'include' may hold {sorted(INCLUDABLE)}; got {unknown[0]!r}.", param="include"
        )
    return frozenset(raw)


def _truncation(raw: Any) -> str:
    if raw is None or raw == "disabled":
        return "disabled"
    if raw == "auto":
        return "auto"
    raise InvalidRequest("'truncation' must be 'auto' or 'disabled'.", param="truncation")


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"'{key}' must be a string.", param=key)
    return value


def _positive(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"'{key}' must be a positive integer.", param=key)
    return value


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"'{key}' must be a number from {low} to {high}.", param=key)
    return float(value)
