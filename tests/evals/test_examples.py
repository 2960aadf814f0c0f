"""Evaluation examples from fine-tuning rows: the prompt is what comes before the last
assistant turn, the reference is that turn's content."""

from __future__ import annotations

import orjson
import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.evals.examples import Examples, example_of, from_jsonl, require_examples


def test_a_chat_rows_reference_is_its_last_assistant_turn() -> None:
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris"},
            {"role": "user", "content": "And of Italy?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Rome"}]},
        ]
    }
    example = example_of(row)
    assert example is not None and example.chat
    assert example.reference == "Rome"
    assert example.messages == tuple(row["messages"][:4])


def test_a_prompt_completion_row() -> None:
    example = example_of({"prompt": "2+2=", "completion": " 4"})
    assert example is not None and not example.chat
    assert (example.prompt, example.reference) == ("2+2=", " 4")


@pytest.mark.parametrize(
    "row",
    [
        {"messages": [{"role": "user", "content": "no answer"}]},
        {"messages": [{"role": "assistant", "content": "nothing before me"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]},
        {"prompt": "only a prompt"},
        ["not", "an", "object"],
    ],
)
def test_rows_without_a_prompt_and_reference_are_skipped(row: object) -> None:
    assert example_of(row) is None


def test_a_file_is_read_line_by_line_up_to_the_limit() -> None:
    good = orjson.dumps({"prompt": "a", "completion": "b"})
    data = b"\n".join([good, b"not json", good, good, b""])
    found = from_jsonl(data, limit=2)
    assert len(found.examples) == 2 and found.skipped == 1
    assert len(from_jsonl(data).examples) == 3


def test_a_split_with_no_example_is_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        require_examples(Examples((), 3))
    assert refused.value.code == "no_examples" and "3 rows skipped" in refused.value.message
