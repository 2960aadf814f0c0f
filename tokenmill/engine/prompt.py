"""From a parsed API request to an ``EngineRequest``: prompt tokens, checked against the model.

Everything here runs before a request is queued, so that no input llama.cpp would assert on
(and abort the process for) ever reaches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from tokenmill.engine.chat_template import ChatTemplate
from tokenmill.engine.request import EngineRequest
from tokenmill.engine.tool_grammar import CALL_TRIGGER, tool_call_grammar
from tokenmill.errors import ContextLengthExceeded, InvalidRequest
from tokenmill.protocol.requests import ChatRequest, CompletionRequest, SamplingParams
from tokenmill.protocol.tools import ToolUse


class Tokenizer(Protocol):
    @property
    def vocab_size(self) -> int: ...

    @property
    def context_tokens(self) -> int: ...

    def tokenize(self, text: str) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def json_grammar(self, schema: dict[str, Any] | None) -> str: ...

    def check_grammar(self, grammar: str) -> str: ...


class PromptBuilder:
    def __init__(self, tokenizer: Tokenizer, template: ChatTemplate | None) -> None:
        self._tokenizer = tokenizer
        self._template = template

    def chat(self, request: ChatRequest, request_id: str) -> EngineRequest:
        if self._template is None:
            raise InvalidRequest(
                "This model has no chat template; use /v1/completions.",
                param="messages",
                code="chat_template_missing",
            )
        tokens = self._tokenizer.tokenize(self._template.render(request.messages, request.tools))
        grammar, trigger = self._tool_grammar(request.tools)
        return self._build(
            request_id,
            tokens,
            request.sampling,
            prompt_param="messages",
            grammar=grammar,
            grammar_trigger=trigger,
        )

    def completion(self, request: CompletionRequest, request_id: str) -> EngineRequest:
        if isinstance(request.prompt, str):
            tokens = self._tokenizer.tokenize(request.prompt)
        else:
            tokens = request.prompt
            vocab = self._tokenizer.vocab_size
            if any(token >= vocab for token in tokens):
                raise InvalidRequest(
                    f"'prompt' has token ids outside this model's vocabulary (0 to {vocab - 1}).",
                    param="prompt",
                )
        if not tokens:
            raise InvalidRequest("'prompt' must not be empty.", param="prompt")
        built = self._build(request_id, tokens, request.sampling, prompt_param="prompt")
        if request.echo and request.sampling.logprobs:
            return replace(built, prompt_logprobs=True)  # the prompt's logprobs too
        return built

    def prompt_text(self, request: CompletionRequest) -> str:
        """The prompt as text (for ``echo``), whether it came as text or as token ids."""
        if isinstance(request.prompt, str):
            return request.prompt
        return self._tokenizer.detokenize(request.prompt)

    def _build(
        self,
        request_id: str,
        tokens: list[int],
        sampling: SamplingParams,
        *,
        prompt_param: str,
        grammar: str | None = None,
        grammar_trigger: str | None = None,
    ) -> EngineRequest:
        vocab = self._tokenizer.vocab_size
        if any(not 0 <= token < vocab for token in sampling.logit_bias):
            raise InvalidRequest(
                f"'logit_bias' keys must be token ids from 0 to {vocab - 1}.", param="logit_bias"
            )
        context = self._tokenizer.context_tokens
        prompt_tokens = len(tokens)
        if prompt_tokens >= context:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {context} tokens; the request has "
                f"{prompt_tokens} prompt tokens"
                + _asking(sampling.max_tokens)
                + ". Shorten the prompt.",
                param=prompt_param,
            )
        if grammar is None or (grammar_trigger is not None and sampling.response_format):
            # A response format holds from the first token; a lazy tool grammar gives way.
            grammar, grammar_trigger = self._grammar(sampling.response_format), None
        max_tokens = sampling.max_tokens
        if max_tokens is None:
            max_tokens = context - prompt_tokens
        elif prompt_tokens + max_tokens > context:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {context} tokens; the request has "
                f"{prompt_tokens} prompt tokens{_asking(max_tokens)}. Reduce 'max_tokens' to "
                f"at most {context - prompt_tokens} or shorten the prompt.",
                param="max_tokens",
            )
        return EngineRequest(
            request_id=request_id,
            prompt_tokens=tuple(tokens),
            max_tokens=max_tokens,
            sampling=sampling,
            grammar=grammar,
            grammar_trigger=grammar_trigger,
        )

    def _tool_grammar(self, tools: ToolUse | None) -> tuple[str | None, str | None]:
        """The grammar of the calls the model may make, and its trigger.

        A forced call is constrained from the first token. Under ``auto`` the model may answer
        in text; when its output opens with a call (``CALL_TRIGGER``), the rest is constrained
        the same way (a lazy grammar). A schema the converter cannot enforce is a 400 when a
        call is forced or the function is ``strict``; otherwise ``auto`` goes unconstrained.
        """
        if tools is None or not tools.callable:
            return None, None
        try:
            grammar = tool_call_grammar(tools.callable, parallel=tools.parallel)
            checked = self._tokenizer.check_grammar(grammar)
        except ValueError as error:
            if not tools.forced and not any(t.strict for t in tools.callable):
                return None, None
            raise InvalidRequest(
                f"'tools' has a JSON Schema this engine cannot enforce: {error}", param="tools"
            ) from None
        return checked, None if tools.forced else CALL_TRIGGER

    def _grammar(self, response_format: dict[str, Any] | None) -> str | None:
        if response_format is None:
            return None
        schema = None
        if response_format["type"] == "json_schema":
            schema = response_format["json_schema"]["schema"]
        try:
            return self._tokenizer.json_grammar(schema)
        except ValueError as error:
            raise InvalidRequest(
                f"'response_format' has a JSON Schema this engine cannot enforce: {error}",
                param="response_format",
            ) from None


def _asking(max_tokens: int | None) -> str:
    return "" if max_tokens is None else f" and asks for {max_tokens} completion tokens"
