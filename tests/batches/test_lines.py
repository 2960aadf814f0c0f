from __future__ import annotations

from typing import Any

import orjson
import pytest

from tokenmill.batches.lines import MAX_LINES, InvalidInput, parse_input

CHAT = "/v1/chat/completions"


def line(custom_id: Any = "a", **changes: Any) -> bytes:
    """A request line; a field given as ``...`` is left out."""
    request: dict[str, Any] = {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    }
    request.update(changes)
    return orjson.dumps({k: v for k, v in request.items() if v is not ...})


def errors_of(data: bytes, endpoint: str = CHAT) -> list[tuple[str, int | None, str | None]]:
    with pytest.raises(InvalidInput) as refused:
        parse_input(data, endpoint)
    return [(e.code, e.line, e.param) for e in refused.value.errors]


def test_good_lines_in_order_with_their_line_numbers_blank_lines_skipped() -> None:
    data = line("a") + b"\n\n" + line("b") + b"\n"
    requests = parse_input(data, CHAT)
    assert [(r.custom_id, r.line, r.model) for r in requests] == [("a", 1, "m"), ("b", 3, "m")]


def test_every_bad_line_is_listed_with_its_number_and_code() -> None:
    data = b"\n".join(
        [
            line("a"),
            b"{not json",
            b"[1, 2]",
            line(...),
            line("c", method="GET"),
            line("d", url="/v1/embeddings"),
            line("e", body={"messages": []}),
            line("a"),
            line("f", body="text"),
            line(""),
        ]
    )
    assert errors_of(data) == [
        ("invalid_json_line", 2, None),
        ("invalid_json_line", 3, None),
        ("missing_required_parameter", 4, "custom_id"),
        ("invalid_value", 5, "method"),
        ("mismatched_endpoint", 6, "url"),
        ("missing_required_parameter", 7, "body.model"),
        ("duplicate_custom_id", 8, "custom_id"),
        ("invalid_value", 9, "body"),
        ("invalid_value", 10, "custom_id"),
    ]


def test_an_empty_file_is_refused() -> None:
    assert errors_of(b"\n  \n") == [("empty_file", None, None)]


def test_at_most_fifty_thousand_requests() -> None:
    body = b'{"model":"m","input":"x"}'
    lines = [
        b'{"custom_id":"%d","method":"POST","url":"/v1/embeddings","body":%s}' % (i, body)
        for i in range(MAX_LINES + 1)
    ]
    assert len(parse_input(b"\n".join(lines[:MAX_LINES]), "/v1/embeddings")) == MAX_LINES
    assert errors_of(b"\n".join(lines), "/v1/embeddings") == [
        ("too_many_requests", MAX_LINES + 1, None)
    ]
