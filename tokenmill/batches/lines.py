"""A batch's input file, read as OpenAI reads it: one request per line.

Each line is a JSON object ``{"custom_id", "method": "POST", "url", "body"}``: ``url`` is the
batch's endpoint, ``custom_id`` a string no other line uses, ``body`` an object naming its
``model``. Blank lines are skipped; there are at most ``MAX_LINES`` requests. ``parse_input``
returns the requests, or raises ``InvalidInput`` listing every bad line (up to
``MAX_ERRORS``) with its number and a code, which becomes the failed batch's ``errors``.
Whether a body is a valid request for its model is each line's own business, found out when
it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
MAX_LINES = 50_000
MAX_ERRORS = 100
METHOD = "POST"


@dataclass(frozen=True, slots=True)
class LineError:
    """One reason the input file is refused, as an entry of the batch's ``errors.data``."""

    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def as_openai(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


@dataclass(frozen=True, slots=True)
class BatchRequest:
    line: int  # 1-based, as an editor numbers the file's lines
    custom_id: str
    url: str
    body: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.body["model"])


class InvalidInput(Exception):
    def __init__(self, errors: list[LineError]) -> None:
        super().__init__(f"{len(errors)} error(s) in the input file")
        self.errors = errors


def parse_line(text: bytes, number: int, endpoint: str) -> BatchRequest | LineError:
    """One non-blank line: its request, or why it is not one."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return LineError("invalid_json_line", "This line is not parseable as valid JSON.", number)
    if not isinstance(data, dict):
        return LineError("invalid_json_line", "This line is not a JSON object.", number)
    for name in ("custom_id", "method", "url", "body"):
        if name not in data or data[name] is None:
            return LineError(
                "missing_required_parameter", f"Missing required parameter: '{name}'.", number, name
            )
    custom_id, method, url, body = data["custom_id"], data["method"], data["url"], data["body"]
    if not isinstance(custom_id, str) or not custom_id:
        return LineError(
            "invalid_value", "custom_id must be a non-empty string.", number, "custom_id"
        )
    if method != METHOD:
        return LineError(
            "invalid_value", f"method must be 'POST', not {method!r}.", number, "method"
        )
    if url != endpoint:
        return LineError(
            "mismatched_endpoint",
            f"The url {url!r} does not match the batch's endpoint {endpoint!r}.",
            number,
            "url",
        )
    if not isinstance(body, dict):
        return LineError("invalid_value", "body must be a JSON object.", number, "body")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return LineError(
            "missing_required_parameter",
            "Missing required parameter: 'body.model'.",
            number,
            "body.model",
        )
    return BatchRequest(number, custom_id, url, body)


def parse_input(data: bytes, endpoint: str) -> list[BatchRequest]:
    """Every request of the file, in order; ``InvalidInput`` when any line is bad."""
    requests: list[BatchRequest] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    for number, text in enumerate(data.split(b"\n"), start=1):
        if not text.strip():
            continue
        parsed = parse_line(text, number, endpoint)
        if isinstance(parsed, BatchRequest) and parsed.custom_id in seen:
            parsed = LineError(
                "duplicate_custom_id",
                f"The custom_id {parsed.custom_id!r} is used by an earlier line.",
                number,
                "custom_id",
            )
        if isinstance(parsed, LineError):
            if len(errors) < MAX_ERRORS:
                errors.append(parsed)
            continue
        seen.add(parsed.custom_id)
        requests.append(parsed)
        if len(requests) > MAX_LINES:
            errors.append(
                LineError(
                    "too_many_requests",
                    f"A batch has at most {MAX_LINES} requests; this file has more.",
                    number,
                )
            )
            break
    if not errors and not requests:
        errors.append(LineError("empty_file", "The input file has no requests."))
    if errors:
        raise InvalidInput(errors)
    return requests
