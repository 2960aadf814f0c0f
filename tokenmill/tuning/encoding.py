"""Training examples as token ids and labels, rendered the way the model will be prompted.

Two formats, as OpenAI's fine-tuning API takes them:

- chat, ``{"messages": [{"role": ..., "content": ...}, ...], "tools": [...]}``: the
  conversation is rendered with the base model's own chat template, the one the engine renders
  prompts with, and only the assistant replies are supervised: each reply's text and the
  template's end-of-turn token after it, not the whitespace the template puts between turns.
  An assistant message with ``"weight": 0`` is context only. Tools, tool calls and tool
  results are rendered as the engine renders them (``engine.tool_prompt``): into the
  template's own tool section if it has one, else as the generic tool section in the system
  message, calls as ``<tool_call>`` lines of the assistant's reply (supervised: the model
  learns to call as the engine parses calls) and results as user turns.
- prompt/completion, ``{"prompt": ..., "completion": ...}``: no template; the completion and
  an end-of-sequence token after it are supervised, as ``/v1/completions`` would continue the
  prompt.

Labels are found by character spans, never by token id: a model whose pad token is its
end-of-turn token (SmolLM2's GGUF) still learns to stop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

IGNORE = -100  # the label of a token that is not supervised


@dataclass(frozen=True, slots=True)
class EncodedExample:
    input_ids: list[int]
    labels: list[int]  # the token itself where supervised, IGNORE elsewhere

    @property
    def supervised_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


@functools.lru_cache(maxsize=4)
def load_tokenizer(base_gguf: Path) -> PreTrainedTokenizerBase:
    """The tokenizer and chat template stored in ``base_gguf``; loading takes a few seconds."""
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
        str(base_gguf.parent), gguf_file=base_gguf.name
    )
    return tokenizer


def fit_context(example: EncodedExample, max_tokens: int) -> EncodedExample | None:
    """``example`` cut to ``max_tokens`` tokens, keeping the replies it trains on; None when
    no whole reply fits.

    The window ends with the last supervised token and reaches back as far as it may: the
    earliest context goes first (the latest replies and what leads to them stay). A reply whose
    start the window cuts off, or whose first token would have no token before it to be
    predicted from, is not supervised in what is left.
    """
    if max_tokens < 2:
        raise ValueError("a training context holds at least two tokens")
    if len(example.input_ids) <= max_tokens:
        return example
    supervised = [i for i, label in enumerate(example.labels) if label != IGNORE]
    if not supervised:
        return None
    end = supervised[-1] + 1
    start = max(0, end - max_tokens)
    labels = example.labels[start : start + max_tokens]
    cut = 0  # a stretch of supervised tokens that begins at or before the window's start
    while cut < len(labels) and labels[cut] != IGNORE:
        cut += 1
    labels = [IGNORE] * cut + labels[cut:]
    if all(label == IGNORE for label in labels):
        return None
    return EncodedExample(example.input_ids[start : start + max_tokens], labels)


def count_tokens(tokenizer: PreTrainedTokenizerBase, example: Mapping[str, Any]) -> int:
    """All tokens the example trains on, prompt included: what training is billed by."""
    return len(encode_example(tokenizer, example).input_ids)


def encode_example(
    tokenizer: PreTrainedTokenizerBase, example: Mapping[str, Any]
) -> EncodedExample:
    if "messages" in example:
        return _encode_chat(
            tokenizer, example["messages"], example.get("tools"), example.get("parallel_tool_calls")
        )
    if "prompt" in example and "completion" in example:
        return _encode_completion(tokenizer, example["prompt"], example["completion"])
    raise ValueError("an example has either 'messages' or both 'prompt' and 'completion'")


def _encode_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Mapping[str, Any]],
    tools: Any = None,
    parallel_tool_calls: Any = None,
) -> EncodedExample:
    as_served = _served_form(tokenizer, tools, parallel_tool_calls)

    def render(turns: Sequence[Mapping[str, Any]], *, reply_follows: bool) -> str:
        conversation, extra = as_served([dict(turn) for turn in turns])
        text = tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=reply_follows, **extra
        )
        assert isinstance(text, str)  # tokenize=False renders text
        return text

    text = render(messages, reply_follows=False)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message.get("role") != "assistant" or message.get("weight", 1) == 0:
            continue
        if index == 0:
            raise ValueError("a supervised assistant message needs a message before it")
        prompt = render(messages[:index], reply_follows=True)
        through_reply = render(messages[: index + 1], reply_follows=False)
        if not (text.startswith(prompt) and text.startswith(through_reply)):
            raise ValueError("the chat template does not render a conversation turn by turn")
        spans.append((len(prompt), len(through_reply.rstrip())))

    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids: list[int] = encoded["input_ids"]
    labels = [
        token if any(start < end_ and end > start_ for start_, end_ in spans) else IGNORE
        for token, (start, end) in zip(input_ids, encoded["offset_mapping"], strict=True)
    ]
    return EncodedExample(input_ids, labels)


ServedForm = Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], dict[str, Any]]]


def _served_form(tokenizer: PreTrainedTokenizerBase, tools: Any, parallel: Any) -> ServedForm:
    """The conversation (and the template's extra variables) as ``engine.chat_template``
    renders it: with the engine's own tool transformations, for the template's kind. Plain
    text turns without tools render as they are (and import nothing of the engine)."""

    def served(turns: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if not tools and parallel is None and all(_plain(turn) for turn in turns):
            return turns, {}
        from tokenmill.engine.tool_prompt import generic_messages, native_messages, native_tools
        from tokenmill.protocol.tools import parse_tool_use

        body: dict[str, Any] = {"tools": tools}
        if parallel is not None:
            body["parallel_tool_calls"] = parallel
        use = parse_tool_use(body)
        if "tools" in (tokenizer.chat_template or ""):  # the engine's test, on the same template
            definitions = native_tools(use)
            return native_messages(turns), {} if definitions is None else {"tools": definitions}
        return generic_messages(turns, use), {}

    return served


def _plain(turn: Mapping[str, Any]) -> bool:
    return (
        turn.get("role") != "tool"
        and not turn.get("tool_calls")
        and isinstance(turn.get("content"), str)
    )


def _encode_completion(
    tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str
) -> EncodedExample:
    # Tokenized apart, as at inference: the prompt alone, then whatever the model continues with.
    prompt_ids: list[int] = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    completion_ids: list[int] = tokenizer(completion, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if not isinstance(eos, int):
        raise ValueError("the tokenizer has no end-of-sequence token")
    completion_ids = [*completion_ids, eos]
    return EncodedExample(prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids)
