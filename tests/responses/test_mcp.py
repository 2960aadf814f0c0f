"""The ``mcp`` tool and items of a request: what is accepted, and the 400 for what is not."""

from __future__ import annotations

from typing import Any

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.responses.items import parse_input, to_messages
from tokenmill.responses.mcp import DECLINED, McpTool, chat_names
from tokenmill.responses.request import parse_response_request


def parsed(tool: dict[str, Any], **fields: Any) -> Any:
    return parse_response_request({"model": "m", "input": "hi", "tools": [tool], **fields})


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "mcp"}, "tools[0].server_label"),
        ({"type": "mcp", "server_label": "has space"}, "tools[0].server_label"),
        ({"type": "mcp", "server_label": "a", "colour": 1}, "tools[0].colour"),
        ({"type": "mcp", "server_label": "a", "connector_id": "c"}, "tools[0].connector_id"),
        ({"type": "mcp", "server_label": "a", "headers": {"k": "v"}}, "tools[0].headers"),
        ({"type": "mcp", "server_label": "a", "server_url": 3}, "tools[0].server_url"),
        ({"type": "mcp", "server_label": "a", "require_approval": "sometimes"},
         "tools[0].require_approval"),
        ({"type": "mcp", "server_label": "a", "require_approval": {"always": ["x"]}},
         "tools[0].require_approval.always"),
        ({"type": "mcp", "server_label": "a", "allowed_tools": "add"}, "tools[0].allowed_tools"),
        ({"type": "mcp", "server_label": "a", "server_url": "https://x", "headers": {"a b": "v"}},
         "tools[0].headers.a b"),
    ],
)  # fmt: skip
def test_a_bad_mcp_tool_is_a_400_naming_its_field(tool: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parsed(tool)
    assert refused.value.param == param


def test_an_mcp_tool_is_parsed_with_openai_s_defaults() -> None:
    request = parsed(
        {"type": "mcp", "server_label": "wiki", "allowed_tools": {"tool_names": ["a"]}}
    )
    (tool,) = request.mcp
    assert (tool.server_label, tool.server_url, tool.approvals) == ("wiki", None, ("always",))
    assert tool.allows("a") and not tool.allows("b")
    assert tool.needs_approval("a")
    assert request.tools == [
        {"type": "mcp", "server_label": "wiki", "allowed_tools": {"tool_names": ["a"]}}
    ]


def test_two_tools_may_not_share_a_label_and_tool_choice_must_name_one() -> None:
    tool = {"type": "mcp", "server_label": "wiki"}
    with pytest.raises(InvalidRequest, match="repeats"):
        parse_response_request({"model": "m", "input": "hi", "tools": [tool, tool]})
    with pytest.raises(InvalidRequest) as refused:
        parsed(tool, tool_choice={"type": "mcp", "server_label": "other"})
    assert refused.value.param == "tool_choice"
    assert parsed(tool, tool_choice="required").tool_choice == "required"


def test_policies_join_a_tool_is_held_if_any_says_so() -> None:
    tool = McpTool("wiki", approvals=("never", {"always": {"tool_names": ["drop"]}}))
    assert not tool.needs_approval("read")
    assert tool.needs_approval("drop")
    narrowed = McpTool("wiki", allowed=(("a", "b"), ("b", "c")))
    assert [n for n in "abc" if narrowed.allows(n)] == ["b"]


def test_mcp_items_echoed_back_by_a_client_are_kept_and_shown_to_the_model() -> None:
    items = parse_input([
        {"type": "message", "role": "user", "content": "add 1 and 2"},
        {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "calc",
         "tools": [{"name": "add", "input_schema": {"type": "object"}}]},
        {"type": "mcp_call", "id": "mcp_1", "server_label": "calc", "name": "add",
         "arguments": '{"a":1,"b":2}', "output": "3"},
        {"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "calc", "name": "add",
         "arguments": "{}"},
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": False},
    ])  # fmt: skip
    assert [i["type"] for i in items][1:] == [
        "mcp_list_tools", "mcp_call", "mcp_approval_request", "mcp_approval_response"
    ]  # fmt: skip
    messages = to_messages(None, items)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool"]
    assert [m["tool_calls"][0]["id"] for m in messages[1::2]] == ["mcp_1", "mcpr_1"]
    assert (messages[2]["content"], messages[4]["content"]) == ("3", DECLINED)


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "mcp_approval_response", "approve": True}, "input[0].approval_request_id"),
        ({"type": "mcp_approval_response", "approval_request_id": "r", "approve": "yes"},
         "input[0].approve"),
        ({"type": "mcp_call", "server_label": "c", "name": "add"}, "input[0].arguments"),
        ({"type": "mcp_approval_request", "server_label": "c", "name": "a", "arguments": "{}"},
         "input[0].id"),
        ({"type": "mcp_list_tools", "server_label": "c", "tools": [{}]}, "input[0].tools"),
    ],
)  # fmt: skip
def test_a_bad_mcp_item_is_a_400_naming_its_field(item: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_input([item])
    assert refused.value.param == param


def test_tool_names_the_model_cannot_use_are_rewritten_under_the_label() -> None:
    tool = McpTool("my-server")
    listing = {"tools": [{"name": "get.page"}, {"name": "fine"}]}
    names = chat_names((tool,), {"my-server": listing}, {"fine"})
    assert list(names) == ["my-server_get_page", "my-server_fine"]
