"""Validation of fine-tuning files (OpenAI's JSONL formats), line by line, with token statistics.

``validate(data, count_tokens=...)`` takes a JSONL file's raw bytes and returns a
``ValidationReport``; it never raises, whatever the bytes. In order:
1. split on ``\\n``, each line decoded (UTF-8) and parsed (JSON); blank lines at the end are fine;
2. the first line that declares a format fixes the file's: ``messages`` (chat) or
   ``prompt``/``completion`` (prompt_completion); a line of the other is ``mixed_formats``;
3. each line is checked against that format: a ``LineError`` (1-based line, a code from
   ``ERROR_CODES``) for the first problem of each code; codes follow OpenAI's chat data checks;
4. valid examples are counted with the model's tokenizer and chat template (``count_tokens``,
   injected) and looked at for length, duplicates, empty turns, system messages (warnings).
Pure: no I/O, no tokenizer.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

Format = Literal["chat", "prompt_completion"]
Example = dict[str, Any]
TokenCounter = Callable[[Example], int]

ERROR_CODES = frozenset(
    {
        "invalid_encoding",  # the line is not UTF-8
        "invalid_json",  # not JSON, or a blank line before the last example
        "data_type",  # the line, a message or a message's name is not of the right JSON type
        "mixed_formats",  # a prompt/completion line in a chat file, or the other way round
        "example_unrecognized_key",  # a key other than the format's own at the top of a line
        "missing_messages_list",  # chat: no non-empty ``messages`` list
        "message_missing_key",  # a message without role, or without content (and no tool calls)
        "message_unrecognized_key",
        "unrecognized_role",  # roles: system, user, assistant, tool
        "missing_content",  # not a string or list of text parts, null, or an empty user message
        "invalid_weight",  # weight other than 0 or 1, or on a message that is not the assistant's
        "invalid_tool_calls",  # not a list of function calls, or not on an assistant message
        "unexpected_tool_message",  # a tool message that answers no earlier tool call
        "invalid_tools",  # ``tools`` not a list of functions, ``parallel_tool_calls`` not a bool
        "example_missing_assistant_message",  # no assistant message with weight 1
        "missing_prompt",  # prompt/completion: prompt not a string
        "missing_completion",  # prompt/completion: completion not a non-empty string
        "token_count_failed",  # the tokenizer raised on this example
        "empty_file",  # file level: no lines
        "too_few_examples",  # file level: fewer valid examples than the minimum
    }
)
WARNING_CODES = frozenset(
    {
        "exceeds_context",  # more tokens than the model's context: training truncates it
        "duplicate_example",  # the same example (as a JSON value) on an earlier line
        "empty_assistant_message",  # assistant content "" without tool calls
        "missing_system_message",  # file level: some chat examples have one, some do not
    }
)
CHAT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
PROMPT_KEYS = frozenset({"prompt", "completion"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id"})
ROLES = frozenset({"system", "user", "assistant", "tool"})
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class LineError:
    """One problem: ``line`` is 1-based, None for the file as a whole."""

    line: int | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class TokenStats:
    total_tokens: int
    min_tokens: int
    mean_tokens: float
    max_tokens: int
    over_context: int
    context_length: int | None
    epochs: int
    trained_tokens: int  # estimate: each example capped at the context, times epochs


@dataclass(frozen=True, slots=True)
class ValidationReport:
    format: Format | None
    lines: int
    examples: int  # valid examples
    errors: tuple[LineError, ...]  # at most ``max_reported_per_code`` of each code
    warnings: tuple[LineError, ...]
    error_counts: Mapping[str, int]  # every error, reported or not
    warning_counts: Mapping[str, int]
    tokens: TokenStats | None
    min_examples: int
    examples_data: tuple[Example, ...] = field(default=(), repr=False)
    example_lines: tuple[int, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return not self.error_counts and self.examples >= self.min_examples

    def as_json(self) -> dict[str, Any]:
        """The report without its examples: JSON-able, with stable keys."""
        return {
            "format": self.format,
            "ok": self.ok,
            "lines": self.lines,
            "examples": self.examples,
            "min_examples": self.min_examples,
            "errors": [asdict(e) for e in self.errors],
            "error_counts": dict(sorted(self.error_counts.items())),
            "warnings": [asdict(w) for w in self.warnings],
            "warning_counts": dict(sorted(self.warning_counts.items())),
            "tokens": None if self.tokens is None else asdict(self.tokens),
        }


def auto_epochs(examples: int) -> int:
    """OpenAI's default: 3 epochs, more for small sets (about 100 examples seen), at most 25, and
    fewer for large ones (about 25,000 seen), at least 1."""
    if examples <= 0:
        return 3
    if examples * 3 < 100:
        return min(25, math.ceil(100 / examples))
    if examples * 3 > 25_000:
        return max(1, 25_000 // examples)
    return 3


def validate(
    data: bytes,
    *,
    count_tokens: TokenCounter,
    context_length: int | None = None,
    min_examples: int = 10,
    epochs: int | None = None,
    max_reported_per_code: int = 50,
) -> ValidationReport:
    """Check a fine-tuning JSONL file; ``epochs`` None means ``auto_epochs``."""
    raw_lines = data.removeprefix(BOM).split(b"\n")
    while raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()
    errors: list[LineError] = []
    warnings: list[LineError] = []
    parsed: list[tuple[int, Example]] = []
    for number, raw in enumerate(raw_lines, start=1):
        value, problem = _parse(raw)
        if problem is not None:
            errors.append(LineError(number, *problem))
        elif not isinstance(value, dict):
            errors.append(LineError(number, "data_type", "the line is not a JSON object"))
        else:
            parsed.append((number, value))
    file_format = next((f for _, ex in parsed if (f := _declared(ex)) is not None), None)
    examples: list[tuple[int, Example]] = []
    counts: list[int] = []
    first_line: dict[bytes, int] = {}  # an example's canonical hash -> its first line
    for number, example in parsed:
        declared = _declared(example)
        if declared is not None and declared != file_format:
            problems = {"mixed_formats": f"a {declared} example in a {file_format} file"}
        elif file_format == "prompt_completion":
            problems = _check_prompt(example)
        else:
            problems = _check_chat(example)
        errors.extend(LineError(number, code, message) for code, message in problems.items())
        if problems:
            continue
        try:
            n_tokens = int(count_tokens(example))
        except Exception as exc:  # the tokenizer is injected: report it, never raise
            errors.append(LineError(number, "token_count_failed", f"tokenizer: {exc!r}"[:200]))
            continue
        examples.append((number, example))
        counts.append(n_tokens)
        if context_length is not None and n_tokens > context_length:
            message = f"{n_tokens} tokens, over the context ({context_length}): truncated"
            warnings.append(LineError(number, "exceeds_context", message))
        digest = hashlib.sha256(orjson.dumps(example, option=orjson.OPT_SORT_KEYS)).digest()
        if (first := first_line.setdefault(digest, number)) != number:
            warnings.append(LineError(number, "duplicate_example", f"same as line {first}"))
        if any(_empty_assistant(m) for m in example.get("messages", ())):
            warnings.append(LineError(number, "empty_assistant_message", "empty assistant turn"))

    if not raw_lines:
        errors.append(LineError(None, "empty_file", "the file has no lines"))
    elif len(examples) < min_examples:
        found = f"{len(examples)} valid example" + ("" if len(examples) == 1 else "s")
        message = f"{found}, at least {min_examples} needed"
        errors.append(LineError(None, "too_few_examples", message))
    without = sum(
        1
        for _, ex in examples
        if file_format == "chat" and all(m["role"] != "system" for m in ex["messages"])
    )
    if 0 < without < len(examples):
        message = f"{without} examples have no system message"
        warnings.append(LineError(None, "missing_system_message", message))
    n_epochs = epochs if epochs is not None else auto_epochs(len(examples))
    return ValidationReport(
        format=file_format,
        lines=len(raw_lines),
        examples=len(examples),
        errors=_capped(errors, max_reported_per_code),
        warnings=_capped(warnings, max_reported_per_code),
        error_counts=dict(Counter(e.code for e in errors)),
        warning_counts=dict(Counter(w.code for w in warnings)),
        tokens=_token_stats(counts, context_length, n_epochs),
        min_examples=min_examples,
        examples_data=tuple(ex for _, ex in examples),
        example_lines=tuple(number for number, _ in examples),
    )


def split(
    examples: Sequence[Example], validation_fraction: float, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """A deterministic train/validation split: the examples whose seeded hash is lowest are held
    out, ``round(n * fraction)`` of them (at least one when the fraction is above zero and there
    are two examples or more); each part keeps the input order."""
    if not 0 <= validation_fraction < 1:
        raise ValueError("validation_fraction must be at least 0 and below 1")
    n = len(examples)
    take = (
        min(n - 1, max(1, round(n * validation_fraction))) if validation_fraction and n > 1 else 0
    )
    salt = f"{seed}:".encode()

    def key(i: int) -> tuple[bytes, int]:
        canonical = orjson.dumps(examples[i], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(salt + canonical).digest(), i

    held = set(sorted(range(n), key=key)[:take])
    train = [ex for i, ex in enumerate(examples) if i not in held]
    return train, [ex for i, ex in enumerate(examples) if i in held]


def _parse(raw: bytes) -> tuple[object, tuple[str, str] | None]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, ("invalid_encoding", f"not UTF-8 (bad byte at offset {exc.start})")
    if not text.strip():
        return None, ("invalid_json", "blank line (only the last lines may be blank)")
    try:
        value = orjson.loads(text)
        orjson.dumps(value)  # what the trainer gets must encode again (depth, surrogates)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError) as exc:
        return None, ("invalid_json", f"not valid JSON: {exc}"[:200])
    return value, None


def _declared(example: Example) -> Format | None:
    if "messages" in example:
        return "chat"
    if "prompt" in example or "completion" in example:
        return "prompt_completion"
    return None


def _check_prompt(example: Example) -> dict[str, str]:
    found: dict[str, str] = {}
    extra = sorted(set(example) - PROMPT_KEYS)
    if extra:
        found["example_unrecognized_key"] = f"unrecognized key {_show(extra[0])}"
    if not isinstance(example.get("prompt"), str):
        found["missing_prompt"] = "prompt must be a string"
    completion = example.get("completion")
    if not isinstance(completion, str) or not completion.strip():
        found["missing_completion"] = "completion must be a non-empty string"
    return found


def _check_chat(example: Example) -> dict[str, str]:
    found: dict[str, str] = {}
    flag = found.setdefault
    extra = sorted(set(example) - CHAT_KEYS)
    if extra:
        flag("example_unrecognized_key", f"unrecognized key {_show(extra[0])}")
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        flag("missing_messages_list", "messages must be a non-empty list of messages")
        return found
    if "tools" in example and not _valid_tools(example["tools"]):
        flag("invalid_tools", "tools must be a list of functions, each with a name")
    if not isinstance(example.get("parallel_tool_calls", False), bool):
        flag("invalid_tools", "parallel_tool_calls must be true or false")
    call_ids: set[str] = set()
    assistants = trained = 0
    for i, message in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(message, dict):
            flag("data_type", f"{at} is not an object")
            continue
        role = message.get("role")
        if "role" not in message:
            flag("message_missing_key", f"{at} has no role")
        elif not isinstance(role, str) or role not in ROLES:
            flag("unrecognized_role", f"{at} has role {_show(role)}")
        extra = sorted(set(message) - MESSAGE_KEYS)
        if extra:
            flag("message_unrecognized_key", f"{at} has unrecognized key {_show(extra[0])}")
        if "name" in message and not isinstance(message["name"], str):
            flag("data_type", f"{at}.name is not a string")
        ids = _tool_call_ids(message.get("tool_calls")) if role == "assistant" else None
        has_calls = ids is not None
        if "tool_calls" in message and role != "assistant":
            flag("invalid_tool_calls", f"{at}: only assistant messages have tool_calls")
        elif "tool_calls" in message and ids is None:
            flag("invalid_tool_calls", f"{at}.tool_calls must list calls with id and function")
        call_ids.update(ids or ())
        content = message.get("content")
        text = None if content is None else _text(content)
        if "content" not in message and not has_calls:
            flag("message_missing_key", f"{at} has no content")
        elif content is None and not has_calls:
            flag("missing_content", f"{at} has null content")
        elif content is not None and text is None:
            flag("missing_content", f"{at}.content must be a string or a list of text parts")
        elif role == "user" and text is not None and not text.strip():
            flag("missing_content", f"{at} is an empty user message")
        weight = message.get("weight", 1)
        if "weight" in message and (
            role != "assistant" or type(weight) is not int or weight not in (0, 1)
        ):
            flag("invalid_weight", f"{at}.weight must be 0 or 1, on assistant messages only")
        if role == "assistant":
            assistants += 1
            trained += weight != 0
        call_id = message.get("tool_call_id")
        if role == "tool" and not (isinstance(call_id, str) and call_id in call_ids):
            flag("unexpected_tool_message", f"{at} answers no earlier tool call (tool_call_id)")
    if not assistants:
        flag("example_missing_assistant_message", "no assistant message")
    elif not trained:
        flag("example_missing_assistant_message", "every assistant message has weight 0")
    return found


def _valid_tools(tools: object) -> bool:
    if not isinstance(tools, list):
        return False
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            return False
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return False
    return True


def _tool_call_ids(calls: object) -> list[str] | None:
    """The ids of a well-formed, non-empty ``tool_calls`` list, else None."""
    if not isinstance(calls, list) or not calls:
        return None
    ids: list[str] = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            return None
        if not all(isinstance(x, str) for x in (call.get("id"), function.get("name"))):
            return None
        if not isinstance(function.get("arguments"), str):
            return None
        ids.append(call["id"])
    return ids


def _text(content: object) -> str | None:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(_is_text_part(part) for part in content):
        return "".join(part["text"] for part in content)
    return None


def _is_text_part(part: object) -> bool:
    return (
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    )


def _show(value: object) -> str:
    return repr(value[:40]) if isinstance(value, str) else f"of type {type(value).__name__}"


def _empty_assistant(message: dict[str, Any]) -> bool:
    if message.get("role") != "assistant" or "tool_calls" in message:
        return False
    return not (_text(message["content"]) or "").strip()


def _token_stats(counts: list[int], context_length: int | None, epochs: int) -> TokenStats | None:
    if not counts:
        return None
    capped = counts if context_length is None else [min(n, context_length) for n in counts]
    return TokenStats(
        total_tokens=sum(counts),
        min_tokens=min(counts),
        mean_tokens=sum(counts) / len(counts),
        max_tokens=max(counts),
        over_context=sum(1 for n in counts if context_length is not None and n > context_length),
        context_length=context_length,
        epochs=epochs,
        trained_tokens=sum(capped) * epochs,
    )


def _capped(issues: list[LineError], per_code: int) -> tuple[LineError, ...]:
    seen: Counter[str] = Counter()
    kept: list[LineError] = []
    for issue in issues:
        seen[issue.code] += 1
        if seen[issue.code] <= per_code:
            kept.append(issue)
    return tuple(kept)
