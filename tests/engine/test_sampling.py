from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
import pytest

from tokenmill.engine.runner import LlamaRunner
from tokenmill.engine.tool_grammar import CALL_OPEN, CALL_TRIGGER, call_prefix, tool_call_grammar
from tokenmill.protocol.requests import SamplingParams
from tokenmill.protocol.tools import FunctionTool

pytestmark = pytest.mark.model


def test_json_grammar_without_a_schema_is_any_object(runner: LlamaRunner) -> None:
    assert runner.json_grammar(None).lstrip().startswith("root")


def test_a_schema_the_converter_rejects_is_a_value_error(runner: LlamaRunner) -> None:
    with pytest.raises(ValueError, match="Unrecognized schema"):
        runner.json_grammar({"type": "no-such-type"})


def test_a_grammar_llama_cpp_cannot_parse_never_becomes_a_sampler(runner: LlamaRunner) -> None:
    with pytest.raises(ValueError, match="parse"):
        runner.sampler(SamplingParams(), max_tokens=4, grammar="root ::= undefined-rule")


def _pick(runner: LlamaRunner, sampler: Any, favoured: int) -> int:
    """What ``sampler`` picks when every token is equally likely but ``favoured`` (far ahead)."""
    size = runner.vocab_size
    data = (llama_cpp.llama_token_data * size)()
    for token in range(size):
        data[token].id = token
        data[token].logit = 10.0 if token == favoured else 0.0
    candidates = llama_cpp.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
    return int(data[candidates.selected].id)


def test_a_lazy_tool_grammar_constrains_the_output_only_once_it_opens_a_call(
    runner: LlamaRunner,
) -> None:
    tool = FunctionTool("get_time", "", {"type": "object", "properties": {}}, strict=True)
    grammar = runner.check_grammar(tool_call_grammar([tool], parallel=False))
    favoured = runner.tokenize("Hello")[-1]  # never the next token of a call
    greedy = SamplingParams(temperature=0.0)
    for opening, constrained in [(" Sure, the time", False), ("<tool_call>", True)]:
        sampler = runner.sampler(
            greedy, max_tokens=32, grammar=grammar, grammar_trigger=CALL_TRIGGER
        )
        try:
            for token in runner.tokenize(opening):
                runner.accept(sampler, token)
            picked = _pick(runner, sampler, favoured)
        finally:
            runner.free_sampler(sampler)
        if constrained:
            rest = call_prefix("get_time").removeprefix(CALL_OPEN)
            assert picked != favoured and rest.startswith(runner.detokenize([picked]))
        else:
            assert picked == favoured
