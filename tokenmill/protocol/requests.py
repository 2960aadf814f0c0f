"""Parsing and validation of OpenAI-compatible request bodies.

Shared by the gateway (which validates before anything is admitted or billed) and the engine
(which must never pass bad input to llama.cpp, where an assert aborts the process). Every
refusal names the offending ``param``.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.tools import ToolUse, history_calls, parse_tool_use

MAX_STOP_SEQUENCES = 4
MAX_N = 16
MAX_TOP_LOGPROBS = 20
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    logprobs: bool = False
    top_logprobs: int = 0
    n: int = 1
    response_format: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    sampling: SamplingParams
    stream: bool = False
    include_usage: bool = False
    tools: ToolUse | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    prompt: str | list[int]
    sampling: SamplingParams
    stream: bool = False
    include_usage: bool = False
    echo: bool = False


def parse_json_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("The request body is empty; expected a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    return ChatRequest(
        model=_model(body),
        messages=_messages(body.get("messages")),
        sampling=_sampling(body, chat=True),
        stream=bool_field(body, "stream", False),
        include_usage=_include_usage(body),
        tools=parse_tool_use(body),
    )


def parse_completion(body: dict[str, Any]) -> CompletionRequest:
    """``echo`` with ``logprobs`` also asks for the prompt tokens' log-probabilities; with
    ``echo``, ``max_tokens`` may be 0 (score the prompt, generate nothing)."""
    echo = bool_field(body, "echo", False)
    return CompletionRequest(
        model=_model(body),
        prompt=_prompt(body.get("prompt")),
        sampling=_sampling(body, chat=False, fewest_tokens=0 if echo else 1),
        stream=bool_field(body, "stream", False),
        include_usage=_include_usage(body),
        echo=echo,
    )


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string.", param="model")
    return model


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{where}' must be an object.", param=where)
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise InvalidRequest(
                f"'{where}.role' must be one of {sorted(CHAT_ROLES)}, got {role!r}.",
                param=f"{where}.role",
            )
        content = message.get("content")
        if role == "assistant":
            history_calls(message, where)  # checked here, so rendering never fails on them
        if content is None and role in ("assistant", "tool"):
            continue
        if isinstance(content, str):
            continue
        if isinstance(content, list) and all(_is_text_part(p) for p in content):
            continue
        raise InvalidRequest(
            f"'{where}.content' must be a string or an array of text parts.",
            param=f"{where}.content",
        )
    return messages


def _is_text_part(part: Any) -> bool:
    return (
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    )


def message_text(content: Any) -> str:
    """The text of a message's content, whether a string or an array of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content)


def _prompt(prompt: Any) -> str | list[int]:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    tokens = token_ids(prompt)
    if tokens:
        return tokens
    raise InvalidRequest(
        "'prompt' must be a string, a one-element array of strings, or an array of token ids.",
        param="prompt",
    )


def whole(value: Any) -> int | None:
    """``value`` as an int when it is a whole number: a JSON integer, or one written with a
    zero fraction (``2.0``, which JSON Schema counts as an integer too); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**64:
        return int(value)
    return None


def token_ids(value: Any) -> list[int] | None:
    """``value`` as token ids (whole numbers of at least 0), or None when it is not a list
    of them (an empty list is an empty list)."""
    if not isinstance(value, list):
        return None
    tokens = [whole(t) for t in value]
    if any(t is None or t < 0 for t in tokens):
        return None
    return [t for t in tokens if t is not None]


def _sampling(body: dict[str, Any], *, chat: bool, fewest_tokens: int = 1) -> SamplingParams:
    max_tokens_key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    max_tokens = _int(body, max_tokens_key, None, low=fewest_tokens)
    logprobs, top_logprobs = _logprobs(body, chat=chat)
    return SamplingParams(
        max_tokens=max_tokens if max_tokens is not None else (None if chat else 16),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        top_k=_int(body, "top_k", 0, low=-1) or 0,
        min_p=_number(body, "min_p", 0.0, 0.0, 1.0),
        seed=_int(body, "seed", None, low=-(2**63), high=2**64 - 1),
        stop=_stop(body.get("stop")),
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        logit_bias=_logit_bias(body.get("logit_bias")),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        n=_int(body, "n", 1, low=1, high=MAX_N) or 1,
        response_format=_response_format(body.get("response_format")),
    )


def _logprobs(body: dict[str, Any], *, chat: bool) -> tuple[bool, int]:
    if chat:
        wanted = bool_field(body, "logprobs", False)
        top = _int(body, "top_logprobs", 0, low=0, high=MAX_TOP_LOGPROBS) or 0
        if top and not wanted:
            raise InvalidRequest(
                "'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs"
            )
        return wanted, top
    wanted_top = _int(body, "logprobs", None, low=0, high=MAX_TOP_LOGPROBS)
    return wanted_top is not None, wanted_top or 0


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"'{key}' must be a number.", param=key)
    if not low <= value <= high:
        raise InvalidRequest(
            f"'{key}' must be between {low:g} and {high:g}, got {value}.", param=key
        )
    return float(value)


def _int(
    body: dict[str, Any],
    key: str,
    default: int | None,
    *,
    low: int | None = None,
    high: int | None = None,
) -> int | None:
    raw = body.get(key)
    if raw is None:
        return default
    value = whole(raw)
    if value is None:
        raise InvalidRequest(f"'{key}' must be an integer.", param=key)
    if low is not None and value < low:
        raise InvalidRequest(f"'{key}' must be at least {low}, got {value}.", param=key)
    if high is not None and value > high:
        raise InvalidRequest(f"'{key}' must be at most {high}, got {value}.", param=key)
    return value


def refuse_unknown(body: Mapping[str, Any], fields: AbstractSet[str], where: str = "") -> None:
    """A 400 naming the first field of ``body`` (at ``where``) that is not one of ``fields``."""
    unknown = sorted(set(body) - fields)
    if unknown:
        param = f"{where}.{unknown[0]}" if where else unknown[0]
        raise InvalidRequest(f"Unknown parameter: '{param}'.", param=param)


def bool_field(body: dict[str, Any], key: str, default: bool) -> bool:
    """``body[key]`` as a boolean, ``default`` when absent or null; else a 400 naming it."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{key}' must be a boolean.", param=key)
    return value


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    if not body.get("stream"):
        raise InvalidRequest(
            "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
        )
    value = options.get("include_usage", False)
    if not isinstance(value, bool):
        raise InvalidRequest(
            "'stream_options.include_usage' must be a boolean.",
            param="stream_options.include_usage",
        )
    return value


def _stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if (
        not isinstance(stop, list)
        or len(stop) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and s for s in stop)
    ):
        raise InvalidRequest(
            f"'stop' must be a non-empty string or an array of up to {MAX_STOP_SEQUENCES} "
            "non-empty strings.",
            param="stop",
        )
    return tuple(stop)


def _logit_bias(bias: Any) -> dict[int, float]:
    if bias is None:
        return {}
    if not isinstance(bias, dict):
        raise InvalidRequest(
            "'logit_bias' must be an object of token id to bias.", param="logit_bias"
        )
    parsed: dict[int, float] = {}
    for key, value in bias.items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            raise InvalidRequest(
                f"'logit_bias' keys must be token ids, got {key!r}.", param="logit_bias"
            ) from None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not -100 <= value <= 100
        ):
            raise InvalidRequest(
                "'logit_bias' values must be numbers between -100 and 100.", param="logit_bias"
            )
        parsed[token] = float(value)
    return parsed


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise InvalidRequest(
                "'response_format.json_schema.schema' must be a JSON Schema object.",
                param="response_format.json_schema",
            )
        return {"type": "json_schema", "json_schema": spec}
    raise InvalidRequest(
        "'response_format.type' must be 'text', 'json_object' or 'json_schema'.",
        param="response_format",
    )
