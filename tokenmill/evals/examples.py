"""Evaluation examples from fine-tuning rows (OpenAI's JSONL formats), pure.

A chat row's reference is the content of its last assistant message; its prompt is every
message before that one. A ``prompt``/``completion`` row's prompt and reference are those two
strings. Rows without a usable reference are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from tokenmill.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class Example:
    reference: str
    messages: tuple[dict[str, Any], ...] | None = None  # chat: the prompt's messages
    prompt: str | None = None  # prompt/completion: the prompt's text

    @property
    def chat(self) -> bool:
        return self.messages is not None


@dataclass(frozen=True, slots=True)
class Examples:
    examples: tuple[Example, ...]
    skipped: int


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and isinstance(p.get("text"), str) for p in content
    ):
        return "".join(p["text"] for p in content)
    return None


def example_of(row: Any) -> Example | None:
    """The example a row makes, or None when it has no prompt and reference."""
    if not isinstance(row, dict):
        return None
    messages = row.get("messages")
    if isinstance(messages, list):
        last = max(
            (
                i
                for i, m in enumerate(messages)
                if isinstance(m, dict) and m.get("role") == "assistant"
            ),
            default=None,
        )
        if not last:  # none, or nothing before it to prompt with
            return None
        reference = _text(messages[last].get("content"))
        before = messages[:last]
        if reference is None or not all(isinstance(m, dict) for m in before):
            return None
        return Example(reference, messages=tuple(before))
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, str) and isinstance(completion, str):
        return Example(completion, prompt=prompt)
    return None


def from_rows(rows: Iterable[Any], limit: int | None = None) -> Examples:
    examples: list[Example] = []
    skipped = 0
    for row in rows:
        example = example_of(row)
        if example is None:
            skipped += 1
        elif limit is None or len(examples) < limit:
            examples.append(example)
    return Examples(tuple(examples), skipped)


def from_jsonl(data: bytes, limit: int | None = None) -> Examples:
    """A fine-tune JSONL file's examples; a line that is not JSON counts as skipped."""
    rows: list[Any] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            rows.append(None)
    return from_rows(rows, limit)


def require_examples(found: Examples) -> tuple[Example, ...]:
    if not found.examples:
        raise InvalidRequest(
            f"The split has no example with a reference ({found.skipped} rows skipped): a chat "
            "row needs an assistant message after others; a prompt row a completion.",
            param="dataset",
            code="no_examples",
        )
    return found.examples
