from __future__ import annotations

import pytest

from tokenmill.engine.chat_template import ChatTemplate
from tokenmill.engine.prompt import PromptBuilder
from tokenmill.engine.runner import LlamaRunner
from tokenmill.engine.tool_grammar import CALL_TRIGGER
from tokenmill.errors import ContextLengthExceeded, InvalidRequest
from tokenmill.protocol.requests import parse_chat, parse_completion

from .conftest import RUNNER_CONTEXT_TOKENS

pytestmark = pytest.mark.model


@pytest.fixture
def prompts(runner: LlamaRunner) -> PromptBuilder:
    assert runner.chat_template is not None
    return PromptBuilder(runner, ChatTemplate(runner.chat_template))


def chat(**body: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": "Hi"}], **body}


def test_chat_is_rendered_and_tokenized(prompts: PromptBuilder, runner: LlamaRunner) -> None:
    request = prompts.chat(parse_chat(chat(max_tokens=5)), "r1")
    assert request.request_id == "r1"
    assert request.max_tokens == 5
    assert runner.detokenize(request.prompt_tokens).endswith("Hi\nassistant\n")


def test_without_max_tokens_the_rest_of_the_context_is_the_budget(prompts: PromptBuilder) -> None:
    request = prompts.chat(parse_chat(chat()), "r1")
    assert request.max_tokens == RUNNER_CONTEXT_TOKENS - len(request.prompt_tokens)


def test_a_prompt_longer_than_the_context_is_refused(prompts: PromptBuilder) -> None:
    body = {"model": "m", "prompt": "hello " * RUNNER_CONTEXT_TOKENS, "max_tokens": 16}
    with pytest.raises(ContextLengthExceeded) as caught:
        prompts.completion(parse_completion(body), "r1")
    error = caught.value
    assert (error.status, error.code, error.param) == (400, "context_length_exceeded", "prompt")
    assert f"maximum context length is {RUNNER_CONTEXT_TOKENS} tokens" in error.message
    assert "asks for 16 completion tokens" in error.message


def test_a_chat_prompt_too_long_names_messages(prompts: PromptBuilder) -> None:
    body = chat(messages=[{"role": "user", "content": "hello " * RUNNER_CONTEXT_TOKENS}])
    with pytest.raises(ContextLengthExceeded) as caught:
        prompts.chat(parse_chat(body), "r1")
    assert caught.value.param == "messages"


def test_a_prompt_that_fits_but_not_with_max_tokens_names_max_tokens(
    prompts: PromptBuilder,
) -> None:
    body = {"model": "m", "prompt": "hello", "max_tokens": RUNNER_CONTEXT_TOKENS}
    with pytest.raises(ContextLengthExceeded) as caught:
        prompts.completion(parse_completion(body), "r1")
    assert caught.value.param == "max_tokens"
    assert str(RUNNER_CONTEXT_TOKENS) in caught.value.message


def test_token_id_prompts_must_be_in_the_vocabulary(
    prompts: PromptBuilder, runner: LlamaRunner
) -> None:
    ok = prompts.completion(parse_completion({"model": "m", "prompt": [1, 2, 3]}), "r1")
    assert ok.prompt_tokens == (1, 2, 3)
    with pytest.raises(InvalidRequest) as caught:
        prompts.completion(parse_completion({"model": "m", "prompt": [runner.vocab_size]}), "r")
    assert caught.value.param == "prompt"


def test_an_empty_prompt_is_refused(prompts: PromptBuilder) -> None:
    with pytest.raises(InvalidRequest) as caught:
        prompts.completion(parse_completion({"model": "m", "prompt": ""}), "r1")
    assert caught.value.param == "prompt"


def test_logit_bias_must_name_tokens_of_the_vocabulary(prompts: PromptBuilder) -> None:
    with pytest.raises(InvalidRequest) as caught:
        prompts.chat(parse_chat(chat(logit_bias={"999999": 5})), "r1")
    assert caught.value.param == "logit_bias"


def test_json_object_and_json_schema_get_a_grammar(prompts: PromptBuilder) -> None:
    assert prompts.chat(parse_chat(chat()), "r1").grammar is None
    text = {"type": "text"}
    assert prompts.chat(parse_chat(chat(response_format=text)), "r1").grammar is None
    json_object = {"type": "json_object"}
    assert prompts.chat(parse_chat(chat(response_format=json_object)), "r1").grammar
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    json_schema = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    grammar = prompts.chat(parse_chat(chat(response_format=json_schema)), "r1").grammar
    assert grammar is not None and '"\\"a\\""' in grammar


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "no-such-type"},
        {"$ref": "https://example.com/schema.json"},
        {"$ref": "other.json"},
        {"type": "string", "pattern": "a+"},
    ],
)
def test_a_schema_that_cannot_be_enforced_is_refused(
    prompts: PromptBuilder, schema: dict[str, object]
) -> None:
    json_schema = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    with pytest.raises(InvalidRequest) as caught:
        prompts.completion(
            parse_completion({"model": "m", "prompt": "x", "response_format": json_schema}), "r"
        )
    assert caught.value.param == "response_format"
    assert caught.value.status == 400


def test_echo_text_of_a_token_prompt(prompts: PromptBuilder, runner: LlamaRunner) -> None:
    tokens = runner.tokenize("The sky is")
    request = parse_completion({"model": "m", "prompt": tokens, "echo": True})
    assert prompts.prompt_text(request) == "The sky is"


def _tools(schema: dict[str, object], *, strict: bool) -> list[dict[str, object]]:
    function = {"name": "f", "parameters": schema, "strict": strict}
    return [{"type": "function", "function": function}]


def test_a_forced_call_is_constrained_from_the_start_and_auto_once_it_opens_a_call(
    prompts: PromptBuilder,
) -> None:
    tools = _tools({"type": "object", "properties": {"a": {"type": "integer"}}}, strict=False)
    forced = prompts.chat(parse_chat(chat(tools=tools, tool_choice="required")), "r1")
    assert forced.grammar is not None and forced.grammar_trigger is None
    auto = prompts.chat(parse_chat(chat(tools=tools)), "r1")
    assert auto.grammar == forced.grammar and auto.grammar_trigger == CALL_TRIGGER
    assert prompts.chat(parse_chat(chat(tools=tools, tool_choice="none")), "r1").grammar is None
    # A response format holds from the first token; the lazy tool grammar gives way to it.
    json_object = {"type": "json_object"}
    formatted = prompts.chat(parse_chat(chat(tools=tools, response_format=json_object)), "r1")
    assert formatted.grammar_trigger is None and formatted.grammar != auto.grammar


def test_a_schema_no_grammar_can_enforce_refuses_only_a_forced_or_strict_call(
    prompts: PromptBuilder,
) -> None:
    odd = {"type": "object", "properties": {"a": {"type": "no-such-type"}}}
    loose = prompts.chat(parse_chat(chat(tools=_tools(odd, strict=False))), "r1")
    assert loose.grammar is None and loose.grammar_trigger is None
    for body in (
        chat(tools=_tools(odd, strict=True)),
        chat(tools=_tools(odd, strict=False), tool_choice="required"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            prompts.chat(parse_chat(body), "r1")
        assert caught.value.param == "tools"
