"""Grammars for tool-call output, built from the tools' schemas and parsed by llama.cpp."""

from __future__ import annotations

import pytest

from tokenmill.engine.runner import LlamaRunner
from tokenmill.engine.tool_grammar import call_prefix, tool_call_grammar
from tokenmill.protocol.tools import FunctionTool

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = FunctionTool("get_weather", "", CITY)
SUM = FunctionTool("add", "", {
    "type": "object",
    "properties": {"a": {"$ref": "#/$defs/n"}, "b": {"$ref": "#/$defs/n"}},
    "$defs": {"n": {"type": "number"}},
})  # fmt: skip


def rules(grammar: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in grammar.splitlines())


def test_one_call_names_each_allowed_function_with_its_own_arguments() -> None:
    grammar = rules(tool_call_grammar([WEATHER, SUM], parallel=False))
    assert grammar["root"] == "tm-call"
    assert grammar["tm-call"] == "tm-call-0 | tm-call-1"
    assert grammar["tm-call-0"].startswith('"<tool_call>{\\"name\\": \\"get_weather\\"')
    assert "tool-0-arguments" in grammar["tm-call-0"]
    assert "tool-1-arguments" in grammar["tm-call-1"]
    assert '"\\"city\\""' in grammar["tool-0-arguments-city-kv"]


def test_parallel_calls_repeat_on_new_lines() -> None:
    assert rules(tool_call_grammar([WEATHER], parallel=True))["root"] == (
        'tm-call ("\\n" tm-call)*'
    )


def test_the_prefix_is_what_the_grammar_writes() -> None:
    assert call_prefix("add") == '<tool_call>{"name": "add", "arguments": '


def test_the_tools_schemas_are_left_as_they_were() -> None:
    before = repr(SUM.parameters)
    tool_call_grammar([SUM], parallel=False)
    tool_call_grammar([SUM], parallel=False)
    assert repr(SUM.parameters) == before


def test_a_schema_the_converter_rejects_is_a_value_error_naming_the_function() -> None:
    with pytest.raises(ValueError, match="bad"):
        tool_call_grammar([FunctionTool("bad", "", {"type": "no-such-type"})], parallel=False)
    with pytest.raises(ValueError):
        tool_call_grammar([], parallel=False)


@pytest.mark.model
@pytest.mark.parametrize("parallel", [False, True])
def test_llama_cpp_parses_the_grammars(runner: LlamaRunner, parallel: bool) -> None:
    grammar = tool_call_grammar([WEATHER, SUM], parallel=parallel)
    assert runner.check_grammar(grammar) == grammar
    with pytest.raises(ValueError):
        runner.check_grammar(grammar.replace("tm-call-1 ::=", "tm-call-2 ::="))
