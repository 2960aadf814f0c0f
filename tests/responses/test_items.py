"""Conversation items: input parsed into stored items, and the chat messages a model is shown."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.requests import parse_chat
from tokenmill.responses.items import parse_input, search_results_text, to_messages

RESULTS: list[dict[str, Any]] = [
    {"file_id": "file_1", "filename": "tea.txt", "score": 0.9, "text": "Brew green tea at 80C."},
    {"file_id": "file_2", "filename": None, "score": 0.5, "text": "Steep for two minutes."},
]


SUN, NY = {"type": "input_text", "text": "sun"}, {"type": "input_text", "text": "ny"}


def refused(raw: Any) -> str | None:
    with pytest.raises(InvalidRequest) as caught:
        parse_input(raw)
    return caught.value.param


def test_a_string_is_one_user_message_with_an_id() -> None:
    [item] = parse_input("Hello")
    assert item["id"].startswith("msg_") and len(item["id"]) > len("msg_")
    assert {k: v for k, v in item.items() if k != "id"} == {
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": "Hello"}],
    }
    assert parse_input("Hello")[0]["id"] != item["id"]


def test_messages_join_their_text_parts_and_keep_a_given_id() -> None:
    items = parse_input(
        [
            {"role": "system", "content": "Be brief."},
            {
                "type": "message",
                "id": "msg_given",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Hello, "},
                    {"type": "text", "text": "you"},
                ],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "Hi"}]},
        ]
    )
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [
        ("system", "Be brief."),
        ("user", "Hello, you"),
        ("assistant", "Hi"),
    ]
    assert items[1]["id"] == "msg_given"
    assert items[2]["content"] == [{"type": "output_text", "text": "Hi", "annotations": []}]


def test_calls_outputs_and_searches_are_kept_with_ids() -> None:
    call, output, search = parse_input(
        [
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": [SUN, NY]},
            {"type": "file_search_call", "id": "fs_1", "queries": ["tea"], "results": RESULTS},
        ]
    )
    assert call["id"].startswith("fc_")
    assert {k: call[k] for k in ("type", "call_id", "name", "arguments", "status")} == {
        "type": "function_call",
        "call_id": "call_1",
        "name": "f",
        "arguments": "{}",
        "status": "completed",
    }
    assert output["id"].startswith("fco_") and output["output"] == "sunny"
    assert output["call_id"] == "call_1"
    assert search == {
        "type": "file_search_call",
        "id": "fs_1",
        "status": "completed",
        "queries": ["tea"],
        "results": RESULTS,
    }
    [hidden] = parse_input([{"type": "file_search_call", "queries": ["tea"], "results": None}])
    assert hidden["results"] is None and hidden["id"].startswith("fs_")


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ([3], "input[0]"),
        ([{"role": "robot", "content": "x"}], "input[0].role"),
        ([{"role": "tool", "content": "x"}], "input[0].role"),
        ([{"role": "user", "content": None}], "input[0].content"),
        ([{"type": "reasoning", "summary": []}], "input[0].type"),
        ([{"type": "function_call", "name": "f", "arguments": "{}"}], "input[0].call_id"),
        ([{"type": "function_call", "call_id": "c", "arguments": "{}"}], "input[0].name"),
        (
            [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}],
            "input[0].arguments",
        ),
        ([{"type": "function_call_output", "output": "x"}], "input[0].call_id"),
        ([{"type": "function_call_output", "call_id": "c", "output": 5}], "input[0].output"),
        ([{"type": "file_search_call", "queries": "tea"}], "input[0].queries"),
    ],
)
def test_bad_items_name_their_place(raw: Any, param: str) -> None:
    assert refused(raw) == param


def test_an_image_part_is_a_400_naming_the_part() -> None:
    image = {"type": "input_image", "image_url": "https://example.com/cat.png"}
    content = [{"type": "input_text", "text": "What is this?"}, image]
    with pytest.raises(InvalidRequest) as caught:
        parse_input([{"role": "user", "content": "hi"}, {"role": "user", "content": content}])
    assert caught.value.param == "input[1].content[1]"
    assert "'input_image'" in caught.value.message
    assert refused([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]) == (
        "input[0].content[0]"
    )


def test_an_unhashable_role_is_a_400_not_a_crash() -> None:
    assert refused([{"role": ["user"], "content": "x"}]) == "input[0].role"


def test_an_unhashable_part_type_is_a_400_not_a_crash() -> None:
    assert refused([{"role": "user", "content": [{"type": ["text"], "text": "x"}]}]) == (
        "input[0].content[0]"
    )


def test_too_many_items_are_refused() -> None:
    assert refused([{"role": "user", "content": "x"}] * 2049) == "input"
    assert len(parse_input([{"role": "user", "content": "x"}] * 2048)) == 2048


def test_instructions_come_first_as_a_system_message() -> None:
    messages = to_messages("Be brief.", parse_input("Hi"))
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert to_messages(None, parse_input("Hi")) == [{"role": "user", "content": "Hi"}]
    assert to_messages("", parse_input("Hi")) == [{"role": "user", "content": "Hi"}]


def test_consecutive_calls_are_one_assistant_turn_and_outputs_follow() -> None:
    items = parse_input(
        [
            {"role": "user", "content": "Weather and time?"},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"c":1}'},
            {"type": "function_call", "call_id": "c2", "name": "time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": "noon"},
            {"role": "assistant", "content": "Sunny at noon."},
        ]
    )
    assert to_messages(None, items) == [
        {"role": "user", "content": "Weather and time?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"c":1}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
        {"role": "assistant", "content": "Sunny at noon."},
    ]


def test_a_call_after_an_output_starts_a_new_assistant_turn() -> None:
    items = parse_input(
        [
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "1"},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
        ]
    )
    roles = [(m["role"], len(m.get("tool_calls") or ())) for m in to_messages(None, items)]
    assert roles == [("assistant", 1), ("tool", 0), ("assistant", 1)]


def test_a_file_search_is_a_call_and_its_numbered_results() -> None:
    [search] = parse_input(
        [
            {
                "type": "file_search_call",
                "id": "fs_1",
                "queries": ["green", "tea"],
                "results": RESULTS,
            }
        ]
    )
    call, tool = to_messages(None, [search])
    assert call["role"] == "assistant" and call["content"] is None
    [entry] = call["tool_calls"]
    assert entry["id"] == "fs_1" and entry["function"]["name"] == "file_search"
    assert orjson.loads(entry["function"]["arguments"]) == {"query": "green tea"}
    assert tool == {"role": "tool", "tool_call_id": "fs_1", "content": search_results_text(RESULTS)}


def test_search_results_are_numbered_by_rank_and_written_best_last() -> None:
    text = search_results_text(RESULTS)
    assert "[1] tea.txt\nBrew green tea at 80C." in text
    assert "[2] file_2\nSteep for two minutes." in text  # no filename: the file id
    assert text.index("[2]") < text.index("[1]")  # the best result nearest the answer
    assert "[n]" in text
    assert search_results_text([]) == "No passages matched the query."
    [hidden] = parse_input([{"type": "file_search_call", "id": "fs_1", "queries": ["tea"]}])
    assert to_messages(None, [hidden])[1]["content"] == "No passages matched the query."


def test_the_messages_are_a_chat_request_the_gateway_accepts() -> None:
    items = parse_input(
        [
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "Tea?"},
            {"type": "file_search_call", "id": "fs_1", "queries": ["tea"], "results": RESULTS},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ]
    )
    chat = parse_chat({"model": "m", "messages": to_messages("Be brief.", items)})
    assert [m["role"] for m in chat.messages] == [
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
