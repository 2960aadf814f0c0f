from __future__ import annotations

import orjson

from tokenmill.batches.output import LineResult, jsonl, request_line_id, split


def test_output_and_error_lines_in_openais_shape_in_input_order() -> None:
    ok = LineResult.answered(3, "b", 200, "req_2", {"id": "chatcmpl-1"})
    refused = LineResult.answered(1, "a", 404, "req_1", {"error": {"code": "model_not_found"}})
    expired = LineResult.unsent(5, "c", "batch_expired", "The batch expired.")
    good, bad = split([ok, refused, expired])
    assert good == [ok] and bad == [refused, expired]

    lines = [orjson.loads(x) for x in jsonl("batch_1", [expired, ok, refused]).splitlines()]
    assert [x["custom_id"] for x in lines] == ["a", "b", "c"]
    assert lines[1] == {
        "id": request_line_id("batch_1", 3),
        "custom_id": "b",
        "response": {"status_code": 200, "request_id": "req_2", "body": {"id": "chatcmpl-1"}},
        "error": None,
    }
    assert lines[0]["response"]["status_code"] == 404 and lines[0]["error"] is None
    assert lines[2]["response"] is None
    assert lines[2]["error"] == {"code": "batch_expired", "message": "The batch expired."}


def test_line_ids_are_stable_and_distinct() -> None:
    assert request_line_id("batch_1", 1) == request_line_id("batch_1", 1)
    assert request_line_id("batch_1", 1).startswith("batch_req_")
    assert len({request_line_id("batch_1", 1), request_line_id("batch_1", 2)}) == 2
    assert request_line_id("batch_1", 1) != request_line_id("batch_2", 1)
