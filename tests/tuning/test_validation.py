from __future__ import annotations

import math
import random
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmill.tuning.validation import (
    ERROR_CODES,
    WARNING_CODES,
    Example,
    LineError,
    ValidationReport,
    auto_epochs,
    split,
    validate,
)

FILE_LEVEL = {"empty_file", "too_few_examples", "missing_system_message"}


def fake_tokens(example: Example) -> int:
    """Stands in for the model's tokenizer and chat template: about 1.3 tokens a word."""
    return math.ceil(1.3 * len(re.findall(rb"\w+", orjson.dumps(example))))


def jsonl(*lines: object) -> bytes:
    return b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines) + b"\n"


def user(text: str = "hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str = "hello") -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def chat(*messages: object, **extra: object) -> dict[str, Any]:
    return {"messages": list(messages), **extra}


def run(data: bytes, **kwargs: Any) -> ValidationReport:
    kwargs.setdefault("count_tokens", fake_tokens)
    kwargs.setdefault("min_examples", 1)
    return validate(data, **kwargs)


def codes(report: ValidationReport) -> set[tuple[int | None, str]]:
    return {(e.line, e.code) for e in report.errors}


CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


def valid_chat_file() -> list[dict[str, Any]]:
    examples = [
        chat({"role": "system", "content": "Be brief."}, user(f"question {i}"), assistant(f"a{i}"))
        for i in range(6)
    ]
    examples += [
        chat(
            {"role": "system", "content": "Use tools."},
            user("weather?"),
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            assistant("It is sunny."),
            tools=[WEATHER],
            parallel_tool_calls=False,
        ),
        chat(
            {"role": "system", "content": "Parts."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}],
            },
            {"role": "assistant", "content": "skip me", "weight": 0},
            {"role": "user", "content": "again", "name": "a"},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}], "weight": 1},
        ),
        chat(
            {"role": "system", "content": "S"},
            user("x"),
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
        ),
        chat(
            {"role": "system", "content": "S"},
            user(" multi\nline "),
            assistant("done"),
        ),
    ]
    return examples


def test_valid_chat_file() -> None:
    examples = valid_chat_file()
    report = validate(jsonl(*examples), count_tokens=fake_tokens, context_length=4096, epochs=2)
    assert report.errors == () and report.warnings == ()
    assert report.ok and report.format == "chat"
    assert report.examples == report.lines == 10
    assert list(report.examples_data) == examples
    assert report.example_lines == tuple(range(1, 11))
    counts = [fake_tokens(ex) for ex in examples]
    t = report.tokens
    assert t is not None
    assert (t.total_tokens, t.min_tokens, t.max_tokens) == (sum(counts), min(counts), max(counts))
    assert t.mean_tokens == pytest.approx(sum(counts) / 10)
    assert (t.over_context, t.epochs, t.trained_tokens) == (0, 2, 2 * sum(counts))


def test_valid_prompt_completion_file() -> None:
    lines = [{"prompt": f"Q{i}:", "completion": f" A{i}"} for i in range(12)]
    report = validate(jsonl(*lines), count_tokens=fake_tokens)
    assert report.ok and report.format == "prompt_completion" and report.examples == 12
    assert report.errors == () and report.warnings == ()
    assert report.tokens is not None and report.tokens.epochs == auto_epochs(12) == 9


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b'{"messages": [', "invalid_json"),
        (b'{"messages": [], }', "invalid_json"),
        (b"\xff\xfe{}", "invalid_encoding"),
        (b"[1, 2]", "data_type"),
        (b'"text"', "data_type"),
        (chat("hi", assistant()), "data_type"),
        (chat({"role": "user", "content": "x", "name": 3}, assistant()), "data_type"),
        (chat(), "missing_messages_list"),
        ({"messages": "hi"}, "missing_messages_list"),
        ({"tools": []}, "missing_messages_list"),
        (chat({"content": "hi"}, assistant()), "message_missing_key"),
        (chat({"role": "user"}, assistant()), "message_missing_key"),
        (chat(user(), {"role": "assistant"}), "message_missing_key"),
        (
            chat({"role": "user", "content": "hi", "foo": 1}, assistant()),
            "message_unrecognized_key",
        ),
        (chat({"role": "bot", "content": "hi"}, assistant()), "unrecognized_role"),
        (chat({"role": "user", "content": 5}, assistant()), "missing_content"),
        (chat(user(""), assistant()), "missing_content"),
        (chat(user("  "), assistant()), "missing_content"),
        (chat({"role": "user", "content": None}, assistant()), "missing_content"),
        (
            chat({"role": "user", "content": [{"type": "image_url"}]}, assistant()),
            "missing_content",
        ),
        (chat(user(), {"role": "assistant", "content": "x", "weight": 2}), "invalid_weight"),
        (chat(user(), {"role": "assistant", "content": "x", "weight": True}), "invalid_weight"),
        (chat({"role": "user", "content": "x", "weight": 1}, assistant()), "invalid_weight"),
        (
            chat({"role": "user", "content": "x", "tool_calls": [CALL]}, assistant()),
            "invalid_tool_calls",
        ),
        (
            chat(user(), {"role": "assistant", "content": "x", "tool_calls": [{"id": "1"}]}),
            "invalid_tool_calls",
        ),
        (
            chat(user(), {"role": "tool", "tool_call_id": "c", "content": "x"}, assistant()),
            "unexpected_tool_message",
        ),
        (chat(user(), assistant(), tools="f"), "invalid_tools"),
        (chat(user(), assistant(), tools=[{"type": "function"}]), "invalid_tools"),
        (chat(user(), assistant(), parallel_tool_calls="yes"), "invalid_tools"),
        (chat(user(), assistant(), extra=1), "example_unrecognized_key"),
        (chat(user()), "example_missing_assistant_message"),
        (
            chat(user(), {"role": "assistant", "content": "x", "weight": 0}),
            "example_missing_assistant_message",
        ),
        ({"prompt": "p", "completion": "c"}, "mixed_formats"),
    ],
)
def test_each_chat_error_code(line: object, code: str) -> None:
    report = run(jsonl(chat(user(), assistant()), line))
    assert codes(report) == {(2, code)}
    assert report.examples == 1 and report.example_lines == (1,) and not report.ok
    assert code in ERROR_CODES


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ({"completion": "c"}, "missing_prompt"),
        ({"prompt": 1, "completion": "c"}, "missing_prompt"),
        ({"prompt": "p"}, "missing_completion"),
        ({"prompt": "p", "completion": ""}, "missing_completion"),
        ({"prompt": "p", "completion": "c", "x": 1}, "example_unrecognized_key"),
        (chat(user(), assistant()), "mixed_formats"),
        ({"text": "no format"}, "missing_prompt"),
    ],
)
def test_each_prompt_completion_error_code(line: object, code: str) -> None:
    report = run(jsonl({"prompt": "p", "completion": "c"}, line))
    assert report.format == "prompt_completion"
    assert code in {c for _, c in codes(report)} and all(n == 2 for n, _ in codes(report))


def test_the_first_declaring_line_sets_the_format() -> None:
    report = run(jsonl({"x": 1}, {"prompt": "p", "completion": "c"}, chat(user(), assistant())))
    assert report.format == "prompt_completion"
    assert codes(report) == {
        (1, "example_unrecognized_key"),
        (1, "missing_prompt"),
        (1, "missing_completion"),
        (3, "mixed_formats"),
    }


def test_file_level_errors() -> None:
    assert codes(run(b"")) == {(None, "empty_file")}
    assert codes(run(b"\n \n\r\n")) == {(None, "empty_file")}
    report = validate(jsonl(*valid_chat_file()[:3]), count_tokens=fake_tokens)
    assert codes(report) == {(None, "too_few_examples")} and not report.ok
    assert validate(jsonl(*valid_chat_file()[:3]), count_tokens=fake_tokens, min_examples=3).ok


def test_blank_lines_crlf_and_bom() -> None:
    line = orjson.dumps(chat(user(), assistant()))
    assert run(b"\xef\xbb\xbf" + line + b"\r\n" + line + b"\r\n\r\n\n").ok
    assert codes(run(line + b"\n\n" + line)) == {(2, "invalid_json")}


def test_a_failing_tokenizer_is_reported_not_raised() -> None:
    def count(example: Example) -> int:
        if "boom" in str(example):
            raise RuntimeError("boom")
        return 1

    report = validate(
        jsonl(chat(user(), assistant()), chat(user("boom"), assistant())),
        count_tokens=count,
        min_examples=1,
    )
    assert codes(report) == {(2, "token_count_failed")} and report.examples == 1


def test_warnings() -> None:
    long = chat({"role": "system", "content": "s"}, user("word " * 100), assistant())
    same = chat({"role": "system", "content": "s"}, user(), assistant())
    reordered = {"messages": [{"content": "s", "role": "system"}, user(), assistant()]}
    empty = chat(user("q"), assistant(""))
    report = run(jsonl(long, same, reordered, empty), context_length=50, epochs=3)
    assert report.ok
    assert {(w.line, w.code) for w in report.warnings} == {
        (1, "exceeds_context"),
        (3, "duplicate_example"),
        (4, "empty_assistant_message"),
        (None, "missing_system_message"),
    }
    assert "line 2" in next(w.message for w in report.warnings if w.code == "duplicate_example")
    assert all(w.code in WARNING_CODES for w in report.warnings)
    t = report.tokens
    assert t is not None and t.over_context == 1 and t.max_tokens > 50
    assert t.trained_tokens == 3 * (50 + sum(fake_tokens(ex) for ex in (same, reordered, empty)))


def test_no_system_warning_when_no_example_has_one() -> None:
    assert run(jsonl(chat(user(), assistant()), chat(user("b"), assistant()))).warnings == ()


def test_reported_errors_are_capped_per_code_but_all_counted() -> None:
    report = run(jsonl(*([b"nope"] * 120 + [b"[]"] * 3)), max_reported_per_code=5)
    assert [e.code for e in report.errors].count("invalid_json") == 5
    assert report.error_counts == {"invalid_json": 120, "data_type": 3, "too_few_examples": 1}


def test_as_json_is_stable_and_json_able() -> None:
    report = run(jsonl(chat(user(), assistant()), b"x"))
    doc = orjson.loads(orjson.dumps(report.as_json()))
    assert list(doc) == [
        "format",
        "ok",
        "lines",
        "examples",
        "min_examples",
        "errors",
        "error_counts",
        "warnings",
        "warning_counts",
        "tokens",
    ]
    assert doc["errors"] == [
        {"line": 2, "code": "invalid_json", "message": doc["errors"][0]["message"]}
    ]
    assert set(doc["tokens"]) == {
        "total_tokens",
        "min_tokens",
        "mean_tokens",
        "max_tokens",
        "over_context",
        "context_length",
        "epochs",
        "trained_tokens",
    }
    assert run(b"").as_json()["tokens"] is None


def test_nested_garbage_and_huge_lines() -> None:
    deep = b'{"messages": ' + b"[" * 300 + b"]" * 300 + b"}"
    report = run(
        jsonl(b"[" * 100_000, deep, chat(user("w " * 1_000_000), assistant()), b'{"a": "\\ud800"}')
    )
    assert report.examples == 1
    assert codes(report) == {(1, "invalid_json"), (2, "invalid_json"), (4, "invalid_json")}


@pytest.mark.parametrize(
    ("examples", "epochs"),
    [(0, 3), (1, 25), (4, 25), (10, 10), (34, 3), (8000, 3), (9000, 2), (30000, 1)],
)
def test_auto_epochs(examples: int, epochs: int) -> None:
    assert auto_epochs(examples) == epochs


def test_split_is_deterministic_exact_and_order_free() -> None:
    examples = [chat(user(f"q{i}"), assistant()) for i in range(100)]
    train, held = split(examples, 0.2, seed=7)
    assert len(held) == 20 and len(train) == 80
    assert sorted(map(orjson.dumps, train + held)) == sorted(map(orjson.dumps, examples))
    assert [examples.index(ex) for ex in train] == sorted(examples.index(ex) for ex in train)
    assert split(examples, 0.2, seed=7) == (train, held)
    shuffled = examples[:]
    random.Random(1).shuffle(shuffled)
    assert sorted(map(orjson.dumps, split(shuffled, 0.2, seed=7)[1])) == sorted(
        map(orjson.dumps, held)
    )
    assert split(examples, 0.2, seed=8)[1] != held


def test_split_edges() -> None:
    examples = [chat(user(f"q{i}"), assistant()) for i in range(3)]
    assert split(examples, 0.0) == (examples, [])
    assert len(split(examples, 0.01)[1]) == 1
    assert len(split(examples, 0.99)[0]) == 1
    assert split(examples[:1], 0.5) == (examples[:1], [])
    with pytest.raises(ValueError):
        split(examples, 1.0)


KEYS = st.sampled_from(
    [
        "messages",
        "role",
        "content",
        "tool_calls",
        "tool_call_id",
        "weight",
        "tools",
        "name",
        "prompt",
        "completion",
        "type",
        "text",
        "function",
        "id",
        "arguments",
        "parallel_tool_calls",
    ]
)
ROLES = st.sampled_from(["system", "user", "assistant", "tool", "bot", ""])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | ROLES
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=25,
)
PLAIN = st.builds(
    lambda role, text: {"role": role, "content": text},
    st.sampled_from(["system", "user", "assistant"]),
    st.sampled_from(["", " ", "a", "b c"]) | st.text(max_size=8),
)
MESSAGE = PLAIN | st.fixed_dictionaries(
    {"role": ROLES},
    optional={k: JSON for k in ["content", "weight", "tool_calls", "tool_call_id", "name"]},
)
EXAMPLE = st.fixed_dictionaries(
    {"messages": st.lists(MESSAGE, max_size=5)},
    optional={"tools": JSON, "parallel_tool_calls": JSON},
)
LINE = st.binary(max_size=60) | JSON.map(orjson.dumps) | EXAMPLE.map(orjson.dumps) | st.just(b"")


def check_invariants(data: bytes, report: ValidationReport) -> None:
    n_lines = report.lines
    assert n_lines <= data.count(b"\n") + 1
    for e in report.errors:
        assert isinstance(e, LineError) and e.code in ERROR_CODES
        assert (e.line is None) == (e.code in FILE_LEVEL)
        assert e.line is None or 1 <= e.line <= n_lines
    for w in report.warnings:
        assert w.code in WARNING_CODES and (w.line is None or w.line in report.example_lines)
    assert report.examples == len(report.examples_data) == len(report.example_lines)
    assert not {e.line for e in report.errors} & set(report.example_lines)
    assert sum(report.error_counts.values()) >= len(report.errors)
    orjson.dumps(report.as_json())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500))
def test_random_bytes_never_raise(data: bytes) -> None:
    check_invariants(data, run(data, context_length=20))


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=12), st.integers(0, 12))
def test_random_json_lines_never_raise(lines: list[bytes], min_examples: int) -> None:
    data = b"\n".join(lines)
    report = run(data, context_length=30, min_examples=min_examples)
    check_invariants(data, report)
    assert report.ok == (not report.errors and report.examples >= min_examples)
