"""A version's content: the seeded split, the content hash, the rows' lines and tokens."""

from __future__ import annotations

import json

import pytest

from tests.datasets.conftest import chat, examples, jsonl
from tokenmill.datasets.content import SplitPlan, build_content, canonical
from tokenmill.errors import InvalidRequest
from tokenmill.tuning.validation import Example, ValidationReport, validate


def length(example: Example) -> int:
    """A token counter for pure tests: one "token" per byte of the canonical JSON."""
    return len(canonical(example))


def report(data: bytes) -> ValidationReport:
    return validate(data, count_tokens=length, min_examples=1)


def test_the_split_holds_out_the_fraction_the_same_way_each_time() -> None:
    data = jsonl(examples(40))
    first = build_content(report(data), None, SplitPlan(0.25, seed=3), length)
    again = build_content(report(data), None, SplitPlan(0.25, seed=3), length)
    other = build_content(report(data), None, SplitPlan(0.25, seed=4), length)
    assert (first.count("train"), first.count("validation")) == (30, 10)
    assert first == again and first.sha256 == again.sha256
    held = [r.line for r in first.rows if r.split == "validation"]
    assert held != [r.line for r in other.rows if r.split == "validation"]
    assert first.sha256 != other.sha256  # another split is other content
    train = [r for r in first.rows if r.split == "train"]
    assert [r.index for r in train] == list(range(30))
    assert [r.line for r in train] == sorted(r.line for r in train)  # the file's order kept
    assert sorted(r.line for r in first.rows) == list(range(1, 41))  # every line once


def test_rows_keep_their_lines_tokens_and_examples() -> None:
    rows = examples(3)
    data = b"\n".join([json.dumps(rows[0]).encode(), b"not json", json.dumps(rows[1]).encode()])
    data += b"\n" + json.dumps(rows[2]).encode()
    checked = validate(data, count_tokens=length, min_examples=1)
    assert not checked.ok  # the bad line is an error: no dataset from it
    with pytest.raises(InvalidRequest, match="line 2"):
        build_content(checked, None, SplitPlan(0.0), length)
    good = jsonl(rows)
    content = build_content(report(good), None, SplitPlan(0.0), length)
    assert [(r.split, r.line, r.example) for r in content.rows] == [
        ("train", 1, rows[0]),
        ("train", 2, rows[1]),
        ("train", 3, rows[2]),
    ]
    assert content.tokens() == sum(length(r) for r in rows) and content.tokens("validation") == 0
    assert content.format == "chat"


def test_the_hash_is_of_the_examples_not_the_bytes_of_the_file() -> None:
    rows = examples(5)
    spaced = b"\n".join(
        json.dumps(r, indent=None, separators=(" , ", " : ")).encode() for r in rows
    )
    reordered = jsonl(
        [{"messages": [dict(reversed(m.items())) for m in r["messages"]]} for r in rows]
    )
    plan = SplitPlan(0.2, seed=1)
    one = build_content(report(jsonl(rows)), None, plan, length)
    assert one.sha256 == build_content(report(spaced + b"\n\n"), None, plan, length).sha256
    assert one.sha256 == build_content(report(reordered), None, plan, length).sha256
    changed = build_content(
        report(jsonl([*rows[:4], chat("Another?", "Yes.")])), None, plan, length
    )
    assert changed.sha256 != one.sha256


def test_a_validation_file_is_the_validation_split() -> None:
    train, held = jsonl(examples(6)), jsonl(examples(2, tag="v"))
    plan = SplitPlan(0.5, validation_file_id="file-v")
    content = build_content(report(train), report(held), plan, length)
    assert (content.count("train"), content.count("validation")) == (6, 2)
    assert [r.line for r in content.rows if r.split == "validation"] == [1, 2]
    assert plan.as_json() == {"method": "file", "validation_file": "file-v"}
    prompts = jsonl([{"prompt": "a", "completion": "b"}])
    with pytest.raises(InvalidRequest, match="one format") as refused:
        build_content(report(train), report(prompts), plan, length)
    assert refused.value.code == "mixed_formats"


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2])
def test_a_fraction_outside_zero_to_one_is_refused(fraction: float) -> None:
    with pytest.raises(InvalidRequest) as refused:
        SplitPlan(fraction)
    assert refused.value.param == "validation_fraction"


def test_prompt_completion_files_are_datasets_too() -> None:
    rows = [{"prompt": f"{i} + 1 =", "completion": f" {i + 1}"} for i in range(10)]
    content = build_content(report(jsonl(rows)), None, SplitPlan(0.1, seed=0), length)
    assert content.format == "prompt_completion"
    assert (content.count("train"), content.count("validation")) == (9, 1)
