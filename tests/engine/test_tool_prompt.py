"""Tools and tool calls rendered into a prompt: generic format, or the template's own."""

from __future__ import annotations

import json
from typing import Any

from tokenmill.engine.chat_template import ChatTemplate
from tokenmill.engine.tool_calls import parse_tool_calls
from tokenmill.engine.tool_prompt import generic_messages, native_messages
from tokenmill.protocol.tools import FunctionTool, ToolUse

WEATHER = FunctionTool("get_weather", "Weather in a city", {"type": "object"})
PLAIN = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
WITH_TOOLS = (
    "{% if tools %}TOOLS:{{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}"
    "{% for c in m.get('tool_calls') or [] %}[{{ c.function.name }} "
    "{{ c.function.arguments | tojson }}]{% endfor %}\n{% endfor %}"
)
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
        {"id": None, "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
    {"role": "tool", "tool_call_id": None, "content": [{"type": "text", "text": "sun"}]},
]  # fmt: skip


def test_the_generic_format_describes_the_tools_in_a_system_message() -> None:
    [system, user] = generic_messages(HISTORY[:1], ToolUse((WEATHER,)))
    assert system["role"] == "system"
    assert json.dumps(WEATHER.definition()) in system["content"]
    assert "<tool_call>" in system["content"]
    assert user == {"role": "user", "content": "Weather?"}


def test_the_tools_join_an_existing_system_message() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *HISTORY[:1]]
    [system, _] = generic_messages(messages, ToolUse((WEATHER,), "required"))
    assert system["content"].startswith("Be brief.\n\n")
    assert "Call one of these functions now." in system["content"]


def test_none_describes_no_tools() -> None:
    assert generic_messages(HISTORY[:1], ToolUse((WEATHER,), "none")) == HISTORY[:1]


def test_history_calls_and_results_become_text_the_parser_reads_back() -> None:
    [_, assistant, results] = generic_messages(HISTORY, None)
    assert assistant["role"] == "assistant"
    _, calls = parse_tool_calls(assistant["content"], {"get_weather"})
    assert [json.loads(c["arguments"]) for c in calls] == [{"city": "Oslo"}, {"city": "Rome"}]
    assert results == {
        "role": "user",
        "content": "<tool_response>\nrain\n</tool_response>\n"
        "<tool_response>\nsun\n</tool_response>",
    }


def test_a_template_without_a_tool_section_renders_the_generic_format() -> None:
    prompt = ChatTemplate(PLAIN).render(HISTORY, ToolUse((WEATHER,)))
    assert prompt.startswith("<system>You can call these functions")
    assert '<assistant><tool_call>{"name": "get_weather"' in prompt
    assert prompt.endswith("<assistant>")


def test_a_template_with_a_tool_section_gets_tools_and_parsed_arguments() -> None:
    template = ChatTemplate(WITH_TOOLS)
    assert template.has_tool_section
    prompt = template.render(HISTORY, ToolUse((WEATHER,)))
    assert prompt.startswith('TOOLS:[{"type": "function", "function": {"name": "get_weather"')
    assert '[get_weather {"city": "Oslo"}][get_weather {"city": "Rome"}]' in prompt
    assert native_messages(HISTORY)[1]["tool_calls"][1]["id"] == ""
