"""What a batch writes: one JSON line per finished request, in its output or its error file.

A request answered 200 goes to the output file; any other answer, or a request that could not
be sent (refused before it reached a model, or left when the batch expired), to the error file.
Both have OpenAI's shape::

    {"id": "batch_req_...", "custom_id": "...",
     "response": {"status_code": 200, "request_id": "...", "body": {...}} | null,
     "error": {"code": "...", "message": "..."} | null}
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

OK = 200


@dataclass(frozen=True, slots=True)
class LineResult:
    """How one line of a batch ended. ``status_code`` is None when no answer came back (then
    ``error`` says why); otherwise ``body`` is the answer, an error body included."""

    line: int
    custom_id: str
    status_code: int | None
    request_id: str | None
    body: dict[str, Any] | None
    error: dict[str, str] | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code == OK

    @classmethod
    def answered(
        cls, line: int, custom_id: str, status_code: int, request_id: str, body: dict[str, Any]
    ) -> LineResult:
        return cls(line, custom_id, status_code, request_id, body)

    @classmethod
    def unsent(cls, line: int, custom_id: str, code: str, message: str) -> LineResult:
        return cls(line, custom_id, None, None, None, {"code": code, "message": message})


def request_line_id(batch_id: str, line: int) -> str:
    """A line's ``batch_req_`` id: the same every time the batch's files are written."""
    digest = hashlib.sha256(f"{batch_id}:{line}".encode()).hexdigest()
    return f"batch_req_{digest[:32]}"


def output_line(batch_id: str, result: LineResult) -> dict[str, Any]:
    response = None
    if result.status_code is not None:
        response = {
            "status_code": result.status_code,
            "request_id": result.request_id,
            "body": result.body,
        }
    return {
        "id": request_line_id(batch_id, result.line),
        "custom_id": result.custom_id,
        "response": response,
        "error": result.error,
    }


def jsonl(batch_id: str, results: Iterable[LineResult]) -> bytes:
    """The lines in input order, each ending in a newline."""
    ordered = sorted(results, key=lambda r: r.line)
    return b"".join(orjson.dumps(output_line(batch_id, r)) + b"\n" for r in ordered)


def split(results: Iterable[LineResult]) -> tuple[list[LineResult], list[LineResult]]:
    """(the output file's lines, the error file's lines)."""
    done = list(results)
    return [r for r in done if r.succeeded], [r for r in done if not r.succeeded]
