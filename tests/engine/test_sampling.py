from __future__ import annotations

import pytest

from tokenmill.engine.runner import LlamaRunner
from tokenmill.protocol.requests import SamplingParams

pytestmark = pytest.mark.model


def test_json_grammar_without_a_schema_is_any_object(runner: LlamaRunner) -> None:
    assert runner.json_grammar(None).lstrip().startswith("root")


def test_a_schema_the_converter_rejects_is_a_value_error(runner: LlamaRunner) -> None:
    with pytest.raises(ValueError, match="Unrecognized schema"):
        runner.json_grammar({"type": "no-such-type"})


def test_a_grammar_llama_cpp_cannot_parse_never_becomes_a_sampler(runner: LlamaRunner) -> None:
    with pytest.raises(ValueError, match="parse"):
        runner.sampler(SamplingParams(), max_tokens=4, grammar="root ::= undefined-rule")
