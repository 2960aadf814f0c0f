"""Training examples as token ids and labels, rendered the way the model will be prompted.

Two formats, as OpenAI's fine-tuning API takes them:

- chat, ``{"messages": [{"role": ..., "content": ...}, ...]}``: the conversation is rendered
  with the base model's own chat template, the one the engine renders prompts with, and only
  the assistant replies are supervised: each reply's text and the template's end-of-turn token
  after it, not the whitespace the template puts between turns. An assistant message with
  ``"weight": 0`` is context only.
- prompt/completion, ``{"prompt": ..., "completion": ...}``: no template; the completion and
  an end-of-sequence token after it are supervised, as ``/v1/completions`` would continue the
  prompt.

Labels are found by character spans, never by token id: a model whose pad token is its
end-of-turn token (SmolLM2's GGUF) still learns to stop.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
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


def count_tokens(tokenizer: PreTrainedTokenizerBase, example: Mapping[str, Any]) -> int:
    """All tokens the example trains on, prompt included: what training is billed by."""
    return len(encode_example(tokenizer, example).input_ids)


def encode_example(
    tokenizer: PreTrainedTokenizerBase, example: Mapping[str, Any]
) -> EncodedExample:
    if "messages" in example:
        return _encode_chat(tokenizer, example["messages"])
    if "prompt" in example and "completion" in example:
        return _encode_completion(tokenizer, example["prompt"], example["completion"])
    raise ValueError("an example has either 'messages' or both 'prompt' and 'completion'")


def _encode_chat(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, Any]]
) -> EncodedExample:
    def render(turns: Sequence[Mapping[str, Any]], *, reply_follows: bool) -> str:
        conversation: list[dict[str, str]] = [dict(turn) for turn in turns]
        text = tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=reply_follows
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
